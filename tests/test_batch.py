"""``dtgan batch``: planning (manifest, folders, template, shard), executors, resume, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dtgan_plugin.batch import jobs as J
from dtgan_plugin.batch.jobs import (JobOptions, Report, parse_shard, plan_from_folders,
                                     plan_from_manifest, select_shard)
from dtgan_plugin.batch.runner import (BatchOptions, clean_partials, interleave_by_source,
                                       output_done, run_batch)
from dtgan_plugin.errors import UsageError

from conftest import make_clip, run_cli

FRAMES = 16
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- helpers

def _png(path: Path, seed: int, size: int = 64) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = rng.integers(0, 255, 3)
    arr = np.stack([(x * (seed + 2) + base[0]) % 256, (y * 3 + base[1]) % 256,
                    ((x + y) * (seed + 1) + base[2]) % 256], -1).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


def _touch_inputs(tmp: Path, n_src: int, n_tgt: int) -> tuple[Path, Path]:
    """Placeholder files (planning never opens them)."""
    src, tgt = tmp / "src", tmp / "tgt"
    src.mkdir()
    tgt.mkdir()
    for i in range(n_src):
        (src / f"clip{i}.mp4").write_bytes(b"x")
    for j in range(n_tgt):
        (tgt / f"face{j}.png").write_bytes(b"x")
    return src, tgt


def _frame_count(path: Path) -> int:
    from dtgan_plugin.media import open_video

    reader = open_video(str(path))
    try:
        return sum(len(c) for c in reader.chunks(64))
    finally:
        reader.close()


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.is_file()
            and (".partial" in p.name or ".raw-" in p.name)]


# ============================================================================ planning

def test_folders_all_pairs_and_default_template(tmp_path):
    src, tgt = _touch_inputs(tmp_path, 3, 4)
    plan = plan_from_folders(src, tgt, out_dir=tmp_path / "out")
    assert len(plan.jobs) == 12
    names = sorted(j.output.name for j in plan.jobs)
    assert names[0] == "clip0__face0.mp4" and names[-1] == "clip2__face3.mp4"
    assert all(j.output.parent == (tmp_path / "out").resolve() for j in plan.jobs)
    assert len({j.id for j in plan.jobs}) == 12
    # ids are stable across planning runs
    again = plan_from_folders(src, tgt, out_dir=tmp_path / "out")
    assert [j.id for j in again.jobs] == [j.id for j in plan.jobs]


def test_folders_ignore_other_and_hidden_files(tmp_path):
    src, tgt = _touch_inputs(tmp_path, 2, 1)
    (src / "notes.txt").write_text("x")
    (src / ".hidden.mp4").write_bytes(b"x")
    (tgt / "thumbs.db").write_bytes(b"x")
    plan = plan_from_folders(src, tgt, out_dir=tmp_path / "out")
    assert sorted(j.source.name for j in plan.jobs) == ["clip0.mp4", "clip1.mp4"]


def test_pairing_same_name_and_zip(tmp_path):
    src, tgt = tmp_path / "s", tmp_path / "t"
    src.mkdir()
    tgt.mkdir()
    for name in ("anna", "bob", "carl"):
        (src / f"{name}.mp4").write_bytes(b"x")
    for name in ("anna", "bob", "dora"):
        (tgt / f"{name}.jpg").write_bytes(b"x")
    plan = plan_from_folders(src, tgt, out_dir=tmp_path / "o", pairing="same-name")
    assert sorted((j.source.stem, j.target.stem) for j in plan.jobs) == [("anna", "anna"),
                                                                          ("bob", "bob")]
    assert any("1 source" in w for w in plan.warnings)
    assert any("1 target" in w for w in plan.warnings)
    plan = plan_from_folders(src, tgt, out_dir=tmp_path / "o", pairing="zip")
    assert [(j.source.stem, j.target.stem) for j in plan.jobs] == [
        ("anna", "anna"), ("bob", "bob"), ("carl", "dora")]
    (tgt / "extra.png").write_bytes(b"x")
    with pytest.raises(UsageError, match="as many sources as targets"):
        plan_from_folders(src, tgt, out_dir=tmp_path / "o", pairing="zip")


def test_recursive_and_template_subfolders(tmp_path):
    src, tgt = _touch_inputs(tmp_path, 1, 2)
    (src / "actors" / "anna").mkdir(parents=True)
    (src / "actors" / "anna" / "clip0.mp4").write_bytes(b"x")
    with pytest.raises(UsageError, match="two jobs would write 'clip0__face0.mp4'"):
        plan_from_folders(src, tgt, out_dir=tmp_path / "o", recursive=True)
    plan = plan_from_folders(src, tgt, out_dir=tmp_path / "o", recursive=True,
                             template="{source_reldir}/{source_stem}/{target_stem}_{index:03d}.mkv")
    outs = sorted(str(j.output.relative_to((tmp_path / "o").resolve())) for j in plan.jobs)
    assert outs == ["actors/anna/clip0/face0_000.mkv", "actors/anna/clip0/face1_001.mkv",
                    "clip0/face0_002.mkv", "clip0/face1_003.mkv"]


@pytest.mark.parametrize("template, message", [
    ("{source_stem}_{colour}.mp4", "unknown field '{colour}'"),
    ("{sorce_stem}.mp4", "did you mean 'source_stem'"),
    ("{source_stem", "malformed"),
    ("{}.mp4", "empty {} placeholder"),
    ("{source_stem}__{target_stem}", "'clip0__face0' .* has no known video extension"),
    ("../{source_stem}.mp4", "leaves the output folder"),
    ("{source_stem}.txt", "no known video extension"),
    ("{index:q}.mp4", "cannot be filled"),
])
def test_bad_templates(tmp_path, template, message):
    src, tgt = _touch_inputs(tmp_path, 1, 1)
    with pytest.raises(UsageError, match=message.replace("{", r"\{").replace("(", r"\(")):
        plan_from_folders(src, tgt, out_dir=tmp_path / "o", template=template)


def test_template_fields_all_render(tmp_path):
    src, tgt = _touch_inputs(tmp_path, 1, 1)
    template = "_".join(f"{{{f}}}" for f in J.TEMPLATE_FIELDS if f not in
                        ("source_reldir", "target_reldir")) + ".mp4"
    plan = plan_from_folders(src, tgt, out_dir=tmp_path / "o", template=template,
                             options=JobOptions(amplify=1.5, size=96))
    name = plan.jobs[0].output.name
    assert name.startswith("clip0_clip0.mp4_mp4_src_") and "_1.5_0_96_crop.mp4" in name


def test_duplicate_outputs_and_output_over_input(tmp_path):
    src, tgt = _touch_inputs(tmp_path, 2, 2)
    with pytest.raises(UsageError, match="two jobs would write 'same.mp4'"):
        plan_from_folders(src, tgt, out_dir=tmp_path / "o", template="same.mp4")
    with pytest.raises(UsageError, match="would overwrite an input"):
        plan_from_folders(src, tgt, out_dir=src, template="{source_name}",
                          pairing="zip")


def test_missing_or_empty_folders(tmp_path):
    src, tgt = _touch_inputs(tmp_path, 1, 1)
    with pytest.raises(UsageError, match="--sources folder '.*nope' does not exist"):
        plan_from_folders(tmp_path / "nope", tgt, out_dir=tmp_path / "o")
    with pytest.raises(UsageError, match="--targets '.*clip0.mp4' is not a folder"):
        plan_from_folders(src, src / "clip0.mp4", out_dir=tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="has no images"):
        plan_from_folders(src, tmp_path / "empty", out_dir=tmp_path / "o")
    with pytest.raises(UsageError, match="unknown --pairing"):
        plan_from_folders(src, tgt, out_dir=tmp_path / "o", pairing="cross")


def test_manifest_csv_and_jsonl_agree(tmp_path):
    src, tgt = _touch_inputs(tmp_path, 2, 2)
    (tmp_path / "m.csv").write_text(
        "source,target,output,amplify,reference-frame,size,fit,smooth\n"
        "# a comment line\n"
        "src/clip0.mp4,tgt/face0.png,,,,,,\n"
        "src/clip1.mp4,tgt/face1.png,custom/one.mkv,0.5,2,96,pad,yes\n"
        "\n")
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"source": "src/clip0.mp4", "target": "tgt/face0.png"}) + "\n\n"
        + json.dumps({"source": str(src / "clip1.mp4"), "target": "tgt/face1.png",
                      "output": "custom/one.mkv", "amplify": 0.5, "reference_frame": 2,
                      "size": 96, "fit": "pad", "smooth": True}) + "\n")
    plans = [plan_from_manifest(tmp_path / name, out_dir=tmp_path / "out",
                                options=JobOptions(amplify=2.0))
             for name in ("m.csv", "m.jsonl")]
    for plan in plans:
        first, second = plan.jobs
        assert first.source == (src / "clip0.mp4").resolve()
        assert first.options.amplify == 2.0          # command-line default kept
        assert first.output.name == "clip0__face0.mp4"
        assert second.output == (tmp_path / "out" / "custom" / "one.mkv").resolve()
        assert second.options == JobOptions(amplify=0.5, reference_frame=2, size=96,
                                            fit="pad", smooth=True)
    assert [j.id for j in plans[0].jobs] == [j.id for j in plans[1].jobs]


@pytest.mark.parametrize("name, text, message", [
    ("m.csv", "source,target,colour\na.mp4,b.png,red\n", "line 2: unknown column 'colour'"),
    ("m.csv", "source,target,amplfy\na.mp4,b.png,1\n", "did you mean 'amplify'"),
    ("m.csv", "source,target\n,b.png\n", "line 2: 'source' is missing"),
    ("m.csv", "source,target,amplify\na.mp4,b.png,lots\n", "'amplify' must be a number"),
    ("m.csv", "source,target,size\na.mp4,b.png,-3\n", "'size' must be >= 0"),
    ("m.csv", "source,target,fit\na.mp4,b.png,zoom\n", "'fit' must be one of"),
    ("m.csv", "source,target,smooth\na.mp4,b.png,maybe\n", "'smooth' must be true or false"),
    ("m.csv", "source,target\na.mp4,b.png,c\n", "3 cells but the header has 2"),
    ("m.csv", "", "is empty"),
    ("m.csv", "source,target\n", "has no jobs"),
    ("m.jsonl", '{"source": "a.mp4", "target": "b.png"}\n{oops\n', "line 2: not valid JSON"),
    ("m.jsonl", '["a.mp4", "b.png"]\n', "expected a JSON object"),
    ("m.jsonl", '{"source": 3, "target": "b.png"}\n', "'source' must be a path string"),
    ("m.jsonl", '{"source": "a.mp4", "target": "b.png", "reference_frame": 1.5}\n',
     "'reference_frame' must be a whole number"),
    ("m.csv", "source,target,detail\na.mp4,b.png,sharp\n", "'detail' must be a whole number"),
    ("m.csv", "source,target,detail\na.mp4,b.png,-1\n", "'detail' must be >= 0"),
    ("m.txt", "source,target\na,b\n", "must be a .csv or .jsonl"),
])
def test_bad_manifests(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("[", r"\[")):
        plan_from_manifest(tmp_path / name, out_dir=tmp_path / "out")


def test_manifest_missing_file(tmp_path):
    with pytest.raises(UsageError, match="manifest '.*none.csv' does not exist"):
        plan_from_manifest(tmp_path / "none.csv", out_dir=tmp_path / "out")


@pytest.mark.parametrize("spec, expected", [("1/1", (1, 1)), ("2/4", (2, 4)), (" 3/3 ", (3, 3)),
                                            (None, None), ("", None)])
def test_parse_shard(spec, expected):
    assert parse_shard(spec) == expected


@pytest.mark.parametrize("spec", ["0/2", "3/2", "1/0", "1", "a/b", "1/2/3", "-1/2", "1.5/2"])
def test_parse_shard_rejects(spec):
    with pytest.raises(UsageError, match="bad --shard"):
        parse_shard(spec)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 13, 20])
def test_shards_partition_the_jobs(tmp_path, n):
    src, tgt = _touch_inputs(tmp_path, 3, 4)
    plan = plan_from_folders(src, tgt, out_dir=tmp_path / "o")
    shards = [select_shard(plan.jobs, (i, n)) for i in range(1, n + 1)]
    ids = [j.id for s in shards for j in s]
    assert sorted(ids) == sorted(j.id for j in plan.jobs)        # union = all, no job twice
    assert len(ids) == len(set(ids))
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1                          # balanced
    # deterministic whatever order the jobs come in
    assert [j.id for j in select_shard(list(reversed(plan.jobs)), (1, n))] == \
        [j.id for j in shards[0]]
    # a source's jobs sit in neighbouring shards (so few shards extract the same source)
    filled = [s for s in shards if s]
    for source in {j.source for j in plan.jobs}:
        holders = [i for i, s in enumerate(filled) if any(j.source == source for j in s)]
        assert holders == list(range(holders[0], holders[0] + len(holders)))
    # each shard boundary splits at most one source: extractions <= sources + shards - 1
    assert sum(len({j.source for j in s}) for s in shards) <= 3 + len(filled) - 1


def test_interleave_by_source(tmp_path):
    src, tgt = _touch_inputs(tmp_path, 3, 2)
    plan = plan_from_folders(src, tgt, out_dir=tmp_path / "o")
    order = [(j.source.stem, j.target.stem) for j in interleave_by_source(plan.jobs)]
    assert order == [("clip0", "face0"), ("clip1", "face0"), ("clip2", "face0"),
                     ("clip0", "face1"), ("clip1", "face1"), ("clip2", "face1")]


def test_report_appends_and_survives_a_torn_line(tmp_path):
    src, tgt = _touch_inputs(tmp_path, 1, 2)
    plan = plan_from_folders(src, tgt, out_dir=tmp_path)
    report = Report(tmp_path / "report.jsonl")
    report.append(J.JobResult.for_job(plan.jobs[0], "done", frames=5, worker="w"), shard="1/2")
    with open(report.path, "a") as fh:
        fh.write('{"job": "torn')  # what a kill mid-write could leave
    report.append(J.JobResult.for_job(plan.jobs[1], "failed", error="bad"))
    rows = report.rows()
    assert [r["status"] for r in rows] == ["done"]  # the torn line swallowed the next one
    with open(report.path, "a") as fh:
        fh.write("\n")
    report.append(J.JobResult.for_job(plan.jobs[1], "failed", error="bad"))
    rows = report.rows()
    assert [r["status"] for r in rows] == ["done", "failed"]
    assert rows[0]["shard"] == "1/2" and rows[0]["frames"] == 5
    assert set(rows[0]) >= {"job", "source", "target", "output", "status", "error", "frames",
                            "seconds", "worker", "dynamics", "time"}


def test_clean_partials_removes_only_dead_writers(tmp_path):
    dead = tmp_path / ".a.mp4.partial-999999999.mp4"
    dead_raw = tmp_path / ".k.dyn.safetensors.raw-999999999"
    live = tmp_path / f".b.mp4.partial-{os.getppid()}.mp4"
    old_nopid = tmp_path / ".c.mp4.partial"
    new_nopid = tmp_path / ".d.mp4.partial"
    keep = [tmp_path / "a.mp4", tmp_path / ".hidden", tmp_path / ".x.lock"]
    for p in (dead, dead_raw, live, old_nopid, new_nopid, *keep):
        p.write_bytes(b"x")
    os.utime(old_nopid, (time.time() - 3600, time.time() - 3600))
    removed = clean_partials([tmp_path, tmp_path / "missing"])
    assert sorted(removed) == sorted([dead, dead_raw, old_nopid])
    assert live.exists() and new_nopid.exists() and all(p.exists() for p in keep)


def test_output_done(tmp_path):
    assert not output_done(tmp_path / "none.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert not output_done(tmp_path / "empty.mp4")
    (tmp_path / "ok.mp4").write_bytes(b"data")
    assert output_done(tmp_path / "ok.mp4")
    assert not output_done(tmp_path)


# ================================================================== command-line validation

def _cli(*args: str) -> tuple[int, str, str]:
    """Run ``dtgan`` in-process (fast), capturing stdout and stderr."""
    import contextlib
    import io

    from dtgan_plugin.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("extra, message", [
    ([], "nothing to do"),
    (["--sources", "SRC"], "--targets is missing"),
    (["--manifest", "M", "--sources", "SRC", "--targets", "TGT"], "either --manifest or"),
    (["--sources", "SRC", "--targets", "TGT", "--shard", "5/4"], "bad --shard '5/4'"),
    (["--sources", "SRC", "--targets", "TGT", "--name-template", "{x}.mp4"],
     "unknown field '{x}'"),
    (["--sources", "SRC", "--targets", "TGT", "--name-template", "all.mp4"],
     "two jobs would write 'all.mp4'"),
    (["--sources", "NOPE", "--targets", "TGT"], "--sources folder '.*NOPE' does not exist"),
    (["--sources", "SRC", "--targets", "TGT", "--executor", "dask"], "unknown --executor 'dask'"),
    (["--sources", "SRC", "--targets", "TGT", "--address", "auto"], "--address only applies"),
    (["--sources", "SRC", "--targets", "TGT", "--jobs", "0"], "expected a positive number"),
    (["--manifest", "M", "--pairing", "zip"], "--pairing and --recursive apply"),
])
def test_cli_usage_errors(tmp_path, extra, message):
    src, tgt = _touch_inputs(tmp_path, 2, 2)
    (tmp_path / "m.csv").write_text("source,target\nsrc/clip0.mp4,tgt/face0.png\n")
    subst = {"SRC": str(src), "TGT": str(tgt), "NOPE": str(tmp_path / "NOPE"),
             "M": str(tmp_path / "m.csv")}
    args = [subst.get(a, a) for a in extra]
    code, out, err = _cli("batch", "--out-dir", str(tmp_path / "out"), *args)
    assert code == 2, err
    # (other plugins' load warnings may precede it; the error itself is one line)
    lines = [line for line in err.strip().splitlines() if not line.startswith("dtgan: warning")]
    assert len(lines) == 1 and lines[0].startswith("dtgan: error: ")
    import re

    assert re.search(message.replace("{", r"\{").replace("}", r"\}"), lines[0]), lines[0]
    assert not (tmp_path / "out" / "report.jsonl").exists()


def test_cli_help_lists_template_fields():
    from dtgan_plugin.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    text = sub.choices["batch"].format_help()
    for name in J.TEMPLATE_FIELDS:
        assert f"{{{name}}}" in text
    for flag in ("--manifest", "--sources", "--targets", "--pairing", "--out-dir",
                 "--name-template", "--checkpoint", "--device", "--executor", "--jobs",
                 "--address", "--shard", "--fail-fast", "--keep-audio", "--no-progress"):
        assert flag in text


def test_executors_registered():
    from dtgan_plugin.batch.local import LocalExecutor
    from dtgan_plugin.batch.ray_executor import RayExecutor
    from dtgan_plugin.hooks.manager import get_registry

    reg = get_registry()
    assert reg.get("executors", "local").obj is LocalExecutor
    assert reg.get("executors", "ray").obj is RayExecutor


def test_missing_ray_is_one_line_usage_error(tmp_path, monkeypatch):
    src, tgt = _touch_inputs(tmp_path, 1, 1)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code, out, err = _cli("batch", "--sources", str(src), "--targets", str(tgt),
                          "--out-dir", str(tmp_path / "o"), "--executor", "ray")
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "dtgan: error: --executor ray needs Ray, which is not installed "
        "(pip install 'dtgan-plugin[ray]')")


def test_cli_dry_run_lists_jobs_and_shard(tmp_path):
    src, tgt = _touch_inputs(tmp_path, 3, 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip0__face0.mp4").write_bytes(b"done")
    code, stdout, err = _cli("batch", "--sources", str(src), "--targets", str(tgt),
                             "--out-dir", str(out), "--dry-run", "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert len(rows) == 6
    assert {Path(r["output"]).name: r["state"] for r in rows}["clip0__face0.mp4"] == "done"
    assert sum(r["state"] == "pending" for r in rows) == 5
    halves = []
    for i in (1, 2):
        code, stdout, err = _cli("batch", "--sources", str(src), "--targets", str(tgt),
                                 "--out-dir", str(out), "--dry-run", "--json", "--shard", f"{i}/2")
        halves.append({json.loads(line)["job"] for line in stdout.splitlines()})
    assert halves[0] | halves[1] == {r["job"] for r in rows} and not halves[0] & halves[1]


# =========================================================================== running jobs


def _tiny_checkpoint(path: Path) -> Path:
    """A small untrained model (fast to load and run); the batch machinery is what's tested."""
    from dtgan_plugin.models import build_model, save_checkpoint
    from dtgan_plugin.models.config import EncoderConfig, GeneratorConfig, ModelConfig

    cfg = ModelConfig(resolution=64,
                      encoder=EncoderConfig(widths=(8, 16, 32, 32), feature_dim=32, hidden=32),
                      generator_cfg=GeneratorConfig(base_width=8, max_width=32, dyn_channels=8))
    save_checkpoint(path, build_model(cfg))
    return path


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """3 source clips (64x64, 16 frames), 4 target images, a tiny checkpoint."""
    root = tmp_path_factory.mktemp("batchlib")
    src, tgt = root / "sources", root / "targets"
    src.mkdir()
    tgt.mkdir()
    for i, pattern in enumerate(("testsrc2", "testsrc", "smptebars")):
        make_clip(src / f"clip{i}.mp4", frames=FRAMES, pattern=pattern)
    for j in range(4):
        _png(tgt / f"face{j}.png", j)
    ckpt = _tiny_checkpoint(root / "tiny.safetensors")

    class Lib:
        pass

    lib = Lib()
    lib.root, lib.src, lib.tgt, lib.ckpt = root, src, tgt, ckpt
    return lib


