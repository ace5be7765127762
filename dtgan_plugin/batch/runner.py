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
import stat
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

from ..atomic import clean_stale, commit, discard, release_claim, temp_path, try_claim
from ..errors import DtganError, MediaError, UsageError
from ..stream import DEFAULT_CHUNK
from .jobs import REPORT_NAME, Job, JobResult, Plan, Report, select_shard

#: folder (inside the output folder) of the dynamics cache, unless ``cache_dir`` says otherwise
CACHE_DIRNAME = ".dyn"
#: folder (inside the output folder) of the job claims that let several drivers share the work
CLAIMS_DIRNAME = ".claims"
#: containers that cannot carry an audio track (``keep_audio`` is ignored for them)
_NO_AUDIO_SUFFIXES = frozenset({".gif", ".y4m"})
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
    chunk_size: int = DEFAULT_CHUNK
    cache_dir: Path | None = None
    #: inference backend of every worker: ``torch`` or ``onnxruntime`` (CPU only)
    backend: str = "torch"
    #: extra executor-specific settings (e.g. ``ray_init`` keyword arguments)
    extra: dict[str, Any] = field(default_factory=dict)

    def worker_config(self, out_dir: Path) -> dict[str, Any]:
        """The picklable settings a worker needs."""
        # onnxruntime runs on the CPU: "auto" must not hand workers GPUs (or Ray GPU slots)
        device = "cpu" if self.backend == "onnxruntime" else self.device
        return {"checkpoint": str(self.checkpoint), "device": device, "backend": self.backend,
                "cache_dir": str(self.cache_dir or out_dir / CACHE_DIRNAME),
                "claims_dir": str(out_dir / CLAIMS_DIRNAME), "driver_pid": os.getpid(),
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


def dynamics_key(source: Path, fingerprint: str, reference_frame: int, fit: str,
                 crop: str = "none", face: int = 0) -> str:
    """Cache key of a source's dynamics: its path, size and mtime, the model and the settings.

    A changed file (new size or mtime) or another model gets a new key, so a stale cache entry
    is never used.
    """
    st = source.stat()
    blob = json.dumps({"path": str(source), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                       "checkpoint": fingerprint, "reference_frame": int(reference_frame),
                       "fit": fit, **({"crop": crop, "face": int(face)} if crop != "none" else {})},
                      sort_keys=True)  # crop "none" keeps the keys of caches made before it
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
        self.backend = str(config.get("backend", "torch"))
        self.cache_dir = Path(config["cache_dir"])
        self.chunk_size = int(config.get("chunk_size", DEFAULT_CHUNK))
        claims = config.get("claims_dir")
        self.claims_dir = Path(claims) if claims else None
        self._claims: list[Path] = []
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
            from ..export.ort_backend import load_backend

            self._model = load_backend(self.checkpoint, self.device, self.backend)
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
        key = dynamics_key(job.source, self._fingerprint, opts.reference_frame, opts.fit,
                           opts.crop, opts.face)
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
                                 fit=opts.fit, progress=False, chunk_size=self.chunk_size,
                                 crop=opts.crop, face=opts.face, backend=self.backend)
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
        """Run one job; every failure becomes a ``failed`` result with a one-line error.

        A job another live driver has claimed gives a ``claimed`` result: that driver runs
        and reports it, so no report row is written for it here. So does a job whose output
        appeared after the driver's triage (another driver finished and reported it).
        """
        t0 = time.perf_counter()
        if self._claim(job) is False:
            return JobResult.for_job(job, "claimed", worker=self.worker)
        if not self.overwrite and output_done(job.output):
            # an earlier worker, or a driver that has ended since (releasing its claims),
            # finished it after this driver's triage: whoever finished it wrote its row, so
            # no second one ("skipped") is written here (two drivers once left 9 rows for 8
            # jobs when one ended before the other reached its last jobs)
            return JobResult.for_job(job, "claimed", worker=self.worker)
        how: str | None = None
        t_ext = 0.0
        try:
            for what, path in (("source", job.source), ("target", job.target)):
                problem = input_problem(what, path)
                if problem:
                    raise MediaError(problem)
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

    def _claim(self, job: Job) -> bool | None:
        """Claim ``job`` for this worker (True), or learn a live driver holds it (False).

        The claim is kept until :meth:`close` (or this process's exit), so a driver starting
        later sees which finished outputs a live run has reported. None: no claims folder.
        """
        if self.claims_dir is None:
            return None
        self.claims_dir.mkdir(parents=True, exist_ok=True)
        lock = self.claims_dir / f"{claim_key(job, self.claims_dir.parent)}.claim"
        if lock in self._claims:
            return True
        if not try_claim(lock):
            return False
        self._claims.append(lock)
        return True

    def close(self) -> None:
        """Release every claim this runner holds."""
        while self._claims:
            with contextlib.suppress(OSError):
                release_claim(self._claims.pop())

    def _transfer(self, job: Job, dyn: Path) -> int:
        from ..api import transfer

        opts = job.options
        out = job.output
        out.parent.mkdir(parents=True, exist_ok=True)
        audio = opts.keep_audio and out.suffix.lower() not in _NO_AUDIO_SUFFIXES
        # with audio, the video goes to a temp name first and the muxed file is renamed into
        # place; either way the final name only ever appears complete
        video = temp_path(out, "video") if audio else out
        try:
            stats = transfer(None, job.target, video, dynamics=dyn, checkpoint=self.checkpoint,
                             device=self.device, amplify=opts.amplify, size=opts.size,
                             fit=opts.fit, codec=opts.codec, crf=opts.crf, smooth=opts.smooth,
                             progress=False, chunk_size=self.chunk_size, alpha=opts.alpha,
                             crop=opts.crop, face=opts.face, paste_back=opts.paste_back,
                             detail=opts.detail, head=opts.head, backend=self.backend)
            if audio:
                from ..dynfile import DynamicsFile

                add_source_audio(video, job.source, out, frames=int(stats.frames),
                                 fps=DynamicsFile(dyn).fps)
        finally:
            if audio:
                discard(video)
        return int(getattr(stats, "frames", 0) or 0)


