"""Hook specifications: the contract between dtgan and its plugins.

A plugin is a module (or object) with functions decorated by ``dtgan_plugin.hookimpl`` whose
names match the specs below. Third-party plugins are found through the ``dtgan`` entry-point
group; the built-in stages use exactly the same hooks.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("dtgan")
hookimpl = pluggy.HookimplMarker("dtgan")


@hookspec
def dtgan_register_filters(register: Callable[[type], None]) -> None:
    """Register graph stages.

    Call ``register(FilterSubclass)`` once per stage. The class's ``name`` must contain a dot
    (``myplugin.denoise``) so it never shadows an FFmpeg filter. Registering a name that another
    plugin already registered is an error that names both plugins.
    """


@hookspec
def dtgan_register_readers(register: Callable[..., None]) -> None:
    """Register video readers.

    Call ``register(name, opener, extensions=(".mp4", ...), priority=0)``. ``opener(path,
    **options)`` returns an object with ``info`` (a :class:`~dtgan_plugin.stream.StreamInfo`),
    ``chunks(chunk_size)`` yielding :class:`~dtgan_plugin.stream.VideoChunk` and ``close()``.
    The reader with the highest priority whose extensions match the path is used.
    """


@hookspec
def dtgan_register_writers(register: Callable[..., None]) -> None:
    """Register video writers.

    Call ``register(name, factory, extensions=(".mp4", ...), priority=0)``. ``factory(path,
    fps=..., width=..., height=..., **options)`` returns an object with ``write(chunk)``,
    ``close()`` (finish and rename into place) and ``abort()`` (remove the partial output).
    """


@hookspec
def dtgan_register_models(register: Callable[..., None]) -> None:
    """Register named checkpoints (and the architectures they need).

    Call ``register(name, resolve, description="")`` where ``resolve()`` returns the path of a
    ``.safetensors`` checkpoint, or raises :class:`~dtgan_plugin.errors.CheckpointError` with a
    message saying how to get it. ``--checkpoint NAME`` then resolves through this registry.
    """


@hookspec
def dtgan_register_executors(register: Callable[..., None]) -> None:
    """Register batch executors.

    Call ``register(name, executor_class)``; ``dtgan batch --executor NAME`` selects it. The
    driver constructs ``executor_class(options, worker_config)`` (a
    :class:`~dtgan_plugin.batch.BatchOptions` and the picklable settings each worker needs to
    build a :class:`~dtgan_plugin.batch.JobRunner`) and calls ``run(jobs, emit)``; the executor
    calls ``emit(JobResult)`` as each job finishes, and stops handing out new jobs when it
    returns False. The driver writes ``report.jsonl``, so every executor reports alike.
    """


@hookspec
def dtgan_register_commands(subparsers: Any) -> None:
    """Add ``dtgan`` subcommands.

    ``subparsers`` is the :mod:`argparse` sub-parsers action; call ``subparsers.add_parser``
    and set ``func=callable(args) -> int`` as a default on the new parser.
    """


@hookspec
def dtgan_register_landmarkers(register: Callable[..., None]) -> None:
    """Register face landmarkers.

    Call ``register(name, factory, description="", priority=0)``. ``factory(**options)``
    returns a :class:`~dtgan_plugin.faces.types.Landmarker`: ``detect(frames)`` maps ``(T, H,
    W, 3)`` uint8 RGB frames to the faces on each (largest first, each a one-frame
    :class:`~dtgan_plugin.faces.types.FaceTrack` with the 68-point iBUG layout in ``pts68``
    and its native points in ``points``), and ``reset()`` forgets tracking state. When two
    plugins register the same name, the higher ``priority`` wins (a host app may replace a
    built-in); equal priorities are an error naming both plugins. A factory whose optional
    dependency is missing raises :class:`~dtgan_plugin.errors.UsageError` naming the install
    command; ``dtgan_plugin.faces.get_landmarker(name, **options)`` resolves through this hook.
    """
