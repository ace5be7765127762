"""Plugins: a third-party distribution found by entry point, env switches, failures, introspection."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dtgan_plugin.errors import PluginError
from dtgan_plugin.hooks import manager

from conftest import make_clip, run_cli

PLUGIN_SRC = '''
"""A third-party dtgan plugin: inverts colours."""
from dtgan_plugin import hookimpl, Filter, Option, Pad
from dtgan_plugin.stream import PadKind, VideoChunk


class Invert(Filter):
    """Invert colours (amount 1 = photographic negative)."""

    name = "invertplug.invert"
    description = __doc__
    inputs = (Pad("video", PadKind.VIDEO),)
    outputs = (Pad("video", PadKind.VIDEO),)
    options = (Option("amount", float, 1.0, "how much", min=0, max=1),)

    def run(self, inputs):
        a = self.opts["amount"]
        for chunk in inputs[0]:
            yield VideoChunk(chunk.frames * (1 - a) + (1 - chunk.frames) * a, chunk.start,
                             chunk.fps)


@hookimpl
def dtgan_register_filters(register):
    register(Invert)
'''


def _make_dist(root: Path, name: str, module_src: str) -> Path:
    src = root / name
    (src / name).mkdir(parents=True)
    (src / name / "__init__.py").write_text(module_src)
    (src / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "0.1"

        [project.entry-points.dtgan]
        {name} = "{name}"

        [tool.setuptools]
        packages = ["{name}"]
        """))
    return src


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small distributions pip-installed into a temporary folder (not the venv)."""
    root = tmp_path_factory.mktemp("plugins")
    target = root / "site"
    good = _make_dist(root, "invertplug", PLUGIN_SRC)
    broken = _make_dist(root, "brokenplug", "raise ImportError('this plugin is broken on purpose')\n")
    for dist in (good, broken):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--target", str(target), str(dist)], check=True)
    return target


def test_third_party_plugin_discovered_listed_and_used(site: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": f"{site}:{Path(__file__).resolve().parents[1]}"}
    res = run_cli("filters", "--json", env=env)
    assert res.returncode == 0, res.stderr.decode()
    stages = {s["name"]: s for s in json.loads(res.stdout)}
    assert stages["invertplug.invert"]["plugin"] == "invertplug"
    assert "dtgan.transfer" in stages
    # the broken one is reported on stderr and skipped, never fatal
    assert "brokenplug" in res.stderr.decode() and "skipped" in res.stderr.decode()
    res = run_cli("plugins", "--json", env=env)
    info = json.loads(res.stdout)
    assert any(p["name"] == "invertplug" and "dtgan_register_filters" in p["hooks"]
               for p in info["plugins"])
    assert [f["name"] for f in info["failed"]] == ["brokenplug"]
    res = run_cli("inspect", "invertplug.invert", env=env)
    assert res.returncode == 0 and "amount" in res.stdout.decode()
    # and used in a graph run, in a subprocess
    clip = make_clip(tmp_path / "in.mp4", frames=10, size=32, codec="ffv1")
    out = tmp_path / "neg.mkv"
    res = run_cli("graph", "[0]invertplug.invert=amount=1[out]", "-i", str(clip), "-o", str(out),
                  "--no-progress", env=env)
    assert res.returncode == 0, res.stderr.decode()
    from dtgan_plugin.media import open_video

    with open_video(clip) as a, open_video(out) as b:
        fa, fb = a.get_batch(list(range(10))), b.get_batch(list(range(10)))
    assert (fa + fb - 1).abs().max() < 1.5 / 255  # lossless ffv1: an exact negative


def test_disable_and_load_only_switches(site: Path) -> None:
    base = {"PYTHONPATH": f"{site}:{Path(__file__).resolve().parents[1]}"}
    res = run_cli("filters", "--json", env={**base, "DTGAN_DISABLE_PLUGINS": "invertplug,brokenplug"})
    names = {s["name"] for s in json.loads(res.stdout)}
    assert "invertplug.invert" not in names and "dtgan.resize" in names
    assert "brokenplug" not in res.stderr.decode()
    res = run_cli("filters", "--json", env={**base, "DTGAN_LOAD_PLUGINS": "invertplug"})
    names = {s["name"] for s in json.loads(res.stdout)}
    assert "invertplug.invert" in names and "brokenplug" not in res.stderr.decode()
    res = run_cli("graph", "[0]invertplug.invert[out]", "-i", "x.mp4", "-o", "y.mp4",
                  env={**base, "DTGAN_DISABLE_PLUGINS": "invertplug"})
    assert res.returncode == 2 and "unknown" in res.stderr.decode().lower()


def test_builtin_stages_register_through_hooks() -> None:
    reg = manager.get_registry()
    by_plugin = {e.name: e.plugin for e in reg.entries("filters")}
    assert by_plugin["dtgan.resize"] == "dtgan_plugin.filters.basic"
    assert by_plugin["dtgan.transfer"] == "dtgan_plugin.filters.model_stages"
    assert "default" in reg.names("models")
    assert {"local", "ray"} <= set(reg.names("executors"))
    assert {"decord", "ffmpeg"} <= set(reg.names("readers"))


def _registry_error(stage: type, plugin_name: str) -> PluginError:
    """The error building the registry raises once a plugin registers ``stage``."""
    from dtgan_plugin import hookimpl

    class P:
        @hookimpl
        def dtgan_register_filters(self, register):  # noqa: D102
            register(stage)

    try:
        manager.register_plugin(P(), name=plugin_name)
        with pytest.raises(PluginError) as err:
            manager.get_registry()
        return err.value
    finally:
        manager.reset_plugins()


def test_duplicate_stage_name_names_both_plugins() -> None:
    from dtgan_plugin.filters.basic import Resize

    err = _registry_error(Resize, "clashplug")
    assert re.search("dtgan_plugin.filters.basic.*clashplug", str(err)), err


def test_stage_without_namespace_is_refused() -> None:
    from dtgan_plugin import Filter

    class Bare(Filter):
        name = "bare"

    assert "namespace" in str(_registry_error(Bare, "bareplug"))


def test_introspection_commands() -> None:
    res = run_cli("filters")
    assert res.returncode == 0 and "dtgan.dynamics" in res.stdout.decode()
    res = run_cli("inspect", "dtgan.transfer", "--json")
    desc = json.loads(res.stdout)
    assert [p["kind"] for p in desc["inputs"]] == ["image", "dynamics"]
    assert {o["name"] for o in desc["options"]} >= {"checkpoint", "size", "fit"}
    res = run_cli("inspect", "dtgan.trasfer")
    assert res.returncode == 2 and "did you mean 'dtgan.transfer'" in res.stderr.decode()
    res = run_cli("plugins")
    assert "dtgan_plugin.filters.model_stages (built-in)" in res.stdout.decode()
