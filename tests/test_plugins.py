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


def test_duplicate_stage_name_fails_only_where_used(tmp_path: Path) -> None:
    """A name two plugins register is recorded; only a graph that uses it fails."""
    from dtgan_plugin import hookimpl
    from dtgan_plugin.errors import GraphError
    from dtgan_plugin.filters.basic import Resize
    from dtgan_plugin.graph import Graph

    class P:
        @hookimpl
        def dtgan_register_filters(self, register):  # noqa: D102
            register(Resize)

    try:
        manager.register_plugin(P(), name="clashplug")
        reg = manager.get_registry()  # builds: the rest of the tool keeps working
        (conflict,) = reg.conflicts
        assert (conflict.kind, conflict.name) == ("filters", "dtgan.resize")
        assert conflict.plugins == ("dtgan_plugin.filters.basic", "clashplug")
        assert Graph.parse("[0]dtgan.flip[out]").outputs == ["out"]
        with pytest.raises(GraphError) as err:
            Graph.parse("[0]dtgan.flip,dtgan.resize=32:32[out]")
        assert re.search("dtgan_plugin.filters.basic.*clashplug", str(err.value)), err.value
        assert err.value.column == len("[0]dtgan.flip,")
        with pytest.raises(PluginError, match="clashplug"):
            reg.filter("dtgan.resize")
    finally:
        manager.reset_plugins()


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


# ------------------------------------------------------------------ readers and writers by hook

class _NpyVidReader:
    """A third-party reader: a ``.npyvid`` file is ``np.save`` of ``(T, H, W, 3)`` uint8."""

    def __init__(self, path, vf=None, **_):
        import numpy as np

        assert vf is None
        self.frames = np.load(path, mmap_mode="r")
        t, h, w, _c = self.frames.shape
        from dtgan_plugin.stream import PadKind, StreamInfo

        self.info = StreamInfo(PadKind.VIDEO, fps=10.0, width=w, height=h, num_frames=t)
        self.closed = False

    def chunks(self, n):
        import torch

        from dtgan_plugin.stream import VideoChunk

        for start in range(0, len(self.frames), n):
            part = torch.from_numpy(self.frames[start:start + n].copy())
            yield VideoChunk(part.permute(0, 3, 1, 2).float() / 255, start, 10.0)

    def close(self):
        self.closed = True


class _NpyVidWriter:
    """A third-party writer for ``.npyvid``: frames gathered, saved under the name at close."""

    def __init__(self, path, *, fps, width, height, **options):
        self.path, self.width, self.height = path, width, height
        self.parts = []

    def write(self, frames):
        self.parts.append((frames.permute(0, 2, 3, 1) * 255).round().byte().numpy())

    def close(self):
        import numpy as np

        with open(self.path, "wb") as fh:
            np.save(fh, np.concatenate(self.parts))

    def abort(self):
        self.parts = []


def test_third_party_reader_and_writer_run_in_a_graph(tmp_path: Path) -> None:
    """Readers and writers are chosen from the registry by extension and priority."""
    import numpy as np

    from dtgan_plugin import hookimpl
    from dtgan_plugin.graph import Graph

    class NpyVid:
        @hookimpl
        def dtgan_register_readers(self, register):  # noqa: D102
            register("npyvid", _NpyVidReader, extensions=(".npyvid",), priority=0)

        @hookimpl
        def dtgan_register_writers(self, register):  # noqa: D102
            register("npyvid", _NpyVidWriter, extensions=(".npyvid",), priority=0)

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (7, 16, 24, 3), dtype=np.uint8)
    src, dst = tmp_path / "in.npyvid", tmp_path / "out.npyvid"
    with open(src, "wb") as fh:
        np.save(fh, frames)
    try:
        manager.register_plugin(NpyVid(), name="npyvidplug")
        reg = manager.get_registry()
        # an exact extension beats ffmpeg's "*" at the same priority
        assert [e.name for e in reg.by_extension("readers", "x.npyvid")][:1] == ["npyvid"]
        assert reg.by_extension("readers", "x.mp4")[0].name == "decord"
        assert reg.by_extension("readers", "-")[0].name == "y4m"
        stats = Graph.parse("[0]dtgan.flip[out]").run([src], [dst], progress=False,
                                                      chunk_size=3)
        assert stats.frames == 7
        got = np.load(dst)
        assert got.shape == frames.shape
        np.testing.assert_array_equal(got, frames[:, :, ::-1])
    finally:
        manager.reset_plugins()


def test_registry_import_does_not_load_filters() -> None:
    """hooks.manager builds the registry without importing the filters package (no loop)."""
    code = ("import sys; import dtgan_plugin.hooks.manager as m; "
            "assert 'dtgan_plugin.filters.base' not in sys.modules, 'imported filters'; "
            "import pluggy; pm = pluggy.PluginManager('dtgan'); pm.add_hookspecs(m.hookspecs); "
            "m.Registry(pm); "
            "assert 'dtgan_plugin.filters.base' not in sys.modules, 'registry imported filters'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