def _expected_names(lib) -> set[str]:
    return {f"clip{i}__face{j}.mp4" for i in range(3) for j in range(4)}


def _outputs(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.is_file() and p.suffix == ".mp4"
            and not p.name.startswith(".")}


def _check_full_batch(lib, out: Path, summary: dict) -> None:
    assert summary["done"] == 12 and summary["failed"] == 0 and summary["skipped"] == 0
    assert _outputs(out) == _expected_names(lib)
    for name in _expected_names(lib):
        assert _frame_count(out / name) == FRAMES
    rows = Report(out / "report.jsonl").rows()
    assert len(rows) == 12 and all(r["status"] == "done" for r in rows)
    assert all(r["frames"] == FRAMES and r["error"] is None for r in rows)
    # extraction ran exactly once per source, and every other job reused the cache
    assert sum(r["dynamics"] == "extracted" for r in rows) == 3
    assert sum(r["dynamics"] == "cached" for r in rows) == 9
    assert summary["extractions"] == 3 and summary["frames"] == 12 * FRAMES
    assert len(list((out / ".dyn").glob("*.dyn.safetensors"))) == 3
    assert not _partials(out)


@pytest.mark.parametrize("workers", [
    1,  # in-process
    # two spawned processes, each importing torch: slow on a loaded 2-core machine
    pytest.param(2, marks=pytest.mark.slow),
])
def test_local_3x4_then_resume_skips(lib, tmp_path, workers):
    out = tmp_path / "out"
    plan = plan_from_folders(lib.src, lib.tgt, out_dir=out)
    opts = BatchOptions(checkpoint=str(lib.ckpt), device="cpu", jobs=workers, progress=False)
    summary = run_batch(plan, opts, log=lambda msg: None)
    _check_full_batch(lib, out, summary)
    rows = Report(out / "report.jsonl").rows()
    assert {r["worker"] for r in rows} <= {f"local-{i}" for i in range(workers)}
    assert summary["frames_per_s"] > 0 and summary["jobs_per_s"] > 0
    # a rerun finds everything done: no worker starts, nothing is extracted again
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.mp4")}
    again = run_batch(plan, opts, log=lambda msg: None)
    assert (again["done"], again["skipped"], again["failed"], again["extractions"]) == (0, 12, 0, 0)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.mp4")} == mtimes
    assert [r["status"] for r in Report(out / "report.jsonl").rows()][12:] == ["skipped"] * 12


