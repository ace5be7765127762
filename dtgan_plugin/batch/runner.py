"""Batch orchestration shared by every executor.

Two halves:

* **driver** (:func:`run_batch`): picks the shard, cleans up temp files a killed run left,
  skips jobs whose output already exists, fails jobs whose inputs are missing without starting
  a worker, orders the rest so concurrent workers start on different sources, hands them to an
  executor, appends one report row per finished job, shows progress and returns a summary.
* **worker** (:class:`JobRunner`): lives inside one executor worker (a process, a Ray actor or
  the calling process), loads the model once, and runs jobs: dynamics are extracted once per
  source into a shared cache (``OUT_DIR/.dyn/<key>.dyn.safetensors``, guarded by a lock file so
  two workers never extract the same source at once) and every target reuses them.

A job is *done* exactly when its output file exists under its final name and is not empty:
writers only ever rename a complete file into place, so existence is proof of completion and a
rerun skips it whatever the report says (a kill between the rename and the report row loses
nothing).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

from ..errors import DtganError, MediaError, UsageError
from .jobs import REPORT_NAME, Job, JobResult, Plan, Report, select_shard

#: folder (inside the output folder) of the dynamics cache, unless ``cache_dir`` says otherwise
CACHE_DIRNAME = ".dyn"
#: containers that cannot carry an audio track (``keep_audio`` is ignored for them)
_NO_AUDIO_SUFFIXES = frozenset({".gif", ".y4m"})
# temp files of our writers: ".STEM.partial-PID-XXXX.ext" (video writer), ".NAME.partial-PID"
# and ".NAME.raw-PID" (dynamics writer), ".NAME.partial-PID-video.ext" (audio muxing here)
_TEMP_RE = re.compile(r"^\..+\.(?:partial|raw|tmp)-(\d+)")
_TEMP_ANY = re.compile(r"^\..+\.(?:partial|raw|tmp)\b")
#: a temp file with no pid in its name is stale after this long without a write
_STALE_SECONDS = 600.0


@dataclass
class BatchOptions:
    """How a batch runs (what it runs is the :class:`~dtgan_plugin.batch.jobs.Plan`)."""

    checkpoint: str = "default"
    device: str = "auto"
    executor: str = "local"
    jobs: int = 1
    address: str | None = None
    shard: tuple[int, int] | None = None
    fail_fast: bool = False
    overwrite: bool = False
    progress: bool = True
    chunk_size: int = 32
    cache_dir: Path | None = None
    #: extra executor-specific settings (e.g. ``ray_init`` keyword arguments)
    extra: dict[str, Any] = field(default_factory=dict)

    def worker_config(self, out_dir: Path) -> dict[str, Any]:
        """The picklable settings a worker needs."""
        return {"checkpoint": str(self.checkpoint), "device": self.device,
                "cache_dir": str(self.cache_dir or out_dir / CACHE_DIRNAME),
                "chunk_size": int(self.chunk_size), "overwrite": bool(self.overwrite),
                "jobs": int(self.jobs)}


class Executor(Protocol):
    """What ``dtgan_register_executors`` registers: ``cls(options)`` then ``run(jobs, emit)``."""

    name: str

    def __init__(self, options: BatchOptions, worker_config: dict[str, Any]) -> None: ...

    def run(self, jobs: Sequence[Job], emit: Callable[[JobResult], bool]) -> None:
        """Run ``jobs``; call ``emit(result)`` on the calling thread as each finishes, and stop
        handing out new jobs (finishing those in flight) once ``emit`` returns False."""


# =========================================================================== worker side

def output_done(path: Path) -> bool:
    """True when ``path`` is a finished output (exists under its final name, not empty)."""
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_size > 0 and not path.is_dir()


def dynamics_key(source: Path, fingerprint: str, reference_frame: int, fit: str) -> str:
    """Cache key of a source's dynamics: its path, size and mtime, the model and the settings.

    A changed file (new size or mtime) or another model gets a new key, so a stale cache entry
    is never used.
    """
    st = source.stat()
    blob = json.dumps({"path": str(source), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                       "checkpoint": fingerprint, "reference_frame": int(reference_frame),
                       "fit": fit}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8", "surrogateescape")).hexdigest()[:32]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if needed); released on exit or death."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        # closing the descriptor releases the lock; the kernel does it too if we are killed
        os.close(fd)


def worker_device(device: str, index: int) -> str:
    """The device for worker ``index``: several CUDA GPUs are shared out round-robin."""
    name = (device or "auto").lower()
    if name in ("auto", "cuda"):
        try:
            import torch

            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        except Exception:  # noqa: BLE001 - a broken CUDA setup means CPU for "auto"
            count = 0
        if count > 1:
            return f"cuda:{index % count}"
    return name


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(err, DtganError):
        return first or type(err).__name__
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


class JobRunner:
    """Runs jobs inside one worker; the model is loaded once, dynamics cached per source."""

    def __init__(self, config: dict[str, Any], *, worker: str = "local-0",
                 index: int = 0) -> None:
        self.checkpoint = config["checkpoint"]
        self.device = worker_device(config.get("device", "auto"), index)
        self.cache_dir = Path(config["cache_dir"])
        self.chunk_size = int(config.get("chunk_size", 32))
        self.overwrite = bool(config.get("overwrite", False))
        self.worker = worker
        self._model: Any = None
        self._fingerprint: str | None = None
        # sources whose extraction failed in this worker: their other jobs fail at once with
        # the same error instead of decoding the broken file again
        self._bad_sources: OrderedDict[str, str] = OrderedDict()

    # ---------------------------------------------------------------------------- model
    def _load(self) -> None:
        if self._model is None:
            from ..inference import load_model, resolve_device

            self._model = load_model(self.checkpoint, resolve_device(self.device))
            self._fingerprint = str(self._model.fingerprint())

    # ------------------------------------------------------------------------- dynamics
    def dynamics_for(self, job: Job) -> tuple[Path, str, float]:
        """The cached dynamics file of the job's source (extracting it if needed).

        Returns ``(path, "extracted" | "cached", seconds spent extracting)``.
        """
        from ..api import extract_dynamics
        from ..dynfile import DynamicsFile

        self._load()
        assert self._fingerprint is not None
        opts = job.options
        key = dynamics_key(job.source, self._fingerprint, opts.reference_frame, opts.fit)
        if key in self._bad_sources:
            raise MediaError(self._bad_sources[key])
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self.cache_dir / f"{key}.dyn.safetensors"
        if self._usable(path, DynamicsFile):
            return path, "cached", 0.0
        # the lock makes a second worker wanting the same source wait for the first one's
        # extraction instead of repeating it; the writer's temp-name + rename means even
        # without the lock (another host over NFS) no reader ever sees a half-written file
        with _file_lock(self.cache_dir / f".{key}.lock"):
            if self._usable(path, DynamicsFile):
                return path, "cached", 0.0
            t0 = time.perf_counter()
            try:
                extract_dynamics(job.source, path, checkpoint=self.checkpoint,
                                 device=self.device, reference_frame=opts.reference_frame,
                                 fit=opts.fit, progress=False, chunk_size=self.chunk_size)
            except DtganError as err:
                msg = _one_line(err)
                self._bad_sources[key] = msg
                while len(self._bad_sources) > 1024:
                    self._bad_sources.popitem(last=False)
                raise
            return path, "extracted", time.perf_counter() - t0

    @staticmethod
    def _usable(path: Path, reader: Any) -> bool:
        if not path.exists():
            return False
        try:
            dyn = reader(path)
            return dyn.num_frames > 0
        except DtganError:
            # damaged by something outside our control: drop it and extract again
            with contextlib.suppress(OSError):
                path.unlink()
            return False

    # ------------------------------------------------------------------------------ run
    def run(self, job: Job) -> JobResult:
        """Run one job; every failure becomes a ``failed`` result with a one-line error."""
        t0 = time.perf_counter()
        if not self.overwrite and output_done(job.output):
            # another shard or an earlier worker finished it meanwhile
            return JobResult.for_job(job, "skipped", worker=self.worker)
        how: str | None = None
        t_ext = 0.0
        try:
            for what, path in (("source", job.source), ("target", job.target)):
                if not path.is_file():
                    raise MediaError(f"{what} '{path}' does not exist")
            dyn, how, t_ext = self.dynamics_for(job)
            frames = self._transfer(job, dyn)
        except DtganError as err:
            return JobResult.for_job(job, "failed", error=_one_line(err), worker=self.worker,
                                     seconds=time.perf_counter() - t0, dynamics=how,
                                     extract_seconds=t_ext)
        except Exception as err:  # noqa: BLE001 - one bad job must not end the batch
            return JobResult.for_job(job, "failed", error=f"internal error: {_one_line(err)}",
                                     worker=self.worker, seconds=time.perf_counter() - t0,
                                     dynamics=how, extract_seconds=t_ext)
        return JobResult.for_job(job, "done", frames=frames, worker=self.worker,
                                 seconds=time.perf_counter() - t0, dynamics=how,
                                 extract_seconds=t_ext)

    def _transfer(self, job: Job, dyn: Path) -> int:
        from ..api import transfer

        opts = job.options
        out = job.output
        out.parent.mkdir(parents=True, exist_ok=True)
        audio = opts.keep_audio and out.suffix.lower() not in _NO_AUDIO_SUFFIXES
        # with audio, the video goes to a temp name first and the muxed file is renamed into
        # place; either way the final name only ever appears complete
        video = out.with_name(f".{out.name}.partial-{os.getpid()}-video{out.suffix}") if audio \
            else out
        try:
            stats = transfer(None, job.target, video, dynamics=dyn, checkpoint=self.checkpoint,
                             device=self.device, amplify=opts.amplify, size=opts.size,
                             fit=opts.fit, codec=opts.codec, crf=opts.crf, smooth=opts.smooth,
                             progress=False, chunk_size=self.chunk_size)
            if audio:
                from ..dynfile import DynamicsFile

                mux_audio(video, job.source, out, frames=int(stats.frames),
                          fps=DynamicsFile(dyn).fps)
        finally:
            if audio and video.exists():
                video.unlink()
        return int(getattr(stats, "frames", 0) or 0)


def mux_audio(video: Path, source: Path, output: Path, *, frames: int, fps: float) -> None:
    """Write ``output`` = ``video``'s picture + ``source``'s first audio track (temp + rename).

    The audio is cut to the video's duration (``frames / fps``), so the picture keeps every
    frame whether the audio is longer or shorter. A source without audio gives the video
    unchanged. The audio is copied, or re-encoded (AAC, or Opus for WebM) when the container
    refuses its codec.
    """
    from ..errors import EncodeError
    from ..media.ffmpeg_bin import base_cmd, fps_fraction, last_meaningful_line, probe_file

    if not probe_file(str(source)).audio_codecs:
        os.replace(video, output)
        return
    duration = float(frames / fps_fraction(fps))
    tmp = output.with_name(f".{output.name}.partial-{os.getpid()}-mux{output.suffix}")
    suffix = output.suffix.lower()
    reencode = ["-c:a", "libopus"] if suffix == ".webm" else ["-c:a", "aac"]
    faststart = ["-movflags", "+faststart"] if suffix in (".mp4", ".m4v", ".mov") else []
    reason = ""
    try:
        for audio_codec in (["-c:a", "copy"], reencode):
            cmd = [*base_cmd(), "-y", "-nostdin", "-i", str(video), "-i", str(source),
                   "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", *audio_codec,
                   "-t", f"{duration:.6f}", *faststart, str(tmp)]
            proc = subprocess.run(cmd, capture_output=True, timeout=600)
            if proc.returncode == 0:
                os.replace(tmp, output)
                return
            reason = last_meaningful_line(proc.stderr.decode("utf-8", "replace").splitlines(),
                                          f"exit status {proc.returncode}")
        raise EncodeError(f"could not add the audio of '{source.name}': {reason}",
                          hint="rerun without --keep-audio")
    finally:
        if tmp.exists():
            tmp.unlink()


# =========================================================================== driver side

def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # we have not written anything yet: such a file is from an earlier run
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_partials(folders: Sequence[Path]) -> list[Path]:
    """Remove temp files a killed run left in ``folders``; returns what was removed.

    A temp file whose writer (the pid in its name) is still running on this machine is left
    alone, so two shards sharing an output folder do not break each other.
    """
    removed: list[Path] = []
    for folder in dict.fromkeys(folders):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            # image-sequence writers stage a hidden folder; everything else is a file
            if not name.startswith(".") or not (is_dir or entry.is_file(follow_symlinks=False)):
                continue
            match = _TEMP_RE.match(name)
            if match:
                stale = not _pid_alive(int(match.group(1)))
            elif _TEMP_ANY.match(name):
                try:
                    stale = time.time() - entry.stat().st_mtime > _STALE_SECONDS
                except OSError:
                    continue
            else:
                continue
            if stale:
                with contextlib.suppress(OSError):
                    if is_dir:
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def interleave_by_source(jobs: Sequence[Job]) -> list[Job]:
    """Round-robin over sources (s1t1, s2t1, s3t1, s1t2, ...), so concurrent workers start on
    different sources and rarely wait for each other's extraction."""
    groups: OrderedDict[Path, list[Job]] = OrderedDict()
    for job in jobs:
        groups.setdefault(job.source, []).append(job)
    out: list[Job] = []
    lists = list(groups.values())
    depth = max((len(g) for g in lists), default=0)
    for k in range(depth):
        out.extend(g[k] for g in lists if k < len(g))
    return out


