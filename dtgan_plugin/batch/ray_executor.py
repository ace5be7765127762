"""The ``ray`` executor: one Ray actor per worker, each holding one loaded model.

``--address`` joins a running cluster (``ray://host:10001`` or ``auto``); without it a local
Ray instance is started for the batch (``--jobs`` CPUs, no dashboard) and shut down after. On a
cluster every node must see the same paths: sources, targets and ``--out-dir`` on a shared
filesystem, and dtgan-plugin installed on each node. With ``--device cuda``/``auto`` and GPUs
in the cluster, each actor asks Ray for one GPU.

Install with ``pip install 'dtgan-plugin[ray]'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from ..system import available_cpus
from ..errors import DtganError, UsageError
from .jobs import Job, JobResult
from .runner import BatchOptions, JobRunner

INSTALL_HINT = "pip install 'dtgan-plugin[ray]'"



def import_ray() -> Any:
    """The ``ray`` module, or a one-line UsageError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray, which is not installed",
                         hint=INSTALL_HINT) from None
    return ray


class _Worker:
    """Actor body: one :class:`JobRunner` (so one model) per actor."""

    def __init__(self, config: dict[str, Any], index: int, threads: int) -> None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import socket

        import torch

        torch.set_num_threads(threads)
        self.runner = JobRunner(config, worker=f"ray-{index}@{socket.gethostname()}",
                                index=index)

    def run(self, job: Job) -> JobResult:
        """Run one job; its claim is released at once, since ``ray.kill`` at the end of the
        batch leaves the actor no exit to release it at (on another machine, it would never be
        found stale)."""
        try:
            return self.runner.run(job)
        finally:
            self.runner.close()


class RayExecutor:
    """Runs jobs on Ray actors (a local Ray, or a cluster with ``--address``)."""

    name = "ray"

    def __init__(self, options: BatchOptions, worker_config: dict[str, Any]) -> None:
        self.ray = import_ray()
        self.options = options
        self.config = worker_config
        self.jobs = max(1, int(options.jobs))

    @staticmethod
    def check(options: BatchOptions) -> None:
        """Fail up front (before any job) when Ray is not installed."""
        import_ray()

    def _init(self) -> bool:
        """Connect to or start Ray; True if we started it (and so must shut it down)."""
        ray = self.ray
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False, "ignore_reinit_error": True}
        kwargs.update(self.options.extra.get("ray_init", {}))
        if self.options.address:
            kwargs.pop("include_dashboard", None)
            try:
                ray.init(address=self.options.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise DtganError(f"cannot connect to the Ray cluster at "
                                 f"'{self.options.address}': {str(err).splitlines()[0]}",
                                 hint="check --address (e.g. ray://HEAD:10001 or auto)") from None
        else:
            kwargs.setdefault("num_cpus", max(self.jobs, available_cpus()))
            # workers of a local Ray must import this package even when it is not installed
            # (a source checkout on PYTHONPATH)
            pkg_root = str(Path(__file__).resolve().parents[2])
            path = os.pathsep.join(p for p in (pkg_root, os.environ.get("PYTHONPATH", "")) if p)
            kwargs.setdefault("runtime_env", {"env_vars": {"PYTHONPATH": path}})
            ray.init(**kwargs)
        return True

    def _actor_options(self) -> tuple[dict[str, Any], int]:
        ray = self.ray
        device = (self.config.get("device") or "auto").lower()
        gpus = 0.0
        if device.startswith("cuda") or device == "auto":
            total = ray.cluster_resources().get("GPU", 0)
            if total:
                gpus = 1.0 if total >= self.jobs else total / self.jobs
        # share the CPUs out evenly, but never ask for more than the biggest node has, or
        # the actor could never be placed
        cpus_total = int(ray.cluster_resources().get("CPU", 1))
        biggest = max((int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes()
                       if n.get("Alive")), default=1)
        cpus = max(1, min(cpus_total // self.jobs, biggest))
        opts: dict[str, Any] = {"num_cpus": cpus, "max_restarts": 0}
        if gpus:
            opts["num_gpus"] = gpus
        elif device == "auto":
            # no GPU in the cluster: keep "auto" from grabbing a GPU the scheduler did not give
            self.config = {**self.config, "device": "cpu"}
        return opts, cpus

    def run(self, jobs: Sequence[Job], emit: Callable[[JobResult], bool]) -> None:
        """Run ``jobs`` on actors; ``emit`` each result; stop handing out jobs on False."""
        if not jobs:
            return
        ray = self.ray
        started = self._init()
        actors: list[Any] = []
        try:
            opts, threads = self._actor_options()
            actor_cls = ray.remote(**opts)(_Worker)
            n = min(self.jobs, len(jobs))
            actors = [actor_cls.remote(self.config, i, threads) for i in range(n)]
            queue = list(reversed(jobs))
            idle = list(range(n))
            inflight: dict[Any, tuple[int, Job]] = {}
            stop = False
            while (queue and not stop) or inflight:
                while queue and idle and not stop:
                    i = idle.pop()
                    job = queue.pop()
                    inflight[actors[i].run.remote(job)] = (i, job)
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    i, job = inflight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayActorError:
                        result = JobResult.for_job(job, "failed", worker=f"ray-{i}",
                                                   error="Ray worker died (killed, out of "
                                                         "memory or crashed); rerun to retry")
                        # replace the dead actor so the rest of the batch goes on
                        actors[i] = actor_cls.remote(self.config, i, threads)
                    except ray.exceptions.RayError as err:
                        first = str(err).strip().splitlines()
                        result = JobResult.for_job(job, "failed", worker=f"ray-{i}",
                                                   error=f"Ray error: {first[-1] if first else type(err).__name__}")
                    idle.append(i)
                    if not emit(result):
                        stop = True
        finally:
            for actor in actors:
                try:
                    ray.kill(actor)
                except Exception:  # noqa: BLE001 - best effort at shutdown
                    pass
            if started:
                ray.shutdown()
