"""Signals and concurrency with real processes: SIGTERM/SIGHUP clean up like Ctrl-C, stale
temporaries of dead runs are removed (never a live run's), batch workers die with a SIGKILLed
driver, and several drivers on one out-dir share the work (each job once, one report row)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dtgan_plugin import atomic
from dtgan_plugin.errors import EncodeError, MediaError

from conftest import make_clip

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))


def _temps(folder: Path) -> list[Path]:
    """Every hidden temporary (any spelling) below ``folder``."""
    return [p for p in folder.rglob(".*")
            if any(tag in p.name for tag in (".partial", ".raw-", ".video-", ".mux-"))]


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            out = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"process ended early ({proc.returncode}): {out[-2000:]}")
        time.sleep(0.05)
    pytest.fail("timed out waiting")


# ---------------------------------------------------------------------- SIGTERM / SIGHUP

_WRITER_DRIVER = textwrap.dedent("""
    import sys, torch
    from dtgan_plugin.atomic import install_signal_handlers
    from dtgan_plugin.media.writer import VideoWriter
    install_signal_handlers()
    frames = torch.rand(8, 3, 64, 64)
    with VideoWriter(sys.argv[1], fps=25, width=64, height=64) as w:
        while True:  # runs until a signal arrives
            w.write(frames)
""")


def _default_signals() -> None:
    """Start the child with the default SIGTERM/SIGHUP handling, whatever the test runner's:
    under ``nohup`` SIGHUP is ignored, and dtgan rightly keeps an ignored signal ignored."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signal_while_writing_removes_the_temporary(tmp_path, signum):
    out = tmp_path / "o.mp4"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER_DRIVER, str(out)], env=ENV,
                            stderr=subprocess.PIPE, preexec_fn=_default_signals)
    try:
        _wait_for(lambda: any(p.stat().st_size > 0 for p in _temps(tmp_path)), 120, proc)
        proc.send_signal(signum)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc != 0
    assert _temps(tmp_path) == [] and not out.exists()


def _sigterm_cli_run(args: list[str], out_dir: Path) -> tuple[int, bytes]:
    """Run ``python -m dtgan_plugin ARGS``, SIGTERM it once its temporary exists."""
    proc = subprocess.Popen([sys.executable, "-m", "dtgan_plugin", *args], env=ENV,
                            stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: bool(_temps(out_dir)), 240, proc)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
        err = proc.stderr.read() if proc.stderr else b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc, err


@pytest.mark.slow
@pytest.mark.parametrize("command", ["transfer", "dynamics"])
def test_sigterm_during_a_cli_run_leaves_nothing(tmp_path, command):
    from test_batch import _png, _tiny_checkpoint

    src = make_clip(tmp_path / "long.mp4", frames=3000)
    ckpt = _tiny_checkpoint(tmp_path / "tiny.safetensors")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    common = ["-s", str(src), "--checkpoint", str(ckpt), "--device", "cpu", "--no-progress"]
    if command == "transfer":
        tgt = _png(tmp_path / "face.png", 1)
        args = ["transfer", *common, "-t", str(tgt), "-o", str(out_dir / "o.mp4"),
                "--crop", "none"]
    else:
        args = ["dynamics", *common, "-o", str(out_dir / "o.dyn.safetensors")]
    rc, err = _sigterm_cli_run(args, out_dir)
    # the CLI itself installs the handler: exit 128 + SIGTERM, one line, nothing left behind
    assert rc == 128 + signal.SIGTERM, err.decode()[-500:]
    assert err.decode().strip().splitlines()[-1] == f"dtgan: terminated by signal {int(signal.SIGTERM)}"
    assert list(out_dir.iterdir()) == []


# ------------------------------------------------------------------- stale temporaries

def test_a_swallowed_signal_still_stops_the_output(tmp_path, monkeypatch, capsys):
    """A Terminated raised while a library imports can be swallowed there (MediaPipe's import
    turned it into an ImportError, read as "MediaPipe missing", and the run went on to write its
    output): the handled signal is kept, so nothing is committed after it and the CLI still
    exits 128 + N."""
    import torch

    from dtgan_plugin.cli import main
    from dtgan_plugin.media import VideoWriter

    monkeypatch.setattr(atomic, "_terminated", None)
    atomic.raise_if_terminated()                       # nothing arrived: nothing raised
    assert main(["filters"]) == 0
    monkeypatch.setattr(atomic, "_terminated", int(signal.SIGTERM))
    out = tmp_path / "o.mkv"
    with pytest.raises(atomic.Terminated):
        with VideoWriter(out, fps=25, width=16, height=16, codec="ffv1") as writer:
            writer.write(torch.rand(4, 3, 16, 16))
    assert list(tmp_path.iterdir()) == []              # no output, no temporary
    capsys.readouterr()
    assert main(["filters"]) == 128 + signal.SIGTERM
    assert "terminated by signal" in capsys.readouterr().err