def claim_key(job: Job, out_dir: Path) -> str:
    """The claim name of ``job``: its output path relative to the output folder, hashed (so
    drivers on machines that mount the folder elsewhere agree)."""
    try:
        rel = os.path.relpath(job.output, out_dir)
    except ValueError:
        rel = str(job.output)
    return hashlib.sha256(rel.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def input_problem(what: str, path: Path) -> str | None:
    """Why ``path`` cannot be read as a job's input file, or None when it is a regular file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"{what} '{path}' does not exist"
    except OSError as err:
        return f"{what} '{path}' cannot be read: {err.strerror}"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"{what} '{path}' is {kind}, not a media file"


def add_source_audio(video: Path, source: Path, output: Path, *, frames: int,
                     fps: float) -> None:
    """Write ``output`` = ``video``'s picture + ``source``'s first audio track (temp + rename).

    The audio is cut to the video's duration (``frames / fps``), so the picture keeps every
    frame whether the audio is longer or shorter. A source without audio gives the video
    unchanged. The muxing itself is :func:`dtgan_plugin.media.mux.mux_audio`'s.
    """
    from ..media.ffmpeg_bin import fps_fraction
    from ..media.mux import mux_audio, source_audio_codec

    codec = source_audio_codec(source)
    if codec is None:
        commit(video, output)
        return
    tmp = temp_path(output, "mux")
    try:
        mux_audio(video, source, tmp, duration=Fraction(frames) / fps_fraction(fps),
                  audio_codec=codec, what=f"'{output.name}'", hint="rerun without --keep-audio")
        commit(tmp, output)
    finally:
        discard(tmp)


# =========================================================================== driver side

def clean_partials(folders: Sequence[Path]) -> list[Path]:
    """Remove temp files a killed run left in ``folders``; returns what was removed.

    A temp file whose writer (the pid in its name) is still running on this machine is left
    alone, so two shards sharing an output folder do not break each other
    (:func:`dtgan_plugin.atomic.clean_stale`). Claims of dead drivers go too.
    """
    removed: list[Path] = []
    for folder in dict.fromkeys(folders):
        removed += clean_stale(folder)
        removed += _clean_unnamed(folder)
    return removed


def _clean_unnamed(folder: Path) -> list[Path]:
    """Temporaries without a pid (older writers): stale after ``_STALE_SECONDS`` unwritten."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.rsplit(".", 1)[-1] in ("partial", "raw", "tmp")):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and \
                    time.time() - entry.stat().st_mtime > _STALE_SECONDS:
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


def claim_held(lock: Path) -> bool:
    """True when ``lock`` is a job claim of a live process (or of another machine)."""
    from ..atomic import claim_stale

    return lock.exists() and not claim_stale(lock)


def _validate(plan: Plan, options: BatchOptions) -> None:
    from ..export.ort_backend import check_backend_device

    check_backend_device(options.backend, options.device)
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
    """Fail before any job when the checkpoint cannot be loaded or the device does not exist.

    With onnxruntime the checkpoint is exported into the cache here, once, before any worker.
    """
    from ..export.ort_backend import load_backend
    from ..inference import load_model
    from ..system import resolve_device

    if options.executor == "ray" and options.address:
        # the cluster's nodes, not this driver, need the device
        resolve_device("cpu")
    else:
        resolve_device(options.device)
    # CPU load: validates the file and its config; cached, so an in-process worker reuses it
    if options.backend == "onnxruntime":
        load_backend(options.checkpoint, "cpu", options.backend)
    else:
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


def _triage(jobs: Sequence[Job], options: BatchOptions, out_dir: Path,
            write: Callable[[JobResult], None], counts: dict[str, int]
            ) -> tuple[list[Job], JobResult | None]:
    """Report jobs already done or with unusable inputs; return the rest and the first failure.

    A finished output whose claim a live driver still holds is that driver's to report.
    """
    claims_dir = out_dir / CLAIMS_DIRNAME
    pending: list[Job] = []
    first_failure: JobResult | None = None
    for job in jobs:
        if not options.overwrite and output_done(job.output):
            if claim_held(claims_dir / f"{claim_key(job, out_dir)}.claim"):
                counts["claimed"] += 1
                continue
            write(JobResult.for_job(job, "skipped", worker="driver"))
            counts["skipped"] += 1
            continue
        problem = next((msg for msg in (input_problem("source", job.source),
                                        input_problem("target", job.target)) if msg), None)
        if problem:
            res = JobResult.for_job(job, "failed", worker="driver", error=problem)
            write(res)
            counts["failed"] += 1
            first_failure = first_failure or res
            continue
        pending.append(job)
    return pending, first_failure


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
    counts = {"done": 0, "skipped": 0, "failed": 0, "claimed": 0}
    frames = 0
    extractions = 0
    pending, first_failure = _triage(jobs, options, out_dir, lambda r: report.append(r, **extra),
                                     counts)
    if counts["skipped"]:
        say(f"skipping {counts['skipped']} job(s) whose output already exists")

    t0 = time.perf_counter()
    stopped = bool(first_failure and options.fail_fast)
    if pending and not stopped:
        check_model(options)
        bar = _Progress(len(pending), options.progress)

        def emit(result: JobResult) -> bool:
            nonlocal frames, extractions, first_failure
            if result.status != "claimed":  # the claiming driver writes that job's row
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
        "failed": counts["failed"], "claimed": counts["claimed"],
        "not_run": len(jobs) - sum(counts.values()),
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
             + (f", {summary['claimed']} run by another driver" if summary.get("claimed") else "")
             + (f", {summary['not_run']} not run" if summary.get("not_run") else "")
             + f" of {summary['jobs']} job(s)"
             + (f" (shard {summary['shard']})" if summary.get("shard") else ""),
             f"frames: {summary['frames']} in {summary['seconds']:.1f} s "
             f"({summary['frames_per_s']:.1f} frames/s, {summary['jobs_per_s']:.3f} jobs/s, "
             f"{summary['extractions']} dynamics extraction(s))",
             f"report: {summary['report']}"]
    return "\n".join(lines)