@pytest.mark.slow
def test_ray_local_cluster_3x4(lib, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    plan = plan_from_folders(lib.src, lib.tgt, out_dir=out)
    opts = BatchOptions(checkpoint=str(lib.ckpt), device="cpu", executor="ray", jobs=2,
                        progress=False)
    summary = run_batch(plan, opts, log=lambda msg: None)
    _check_full_batch(lib, out, summary)
    rows = Report(out / "report.jsonl").rows()
    assert all(r["worker"].startswith("ray-") for r in rows)
    import ray

    assert not ray.is_initialized()  # the executor shut down the Ray it started


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` is still running (zombies hold no locks: a parent
    that does not reap them must not make the test wait)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:   # state, ppid, pgrp
            return True
    return False


def _wait_for_group_exit(pgid: int, timeout: float = 30.0) -> None:
    """Wait until no process of group ``pgid`` is left running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.02)
    raise AssertionError(f"process group {pgid} still alive after {timeout} s")


@pytest.mark.slow
def test_sigkill_then_rerun_finishes_exactly_once(lib, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    cmd = [sys.executable, "-m", "dtgan_plugin", "batch", "--sources", str(lib.src),
           "--targets", str(lib.tgt), "--out-dir", str(out), "--checkpoint", str(lib.ckpt),
           "--device", "cpu", "--jobs", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and _outputs(out):
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()
        os.killpg(proc.pid, signal.SIGKILL)  # driver, workers and their ffmpeg children
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    # the workers die a moment after the driver: until they are gone their job claims are
    # still held, and the rerun would rightly leave those jobs to them ("claimed")
    _wait_for_group_exit(proc.pid)
    finished = _outputs(out)
    assert 1 <= len(finished) < 12
    for name in finished:  # what exists under a final name is complete
        assert _frame_count(out / name) == FRAMES
    res = run_cli("batch", "--sources", str(lib.src), "--targets", str(lib.tgt),
                  "--out-dir", str(out), "--checkpoint", str(lib.ckpt), "--device", "cpu",
                  "--jobs", "1", "--no-progress", "--json", env=env)
    assert res.returncode == 0, res.stderr.decode()
    summary = json.loads(res.stdout)
    assert summary["skipped"] >= len(finished)
    assert summary["done"] + summary["skipped"] == 12 and summary["failed"] == 0
    assert _outputs(out) == _expected_names(lib)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        sorted(_expected_names(lib) | {"report.jsonl"})
    for name in _expected_names(lib):
        assert _frame_count(out / name) == FRAMES
    assert not _partials(out)
    assert len(list((out / ".dyn").glob("*.dyn.safetensors"))) == 3
    rows = Report(out / "report.jsonl").rows()
    finished_rows = {r["output"] for r in rows if r["status"] in ("done", "skipped")}
    assert {Path(o).name for o in finished_rows} == _expected_names(lib)


def test_corrupt_source_and_missing_target_fail_only_their_jobs(lib, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(os.urandom(4096))
    manifest = tmp_path / "jobs.jsonl"
    rows = [{"source": str(bad), "target": str(lib.tgt / "face0.png")},
            {"source": str(lib.src / "clip0.mp4"), "target": str(lib.tgt / "face0.png")},
            {"source": str(bad), "target": str(lib.tgt / "face1.png")},
            {"source": str(lib.src / "clip0.mp4"), "target": "nope.png"},
            {"source": str(lib.src / "clip1.mp4"), "target": str(lib.tgt / "face1.png"),
             "size": 96, "output": "big.mp4", "amplify": 0}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    plan = plan_from_manifest(manifest, out_dir=out)
    summary = run_batch(plan, BatchOptions(checkpoint=str(lib.ckpt), device="cpu",
                                           progress=False), log=lambda msg: None)
    assert (summary["done"], summary["failed"]) == (2, 3)
    report = Report(out / "report.jsonl").rows()
    failed = [r for r in report if r["status"] == "failed"]
    assert len(failed) == 3
    for r in failed:
        assert r["error"] and "\n" not in r["error"] and "Traceback" not in r["error"]
    assert sum("bad.mp4" in r["source"] for r in failed) == 2
    assert any("nope.png" in r["error"] and "does not exist" in r["error"] for r in failed)
    assert _outputs(out) == {"clip0__face0.mp4", "big.mp4"}
    from dtgan_plugin.media import open_video

    reader = open_video(str(out / "big.mp4"))
    try:
        assert (reader.info.width, reader.info.height) == (96, 96)
    finally:
        reader.close()
    assert not _partials(out)


def test_fail_fast_stops_at_first_failure(lib, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("source,target\n"
                        f"{bad},{lib.tgt / 'face0.png'}\n"
                        + "".join(f"{lib.src / 'clip0.mp4'},{lib.tgt / f'face{j}.png'}\n"
                                  for j in range(3)))
    out = tmp_path / "out"
    code, stdout, err = _cli("batch", "--manifest", str(manifest), "--out-dir", str(out),
                             "--checkpoint", str(lib.ckpt), "--device", "cpu", "--fail-fast",
                             "--no-progress")
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("dtgan: error: stopped at the first failure (--fail-fast)"), err
    rows = Report(out / "report.jsonl").rows()
    assert [r["status"] for r in rows] == ["failed"]
    assert not _outputs(out)
    # without --fail-fast the same batch records the failure and finishes the rest (exit 1)
    code, stdout, err = _cli("batch", "--manifest", str(manifest), "--out-dir", str(out),
                             "--checkpoint", str(lib.ckpt), "--device", "cpu", "--no-progress",
                             "--json")
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("dtgan: error: 1 of 4 job(s) failed")
    summary = json.loads(stdout)
    assert (summary["done"], summary["failed"]) == (3, 1)


def test_keep_audio_copies_the_source_track(lib, tmp_path):
    from dtgan_plugin.media.ffmpeg_bin import probe_file

    src = tmp_path / "src"
    src.mkdir()
    make_clip(src / "talk.mp4", frames=FRAMES, audio=True)
    tgt = tmp_path / "tgt"
    tgt.mkdir()
    _png(tgt / "face.png", 7)
    out = tmp_path / "out"
    opts = BatchOptions(checkpoint=str(lib.ckpt), device="cpu", progress=False)
    plan = plan_from_folders(src, tgt, out_dir=out, options=JobOptions(keep_audio=True),
                             template="{source_stem}_audio.mp4")
    plan2 = plan_from_folders(src, tgt, out_dir=out, template="{source_stem}_mute.mp4")
    plan.jobs.extend(plan2.jobs)
    summary = run_batch(plan, opts, log=lambda msg: None)
    assert summary["done"] == 2, Report(out / "report.jsonl").rows()
    assert summary["extractions"] == 1  # audio or not, the dynamics are shared
    assert probe_file(str(out / "talk_audio.mp4")).audio_codecs
    assert not probe_file(str(out / "talk_mute.mp4")).audio_codecs
    assert _frame_count(out / "talk_audio.mp4") == FRAMES
    assert not _partials(out)


def test_two_workers_share_one_extraction(lib, tmp_path):
    """Two runners asking for the same source at once: one extracts, the other waits and reuses."""
    from dtgan_plugin.batch.runner import JobRunner

    out = tmp_path / "out"
    out.mkdir()
    plan = plan_from_folders(lib.src, lib.tgt, out_dir=out)
    jobs = [j for j in plan.jobs if j.source.name == "clip2.mp4"][:2]
    cfg = BatchOptions(checkpoint=str(lib.ckpt), device="cpu").worker_config(out)
    runners = [JobRunner(cfg, worker=f"t{i}", index=i) for i in range(2)]
    results: list = [None, None]
    barrier = threading.Barrier(2)

    def work(i: int) -> None:
        barrier.wait()
        results[i] = runners[i].dynamics_for(jobs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(r[1] for r in results) == ["cached", "extracted"]
    assert results[0][0] == results[1][0]
    # a damaged cache entry is dropped and extracted again, not trusted
    results[0][0].write_bytes(b"garbage")
    path, how, _ = runners[0].dynamics_for(jobs[0])
    assert how == "extracted" and path == results[0][0]
    # a changed source (new mtime) gets a new cache entry
    from dtgan_plugin.batch.runner import dynamics_key

    key = dynamics_key(jobs[0].source, "fp", 0, "crop")
    st = jobs[0].source.stat()
    os.utime(jobs[0].source, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    try:
        assert dynamics_key(jobs[0].source, "fp", 0, "crop") != key
        assert dynamics_key(jobs[0].source, "fp", 1, "crop") != \
            dynamics_key(jobs[0].source, "fp", 0, "crop")
    finally:
        os.utime(jobs[0].source, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_job_finished_by_a_driver_that_ended_gets_no_second_row(lib, tmp_path):
    """Driver A finishes a job, reports it and ends (releasing its claims) before driver B,
    which triaged that job as pending, reaches it: B must not write a second row for it."""
    from dtgan_plugin.batch.runner import JobRunner

    out = tmp_path / "out"
    out.mkdir()
    job = plan_from_folders(lib.src, lib.tgt, out_dir=out).jobs[0]
    cfg = BatchOptions(checkpoint=str(lib.ckpt), device="cpu").worker_config(out)
    job.output.write_bytes(b"finished by driver A")        # committed, A's claim released
    runner = JobRunner(cfg, worker="b")
    try:
        result = runner.run(job)
    finally:
        runner.close()
    assert result.status == "claimed"                    # the driver writes no row for it
    assert job.output.read_bytes() == b"finished by driver A"


@pytest.mark.parametrize("column, default_cell, default, set_cell, value", [
    ("detail", "auto", "auto", "300", 300), ("head", "", 1.0, "0.5", 0.5)])
def test_manifest_option_columns_keep_older_job_ids(tmp_path, column, default_cell, default,
                                                    set_cell, value):
    _touch_inputs(tmp_path, 1, 1)
    (tmp_path / "m.csv").write_text(f"source,target,output,{column}\n"
                                    f"src/clip0.mp4,tgt/face0.png,a.mp4,{default_cell}\n"
                                    f"src/clip0.mp4,tgt/face0.png,b.mp4,{set_cell}\n")
    plan = plan_from_manifest(tmp_path / "m.csv", out_dir=tmp_path / "out")
    plain, changed = plan.jobs
    assert getattr(plain.options, column) == default
    assert getattr(changed.options, column) == value
    # the default leaves the options dict (and so the job ids of older batches) unchanged
    assert column not in plain.options.to_dict()
    assert changed.options.to_dict()[column] == value
    assert plain.id != changed.id


def test_manifest_head_out_of_range(tmp_path):
    _touch_inputs(tmp_path, 1, 1)
    (tmp_path / "bad.csv").write_text("source,target,head\nsrc/clip0.mp4,tgt/face0.png,2.5\n")
    with pytest.raises(UsageError, match="'head' must be between 0 and 2"):
        plan_from_manifest(tmp_path / "bad.csv", out_dir=tmp_path / "out")
    (tmp_path / "bad.jsonl").write_text('{"source": "src/clip0.mp4", "target": '
                                        '"tgt/face0.png", "head": true}\n')
    with pytest.raises(UsageError, match="'head' must be a number, got True"):
        plan_from_manifest(tmp_path / "bad.jsonl", out_dir=tmp_path / "out")


def test_batch_runner_passes_head_to_transfer(tmp_path, monkeypatch):
    from dtgan_plugin import api
    from dtgan_plugin.cli.app import build_parser
    from dtgan_plugin.cli.batch import build_plan

    _touch_inputs(tmp_path, 1, 1)
    args = build_parser().parse_args(["batch", "--sources", str(tmp_path / "src"), "--targets",
                                      str(tmp_path / "tgt"), "--out-dir", str(tmp_path / "o"),
                                      "--head", "0.25"])
    plan = build_plan(args)
    assert [j.options.head for j in plan.jobs] == [0.25]
    seen = {}

    def fake_transfer(*a, **kw):
        seen.update(kw)
        raise api.MediaError("stop here")

    monkeypatch.setattr(api, "transfer", fake_transfer)
    from dtgan_plugin.batch.runner import JobRunner

    runner = JobRunner({"checkpoint": "default", "cache_dir": str(tmp_path / "cache")})
    with pytest.raises(api.MediaError, match="stop here"):
        runner._transfer(plan.jobs[0], tmp_path / "x.dyn.safetensors")
    assert seen["head"] == 0.25 and seen["dynamics"] == tmp_path / "x.dyn.safetensors"