def test_next_writer_removes_a_dead_runs_temporary_but_keeps_a_live_ones(tmp_path):
    import torch

    from dtgan_plugin.media.writer import VideoWriter

    final = tmp_path / "o.mp4"
    dead = tmp_path / f".o.partial-{_dead_pid()}-{atomic.host_tag()}abcdef.mp4"
    legacy_dead = tmp_path / f".o.mp4.partial-{_dead_pid()}"
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        live = tmp_path / f".o.partial-{sleeper.pid}-{atomic.host_tag()}123456.mp4"
        elsewhere = "0000" if atomic.host_tag() != "0000" else "1111"
        other_host = tmp_path / f".o.partial-{_dead_pid()}-{elsewhere}abcdef.mp4"
        other_name = tmp_path / f".p.partial-{_dead_pid()}-{atomic.host_tag()}abcdef.mp4"
        for p in (dead, legacy_dead, live, other_host, other_name):
            p.write_bytes(b"x")
        with VideoWriter(final, fps=25, width=64, height=64) as w:
            w.write(torch.rand(2, 3, 64, 64))
        assert final.exists()
        assert not dead.exists() and not legacy_dead.exists()
        # a live run's, another machine's and another output's temporaries stay
        assert live.exists() and other_host.exists() and other_name.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_killed_runs_temporary_is_removed_by_the_next_run(tmp_path):
    out = tmp_path / "o.mp4"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER_DRIVER, str(out)], env=ENV,
                            stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: bool(_temps(tmp_path)), 120, proc)
    finally:
        proc.kill()  # SIGKILL: nothing can clean up at once
        proc.wait()
    left = _temps(tmp_path)
    assert left, "SIGKILL should leave the temporary for the next run"
    assert atomic.clean_stale(tmp_path, out) == left
    assert _temps(tmp_path) == []


def test_temp_path_registry_and_atomic_output(tmp_path):
    final = tmp_path / "a.bin"
    with atomic.atomic_output(final) as tmp:
        assert tmp.name.startswith(".a.partial-") and tmp.suffix == ".bin"
        tmp.write_bytes(b"data")
    assert final.read_bytes() == b"data" and not tmp.exists()
    with pytest.raises(RuntimeError), atomic.atomic_output(tmp_path / "b.bin") as tmp2:
        tmp2.write_bytes(b"x")
        raise RuntimeError("boom")
    assert not tmp2.exists() and not (tmp_path / "b.bin").exists()
    leftover = atomic.temp_path(tmp_path / "c.bin")
    leftover.write_bytes(b"x")
    # this process named it: a cleanup must not touch it, the exit cleanup must
    assert atomic.clean_stale(tmp_path) == []
    assert leftover in atomic.cleanup_registered() and not leftover.exists()


def test_pid_alive():
    assert atomic.pid_alive(os.getpid())
    assert not atomic.pid_alive(_dead_pid())
    assert not atomic.pid_alive(0) and not atomic.pid_alive(-5)


def test_claims_exclusive_and_stale_claims_reclaimed(tmp_path):
    lock = tmp_path / "job.claim"
    assert atomic.try_claim(lock)
    code = ("import pathlib; from dtgan_plugin.atomic import try_claim; "
            f"print(try_claim(pathlib.Path({str(lock)!r})))")
    other = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True)
    assert other.stdout.strip() == "False"  # held by us, a live process
    atomic.release_claim(lock)
    assert not lock.exists()
    import socket

    lock.write_text(f"{_dead_pid()} {socket.gethostname()}\n")
    assert atomic.try_claim(lock)  # its holder died: taken over
    assert lock.read_text().split()[0] == str(os.getpid())
    atomic.release_claim(lock)
    lock.write_text("1 some-other-machine\n")
    assert not atomic.try_claim(lock)  # another machine's pids mean nothing here


# ----------------------------------------------------------------------- error causes

def test_disk_full_names_the_cause(tmp_path):
    import torch

    from dtgan_plugin.media.writer import VideoWriter

    class ToDevFull(VideoWriter):
        def build_command(self, target: str) -> list[str]:
            return super().build_command("/dev/full")

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    w = ToDevFull(tmp_path / "o.mkv", fps=25, width=64, height=64,
                  options={"format": "matroska"})
    with pytest.raises(EncodeError, match="no space left on device writing"):
        for _ in range(50):
            w.write(torch.rand(8, 3, 64, 64))
        w.close()
    assert _temps(tmp_path) == []


