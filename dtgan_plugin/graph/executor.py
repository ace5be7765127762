"""The streaming executor: one thread per task, bounded channels between them.

A *task* is a producer (a reader), a stage, or a consumer (a writer). Each runs on its own
thread and talks to its neighbours only through :class:`Channel` objects of a few chunks each,
so decoding, computing and encoding overlap and memory stays bounded however long the video.

Fan-out is native: a task's output pad may feed several channels; a packet is then *shared*
(stages must never modify their input tensors in place). A consumer that stops early (a trim
that has its range) drops its channels, and a producer whose every consumer is gone stops, so
decoding ends early too.

Diamond-shaped graphs (a stream split, then joined again) can deadlock with bounded queues when
the two branches are consumed at different rates (FFmpeg buffers without limit there). The
executor detects a real wait cycle when a thread is about to block and lets exactly one packet
through the full channel on that cycle, so memory only grows by what the graph's semantics
require, and never for straight chains.

Errors in any task stop every task promptly (blocked threads are woken), the first error is
re-raised in the caller, and the caller's ``on_abort`` callbacks run (writers remove their
partial output). KeyboardInterrupt in the caller does the same.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

#: default capacity of a channel, in packets (chunks)
DEFAULT_QUEUE = 3
#: allocations at least this large always come from mmap (see :func:`tune_allocator`)
MMAP_THRESHOLD = 8 << 20

_tuned = False


def tune_allocator(default: bool = False) -> bool:
    """Keep chunk-sized tensors out of glibc's heaps, so peak memory settles at once.

    glibc raises its mmap threshold (128 KiB at start) each time a larger mmapped block is
    freed, after which chunk-sized tensors come from per-thread heaps, which fragment: peak
    RSS creeps up over the first several hundred frames before it settles. Pinning the
    threshold at 8 MiB, the decoded chunks' byte budget (:data:`..stream.CHUNK_BYTES`),
    returns every larger block to the OS when it is freed. Decoded chunks come from a buffer
    pool either way (:mod:`dtgan_plugin.media.framepool`), so what this costs is the page
    faults of the stages' own chunk-sized outputs. Measured on a 256->128
    decode-resize-encode graph, chunks of 32: peak 379/418 MiB (300/3,000 frames) without,
    372/397 MiB with a 1 MiB threshold, 308/312 MiB with 8 MiB (``tests/test_streaming_memory``).

    Why 8 MiB and not 1: a stage's per-frame temporaries must stay in the heap, where they
    are reused already paged in. At 1 MiB every one of them was a fresh mapping, faulted in
    page by page: carphone driving the astronaut at the default detail (420 px) ran at 11–13
    frames/s under ``dtgan`` against 18–20 in a library caller; at 8 MiB, with the detail
    warped a frame at a time, both run at 22–23.

    ``DTGAN_MALLOC_TUNING=1`` turns it on, ``=0`` off; unset, ``default`` decides (the
    ``dtgan`` command passes True: it owns its process; a library embedded in someone else's
    program does not change their allocator unless asked). Process-wide, applied once,
    Linux/glibc only. Returns True when applied.
    """
    global _tuned
    if _tuned:
        return True
    setting = os.environ.get("DTGAN_MALLOC_TUNING", "").strip()
    wanted = setting == "1" or (setting == "" and default)
    if not sys.platform.startswith("linux") or not wanted:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_mmap_threshold = -3  # from malloc.h
        _tuned = bool(libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl, another allocator): nothing to tune
        _tuned = False
    return _tuned


class _Cancelled(Exception):
    """Raised inside a task thread when the graph is stopping because of another failure."""


_EOS = object()


class Channel:
    """A bounded FIFO from one task to one consumer task, coordinated by the executor."""

    def __init__(self, ex: "Executor", producer: int, consumer: int, capacity: int) -> None:
        self.ex = ex
        self.producer = producer
        self.consumer = consumer
        self.capacity = max(1, capacity)
        self.items: collections.deque[Any] = collections.deque()
        self.closed = False    # the producer is done
        self.dropped = False   # the consumer is done (stopped reading)
        self.forced = 0        # puts allowed past capacity to break a wait cycle
        self.peak = 0          # the most items held at once (for diagnostics and tests)
        # waiters on this channel only (its producer's put, its consumer's get): waking every
        # thread of the graph on each packet made long chains quadratic
        self.cond = threading.Condition(ex.lock)
        self.on_cycle = True   # False once the executor knows no wait cycle can use it

    def _wait(self, op: str, blocked: Callable[[], bool]) -> None:
        """Wait (lock held) while ``blocked()``, breaking wait cycles; raise if the run failed."""
        ex = self.ex
        while blocked() and ex.failed is None:
            me = ex.current_task()
            ex.blocked[me] = (self, op)
            try:
                if ex.resolve_deadlock(me):
                    continue
                self.cond.wait(1.0)
            finally:
                ex.blocked.pop(me, None)
        if ex.failed is not None:
            raise _Cancelled

    def _full(self) -> bool:
        """Whether a put must wait; a forced release lets one put past capacity."""
        if len(self.items) < self.capacity or self.dropped:
            return False
        if self.forced:
            self.forced -= 1
            return False
        return True

    def put(self, item: Any) -> bool:
        """Append ``item``; block while full. False if the consumer is gone."""
        with self.ex.cond:
            self._wait("put", self._full)
            if self.dropped:
                return False
            self.forced = 0  # a release not needed any more must not linger
            self.items.append(item)
            self.peak = max(self.peak, len(self.items))
            self.cond.notify_all()
            return True

    def get(self) -> Any:
        """Next item, or ``_EOS`` once the producer is done and the channel is empty."""
        with self.ex.cond:
            self._wait("get", lambda: not self.items and not self.closed)
            if self.items:
                item = self.items.popleft()
                self.cond.notify_all()
                return item
            return _EOS

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self.get()
            if item is _EOS:
                return
            yield item


Body = Callable[[list[Iterator[Any]]], Iterator[Any] | None]


@dataclass
class Task:
    """A unit of work on its own thread.

    ``body(inputs)`` gets one iterator per input and returns an iterator of output packets
    (``(pad, packet)`` tuples when ``multi``), or None for a consumer. ``cleanup`` runs on the
    task's thread when it ends, whatever the reason.
    """

    name: str
    body: Body
    inputs: list[tuple[int, int]] = field(default_factory=list)   # (task id, output pad)
    n_outputs: int = 1
    multi: bool = False
    cleanup: Callable[[], None] | None = None
    # filled by the executor
    in_channels: list[Channel] = field(default_factory=list)
    out_channels: list[list[Channel]] = field(default_factory=list)


@dataclass
class ExecResult:
    """How long the run took and what each task reported."""

    seconds: float
    peaks: dict[str, int]


class Executor:
    """Wire tasks with channels and run them to completion or first failure."""

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE) -> None:
        self.queue_size = queue_size
        self.tasks: list[Task] = []
        #: one lock for all channel state; each channel waits on its own condition over it
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.failed: BaseException | None = None
        self.blocked: dict[int, tuple[Channel, str]] = {}
        self._local = threading.local()
        self.channels: list[Channel] = []
        self.deadlocks_broken = 0
        #: wait-graph steps walked looking for cycles (linear-time tests count them)
        self.cycle_checks = 0

    # ----------------------------------------------------------------------------- building
    def add(self, task: Task) -> int:
        """Add a task; its inputs must refer to tasks added before (a DAG in topological order)."""
        tid = len(self.tasks)
        for src, pad in task.inputs:
            if not 0 <= src < tid:
                raise ValueError(f"task {task.name!r} reads task {src}, which is not added yet")
            if not 0 <= pad < self.tasks[src].n_outputs:
                raise ValueError(f"task {task.name!r} reads pad {pad} of a task with "
                                 f"{self.tasks[src].n_outputs} outputs")
        self.tasks.append(task)
        task.out_channels = [[] for _ in range(task.n_outputs)]
        for src, pad in task.inputs:
            ch = Channel(self, src, tid, self.queue_size)
            self.channels.append(ch)
            task.in_channels.append(ch)
            self.tasks[src].out_channels[pad].append(ch)
        return tid

    # ------------------------------------------------------------------------- coordination
    def current_task(self) -> int:
        """The id of the task running on this thread."""
        return getattr(self._local, "task", -1)

    def fail(self, err: BaseException) -> None:
        """Record the first failure and wake every blocked thread."""
        with self.cond:
            if self.failed is None:
                self.failed = err
            self._wake_all()

    def _wake_all(self) -> None:
        """Wake every waiting thread (lock held): the graph is stopping."""
        self.cond.notify_all()
        for ch in self.channels:
            ch.cond.notify_all()

    def resolve_deadlock(self, me: int) -> bool:
        """With ``me`` just marked blocked, break a wait cycle through it if there is one.

        Called with the lock held. Each blocked task waits on exactly one other task (the
        consumer of the channel it puts to, or the producer of the one it reads), so the
        waits form a functional graph; a cycle means no task on it can ever move. One full
        channel on the cycle is then allowed one more packet. Returns True if ``me`` may retry.
        """
        if me < 0:
            return False  # a thread the executor did not start: it takes no part
        if not self.blocked[me][0].on_cycle:
            return False  # a bridge of the task graph: no wait cycle can pass through it
        seen: list[int] = []
        t = me
        while True:
            self.cycle_checks += 1
            state = self.blocked.get(t)
            if state is None:
                return False      # someone on the path is running: it will wake us
            ch, op = state
            # a thread notified but not yet running again is still listed: judge it by its
            # channel, not by the list
            if op == "put" and (ch.forced or ch.dropped or len(ch.items) < ch.capacity):
                return False
            if op == "get" and (ch.items or ch.closed):
                return False
            seen.append(t)
            t = ch.consumer if op == "put" else ch.producer
            if t == me:
                break
            if t in seen:
                return False      # a cycle not through me; its own members resolve it
        # Release a put whose consumer is itself waiting to read another input: that is the
        # join point of the diamond, and buffering there keeps every other channel bounded.
        puts = [t for t in seen if self.blocked[t][1] == "put"]
        if not puts:  # pragma: no cover - a cycle of reads only is impossible in a DAG
            return False
        joins = [t for t in puts
                 if self.blocked.get(self.blocked[t][0].consumer, (None, ""))[1] == "get"]
        chosen = (joins or puts)[0]
        released = self.blocked[chosen][0]
        released.forced += 1
        self.deadlocks_broken += 1
        released.cond.notify_all()
        return chosen == me

    def _mark_bridges(self) -> None:
        """Flag the channels no wait cycle can use: the bridges of the undirected task graph.

        A wait cycle follows channels around an undirected cycle of tasks (a split joined
        again), so a channel on no such cycle never needs the cycle search; in a straight
        chain none does, which keeps long chains linear. Tarjan's bridge search, iterative
        so that graphs of thousands of stages do not hit the recursion limit.
        """
        adj: list[list[tuple[int, int]]] = [[] for _ in self.tasks]
        for k, ch in enumerate(self.channels):
            adj[ch.producer].append((ch.consumer, k))
            adj[ch.consumer].append((ch.producer, k))
        order = [-1] * len(self.tasks)
        low = [0] * len(self.tasks)
        counter = 0
        for root in range(len(self.tasks)):
            if order[root] >= 0:
                continue
            order[root] = low[root] = counter
            counter += 1
            stack: list[tuple[int, int, int]] = [(root, -1, 0)]  # (task, via channel, next)
            while stack:
                v, via, i = stack[-1]
                if i < len(adj[v]):
                    stack[-1] = (v, via, i + 1)
                    w, k = adj[v][i]
                    if k == via:
                        continue
                    if order[w] < 0:
                        order[w] = low[w] = counter
                        counter += 1
                        stack.append((w, k, 0))
                    else:
                        low[v] = min(low[v], order[w])
                    continue
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[v])
                    if low[v] > order[parent]:
                        self.channels[via].on_cycle = False

    # ------------------------------------------------------------------------------ running
    def _drop_inputs(self, task: Task) -> None:
        with self.cond:
            for ch in task.in_channels:
                ch.dropped = True
                ch.items.clear()
                ch.cond.notify_all()

    def _close_outputs(self, task: Task) -> None:
        with self.cond:
            for chans in task.out_channels:
                for ch in chans:
                    ch.closed = True
                    ch.cond.notify_all()

    def _all_dropped(self, task: Task) -> bool:
        with self.cond:
            return all(ch.dropped for chans in task.out_channels for ch in chans)

    def _run_task(self, tid: int) -> None:
        self._local.task = tid
        task = self.tasks[tid]
        gen: Any = None
        try:
            gen = task.body([iter(ch) for ch in task.in_channels])
            if gen is not None:
                if task.n_outputs and self._all_dropped(task):
                    return  # nobody reads this task: do not even start it
                for item in gen:
                    if task.multi:
                        pad, packet = item
                        if not 0 <= pad < task.n_outputs:
                            raise RuntimeError(f"{task.name} yielded pad {pad}, it has "
                                               f"{task.n_outputs} outputs")
                        targets = task.out_channels[pad]
                    else:
                        packet, targets = item, task.out_channels[0] if task.n_outputs else []
                    for ch in targets:
                        ch.put(packet)
                    # drop our references before asking for the next packet, so a chunk the
                    # consumers are done with is freed while this stage computes
                    del item, packet
                    if task.n_outputs and self._all_dropped(task):
                        break  # every consumer stopped reading: stop producing
        except _Cancelled:
            pass
        except BaseException as err:  # noqa: BLE001 - any failure must stop the whole graph
            self.fail(err)
        finally:
            if gen is not None and hasattr(gen, "close"):
                try:
                    gen.close()  # runs the stage's own finally blocks on this thread
                except BaseException as err:  # noqa: BLE001
                    self.fail(err)
            self._drop_inputs(task)
            self._close_outputs(task)
            if task.cleanup is not None:
                try:
                    task.cleanup()
                except BaseException as err:  # noqa: BLE001
                    self.fail(err)

    def run(self, *, on_abort: Sequence[Callable[[], None]] = (),
            poll: float = 0.1) -> ExecResult:
        """Start every task, wait for all, and re-raise the first failure (after ``on_abort``)."""
        tune_allocator()
        self._mark_bridges()
        t0 = time.perf_counter()
        threads = [threading.Thread(target=self._run_task, args=(i,), daemon=True,
                                    name=f"dtgan:{t.name}") for i, t in enumerate(self.tasks)]
        try:
            for th in threads:
                th.start()
            for th in threads:
                while th.is_alive():
                    th.join(poll)
        except BaseException as err:  # KeyboardInterrupt in the caller: stop everything
            self.fail(err)
            self._shutdown(threads, on_abort)
            raise
        if self.failed is not None:
            self._shutdown(threads, on_abort)
            raise self.failed
        return ExecResult(time.perf_counter() - t0,
                          {f"{self.tasks[c.producer].name}->{self.tasks[c.consumer].name}":
                           c.peak for c in self.channels})

    def _shutdown(self, threads: list[threading.Thread], on_abort: Sequence[Callable[[], None]],
                  grace: float = 2.0) -> None:
        # give threads a moment to notice the stop before killing the processes they may be
        # blocked on (a writer stuck in a pipe write is released by the abort)
        deadline = time.perf_counter() + grace
        for th in threads:
            th.join(max(0.0, deadline - time.perf_counter()))
        for abort in on_abort:
            try:
                abort()
            except Exception as err:  # noqa: BLE001 - report, but the first error wins
                print(f"dtgan: warning: cleanup failed: {err}", file=sys.stderr)
        for th in threads:
            th.join(grace)