def get_executor(name: str) -> type:
    """The executor class registered under ``name`` (UsageError listing the known ones)."""
    from ..hooks.manager import get_registry

    reg = get_registry()
    entry = reg.get("executors", name)
    if entry is None:
        known = ", ".join(reg.names("executors")) or "none"
        raise UsageError(f"unknown --executor '{name}'", hint=f"available: {known}")
    return entry.obj


def _validate(plan: Plan, options: BatchOptions) -> None:
    if isinstance(options.jobs, bool) or not isinstance(options.jobs, int) or options.jobs < 1:
        raise UsageError(f"--jobs must be a positive number, got {options.jobs!r}")
    if isinstance(options.chunk_size, bool) or options.chunk_size < 1:
        raise UsageError(f"--chunk-size must be a positive number, got {options.chunk_size!r}")
    out = plan.out_dir
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out-dir '{out}' is a file, not a folder", hint="choose a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create --out-dir '{out}': {err.strerror}") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"--out-dir '{out}' is not writable", hint="choose another folder")


def check_model(options: BatchOptions) -> None:
    """Fail before any job when the checkpoint cannot be loaded or the device does not exist."""
    from ..inference import load_model, resolve_device

    if options.executor == "ray" and options.address:
        # the cluster's nodes, not this driver, need the device
        resolve_device("cpu")
    else:
        resolve_device(options.device)
    # CPU load: validates the file and its config; cached, so an in-process worker reuses it
    load_model(options.checkpoint, "cpu")


