"""The ``local`` executor: worker processes on this machine.

``--jobs 1`` runs jobs in the calling process (no start-up cost, the model stays loaded).
``--jobs N`` starts N *spawned* processes (fork is unsafe once torch has started threads);
each loads the model once, uses ``cores // N`` torch threads, and, when several CUDA GPUs are
visible, takes GPU ``index % count``. At most N + 1 jobs are handed out at a time, so a
``--fail-fast`` stop or a Ctrl-C leaves little queued work behind.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

from ..system import available_cpus
from .jobs import Job, JobResult
from .lifeline import die_with_parent
from .runner import BatchOptions, JobRunner

# per-process state of a pool worker
_runner: JobRunner | None = None


def _init_worker(config: dict[str, Any], counter: Any, threads: int) -> None:
    """Pool initializer: die with the driver, take a worker index, limit threads, build the
    runner."""
    global _runner
    die_with_parent(int(config.get("driver_pid") or os.getppid()))
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    # set before torch starts its pools; torch.set_num_threads below covers the intra-op pool
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    with_interop = getattr(torch, "set_num_interop_threads", None)
    if with_interop is not None:
        try:
            with_interop(max(1, min(2, threads)))
        except RuntimeError:  # already set (torch allows it once)
            pass
    _runner = JobRunner(config, worker=f"local-{index}", index=index)


def _run_job(job: Job) -> JobResult:
    """Pool task: run one job in this worker."""
    assert _runner is not None, "worker not initialised"
    return _runner.run(job)


class LocalExecutor:
    """Runs jobs in ``--jobs`` processes on this machine (in-process for one job at a time)."""

    name = "local"

    def __init__(self, options: BatchOptions, worker_config: dict[str, Any]) -> None:
        self.options = options
        self.config = worker_config
        self.jobs = max(1, int(options.jobs))

    def run(self, jobs: Sequence[Job], emit: Callable[[JobResult], bool]) -> None:
        """Run ``jobs``; ``emit`` each result; stop handing out jobs when it returns False."""
        if not jobs:
            return
        if self.jobs == 1:
            runner = JobRunner(self.config, worker="local-0", index=0)
            try:
                for job in jobs:
                    if not emit(runner.run(job)):
                        return
            finally:
                runner.close()
            return
        self._run_pool(list(jobs), emit)

    def _run_pool(self, jobs: list[Job], emit: Callable[[JobResult], bool]) -> None:
        ctx = mp.get_context("spawn")
        counter = ctx.Value("i", 0)
        threads = max(1, available_cpus() // self.jobs)
        workers = min(self.jobs, len(jobs))
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                   initializer=_init_worker,
                                   initargs=(self.config, counter, threads))
        queue = list(reversed(jobs))
        inflight: dict[Future, Job] = {}
        stop = False
        try:
            while queue or inflight:
                while queue and not stop and len(inflight) < workers + 1:
                    job = queue.pop()
                    inflight[pool.submit(_run_job, job)] = job
                if not inflight:
                    break
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for fut in done:
                    job = inflight.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        # a worker died (killed, out of memory, a crash in native code); the
                        # jobs in flight are lost with it and rerunning the batch retries them
                        result = JobResult.for_job(job, "failed", worker="local",
                                                   error="worker process died (killed, out of "
                                                         "memory or crashed); rerun to retry")
                        stop_pool = True
                    except Exception as err:  # noqa: BLE001 - e.g. unpicklable result
                        result = JobResult.for_job(job, "failed", worker="local",
                                                   error=f"internal error: {type(err).__name__}: "
                                                         f"{str(err).splitlines()[0] if str(err) else ''}")
                        stop_pool = False
                    else:
                        stop_pool = False
                    if not emit(result):
                        stop = True
                    if stop_pool:
                        # a broken pool runs nothing more: report what was in flight, then
                        # restart it for the rest
                        for other, ojob in list(inflight.items()):
                            inflight.pop(other)
                            if not emit(JobResult.for_job(
                                    ojob, "failed", worker="local",
                                    error="worker process died while this job ran; rerun "
                                          "to retry")):
                                stop = True
                        pool.shutdown(wait=False, cancel_futures=True)
                        if stop or not queue:
                            return
                        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                                   initializer=_init_worker,
                                                   initargs=(self.config, counter, threads))
                if stop:
                    queue.clear()
        except KeyboardInterrupt:
            # workers share our process group, so a terminal Ctrl-C reached them too and their
            # writers removed their temp files; don't wait for anything queued
            pool.shutdown(wait=False, cancel_futures=True)
            _terminate(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's processes now (SIGTERM); their temp files are cleaned on the next run."""
    procs = getattr(pool, "_processes", None) or {}
    for proc in list(procs.values()):
        try:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