def test_disk_full_while_writing_dynamics_names_the_cause(tmp_path, monkeypatch):
    import errno

    import torch

    from dtgan_plugin.dynfile import DynamicsWriter
    from dtgan_plugin.stream import DynamicsChunk

    w = DynamicsWriter(tmp_path / "x.dyn.safetensors")

    class Full:  # the raw file's disk fills up on the second chunk
        def __init__(self, real):
            self.real, self.calls = real, 0

        def write(self, data):
            self.calls += 1
            if self.calls > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.real.write(data)

        def close(self):
            self.real.close()

    w._raw = Full(w._raw)
    w.write(DynamicsChunk(torch.zeros(4, 8), 0, 25.0, {}))
    with pytest.raises(MediaError, match="no space left on device writing .*x.dyn.safetensors"):
        w.write(DynamicsChunk(torch.zeros(4, 8), 4, 25.0, {}))
    assert _temps(tmp_path) == [] and not (tmp_path / "x.dyn.safetensors").exists()


def test_broken_stdout_pipe_names_the_cause():
    code = textwrap.dedent("""
        import sys, torch
        from dtgan_plugin.errors import EncodeError
        from dtgan_plugin.media.writer import VideoWriter
        w = VideoWriter("-", fps=25, width=64, height=64)
        try:
            for _ in range(200):
                w.write(torch.rand(8, 3, 64, 64))
            w.close()
        except EncodeError as err:
            print(err, file=sys.stderr)
            sys.exit(3)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.read(1000)
    proc.stdout.close()  # the reader goes away
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err.decode()
    assert "broken pipe: the reader of stdout went away" in err.decode()


def test_output_that_is_a_directory_fails_in_the_constructor(tmp_path):
    from dtgan_plugin.media.writer import VideoWriter

    (tmp_path / "d.mp4").mkdir()
    with pytest.raises(MediaError, match="is a directory"):
        VideoWriter(tmp_path / "d.mp4", fps=25, width=64, height=64)
    assert _temps(tmp_path) == []


# ------------------------------------------------------------------------------ batch

def _batch_cmd(lib, out: Path, jobs: int) -> list[str]:
    return [sys.executable, "-m", "dtgan_plugin", "batch", "--sources", str(lib.src),
            "--targets", str(lib.tgt), "--out-dir", str(out), "--checkpoint", str(lib.ckpt),
            "--device", "cpu", "--jobs", str(jobs), "--no-progress", "--json"]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """2 source clips x 4 targets = 8 jobs, with a tiny model."""
    from test_batch import _png, _tiny_checkpoint

    root = tmp_path_factory.mktemp("siglib")
    src, tgt = root / "sources", root / "targets"
    src.mkdir()
    tgt.mkdir()
    for i in range(2):
        make_clip(src / f"clip{i}.mp4", frames=48, pattern=("testsrc2", "testsrc")[i])
    for j in range(4):
        _png(tgt / f"face{j}.png", j)

    class Lib:
        pass

    lib = Lib()
    lib.src, lib.tgt, lib.ckpt = src, tgt, _tiny_checkpoint(root / "tiny.safetensors")
    return lib


def _outputs(out: Path) -> set[str]:
    return {p.name for p in out.glob("*.mp4")}


@pytest.mark.slow
def test_two_drivers_share_the_work(lib, tmp_path):
    from dtgan_plugin.batch import Report

    out = tmp_path / "out"
    procs = [subprocess.Popen(_batch_cmd(lib, out, 1), env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err.decode()
    summaries = [json.loads(o) for o, _ in results]
    assert len(_outputs(out)) == 8
    rows = Report(out / "report.jsonl").rows()
    assert len(rows) == 8 and all(r["status"] == "done" for r in rows)
    assert len({r["output"] for r in rows}) == 8
    assert sum(s["done"] for s in summaries) == 8
    assert _temps(out) == []


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


@pytest.mark.slow
def test_sigkilled_driver_takes_its_workers_along(lib, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(_batch_cmd(lib, out, 2), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        # both workers started and busy: the first temporaries or outputs appear
        _wait_for(lambda: out.exists() and (bool(_temps(out)) or bool(_outputs(out))), 300,
                  proc)
        workers = [k for k in _children(proc.pid)
                   if b"multiprocessing" in Path(f"/proc/{k}/cmdline").read_bytes()]
        assert workers
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _wait_for(lambda: not any(atomic.pid_alive(w) for w in workers), 30)
    assert len(_outputs(out)) < 8
    res = subprocess.run(_batch_cmd(lib, out, 1), env=ENV, capture_output=True, timeout=600)
    assert res.returncode == 0, res.stderr.decode()
    summary = json.loads(res.stdout)
    assert summary["done"] + summary["skipped"] == 8 and summary["failed"] == 0
    assert len(_outputs(out)) == 8
    assert _temps(out) == [] and not list((out / ".claims").glob("*.claim"))