class _Progress:
    """The overall bar: jobs done, frames/s and ETA; counts in the postfix."""

    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc="batch", unit="job", disable=not enabled,
                        dynamic_ncols=True, file=sys.stderr)
        self.t0 = time.perf_counter()

    def update(self, counts: dict[str, int], frames: int) -> None:
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix({"fps": f"{frames / elapsed:.1f}", "done": counts["done"],
                              "failed": counts["failed"]}, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_batch(plan: Plan, options: BatchOptions, *,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run a planned batch with ``options``; return the summary dict.

    Rows go to ``OUT_DIR/report.jsonl`` as jobs finish. With ``fail_fast``, the first failure
    stops new jobs (those in flight finish) and a :class:`DtganError` is raised after the
    summary is complete; otherwise failures are counted in ``summary["failed"]``.
    """
    say = log or (lambda msg: print(msg, file=sys.stderr))
    _validate(plan, options)
    executor_cls = get_executor(options.executor)
    check = getattr(executor_cls, "check", None)
    if callable(check):
        check(options)  # e.g. Ray not installed: a one-line error before anything runs
    jobs = select_shard(plan.jobs, options.shard)
    out_dir = plan.out_dir
    wcfg = options.worker_config(out_dir)
    cache_dir = Path(wcfg["cache_dir"])
    removed = clean_partials([out_dir, cache_dir, *{j.output.parent for j in jobs}])
    if removed:
        say(f"removed {len(removed)} unfinished file(s) left by an earlier run")
    report = Report(out_dir / REPORT_NAME)
    shard = f"{options.shard[0]}/{options.shard[1]}" if options.shard else None
    extra = {"shard": shard} if shard else {}
    counts = {"done": 0, "skipped": 0, "failed": 0}
    frames = 0
    extractions = 0
    first_failure: JobResult | None = None

    pending: list[Job] = []
    for job in jobs:
        if not options.overwrite and output_done(job.output):
            report.append(JobResult.for_job(job, "skipped", worker="driver"), **extra)
            counts["skipped"] += 1
            continue
        missing = next(((w, p) for w, p in (("source", job.source), ("target", job.target))
                        if not p.is_file()), None)
        if missing:
            res = JobResult.for_job(job, "failed", worker="driver",
                                    error=f"{missing[0]} '{missing[1]}' does not exist")
            report.append(res, **extra)
            counts["failed"] += 1
            first_failure = first_failure or res
            continue
        pending.append(job)
    if counts["skipped"]:
        say(f"skipping {counts['skipped']} job(s) whose output already exists")

    t0 = time.perf_counter()
    stopped = bool(first_failure and options.fail_fast)
    if pending and not stopped:
        check_model(options)
        bar = _Progress(len(pending), options.progress)

        def emit(result: JobResult) -> bool:
            nonlocal frames, extractions, first_failure
            report.append(result, **extra)
            status = result.status if result.status in counts else "failed"
            counts[status] += 1
            frames += int(result.frames or 0)
            extractions += result.dynamics == "extracted"
            if status == "failed":
                first_failure = first_failure or result
                if options.progress:
                    bar.bar.write(f"failed: {Path(result.source).name} + "
                                  f"{Path(result.target).name}: {result.error}", file=sys.stderr)
            bar.update(counts, frames)
            return not (status == "failed" and options.fail_fast)

        try:
            executor = executor_cls(options, wcfg)
            executor.run(interleave_by_source(pending), emit)
        finally:
            bar.close()
    seconds = time.perf_counter() - t0
    summary = {
        "jobs": len(jobs), "done": counts["done"], "skipped": counts["skipped"],
        "failed": counts["failed"], "not_run": len(jobs) - sum(counts.values()),
        "frames": frames, "seconds": round(seconds, 3),
        "frames_per_s": round(frames / seconds, 2) if seconds > 0 else 0.0,
        "jobs_per_s": round(counts["done"] / seconds, 4) if seconds > 0 else 0.0,
        "extractions": extractions, "executor": options.executor, "workers": options.jobs,
        "shard": shard, "report": str(report.path), "out_dir": str(out_dir),
    }
    if options.fail_fast and first_failure is not None:
        summary["stopped_by"] = {"job": first_failure.job, "error": first_failure.error}
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The human-readable summary block printed at the end of ``dtgan batch``."""
    lines = [f"batch: {summary['done']} done, {summary['skipped']} skipped, "
             f"{summary['failed']} failed"
             + (f", {summary['not_run']} not run" if summary.get("not_run") else "")
             + f" of {summary['jobs']} job(s)"
             + (f" (shard {summary['shard']})" if summary.get("shard") else ""),
             f"frames: {summary['frames']} in {summary['seconds']:.1f} s "
             f"({summary['frames_per_s']:.1f} frames/s, {summary['jobs_per_s']:.3f} jobs/s, "
             f"{summary['extractions']} dynamics extraction(s))",
             f"report: {summary['report']}"]
    return "\n".join(lines)
