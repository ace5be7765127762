"""torch vs onnxruntime on the shipped model, in the same run (pytest-benchmark, issue 16).

Run alone (other CPU load skews every figure)::

    PYTHONPATH=. .venv/bin/python -m pytest benchmarks/test_bench_onnx.py --benchmark-only \
        --benchmark-columns=median,rounds

Cases, each over a 32-frame clip at the model's working size (64×64 for the shipped model),
through the streaming classes of :mod:`dtgan_plugin.inference` that the commands use:

* ``encoder`` — :class:`DynamicsExtractor` (φ, the LSTM step with its state, ASD);
* ``renderer`` — :class:`Renderer.render` for one target;
* ``end_to_end`` — both, chunk by chunk (everything but decoding and encoding video, which
  does not depend on the backend);

at ``chunk`` 1 (frame-by-frame streaming) and 32. Both backends use the same number of threads.
A summary table (median ms per 32 frames, frames/s and the torch/onnxruntime ratio) is printed
at the end.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed "
                                          "(pip install 'dtgan-plugin[onnx]')")

from dtgan_plugin.export import export_model  # noqa: E402
from dtgan_plugin.export.ort_backend import OrtModel  # noqa: E402
from dtgan_plugin.inference import DynamicsExtractor, Renderer, load_model  # noqa: E402

THREADS = 2
FRAMES = 32
CHUNKS = (1, 32)
PIECES = ("encoder", "renderer", "end_to_end")
BACKENDS = ("torch", "onnxruntime")
_MEDIANS: dict[tuple[str, int, str], float] = {}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory,
           pytestconfig: pytest.Config) -> Iterator[dict[str, Any]]:
    """The shipped model on both backends (exported once into a temporary folder)."""
    old = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    torch_model = load_model("cartoon64")
    folder = tmp_path_factory.mktemp("bench-onnx") / "cartoon64"
    export_model(torch_model, folder)
    yield {"torch": torch_model, "onnxruntime": OrtModel(folder, threads=THREADS)}
    torch.set_num_threads(old)
    _print_table(pytestconfig)


def _clip(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(FRAMES, 3, size, size, generator=gen), torch.rand(3, size, size,
                                                                         generator=gen)


def _case(model: Any, piece: str, chunk: int) -> Callable[[], None]:
    """One round: the piece over the 32-frame clip in chunks of ``chunk``."""
    src, target = _clip(int(model.config.resolution))
    renderer = Renderer(model, target)
    dyn = DynamicsExtractor(model).push(src)
    parts = src.split(chunk)

    def encoder() -> None:
        ex = DynamicsExtractor(model)
        for part in parts:
            ex.push(part)

    def render() -> None:
        for part in dyn.split(chunk):
            renderer.render(part)

    def end_to_end() -> None:
        ex, rend = DynamicsExtractor(model), Renderer(model, target)
        for part in parts:
            rend.render(ex.push(part))

    return {"encoder": encoder, "renderer": render, "end_to_end": end_to_end}[piece]


# the two backends of one case run back to back, so a change in machine load hits both alike
CASES = [(piece, chunk, backend) for piece in PIECES for chunk in CHUNKS for backend in BACKENDS]


@pytest.mark.parametrize(("piece", "chunk", "backend"), CASES)
def test_bench(benchmark: Any, models: dict[str, Any], backend: str, piece: str,
               chunk: int) -> None:
    """Time one piece on one backend; the median goes into the summary table."""
    fn = _case(models[backend], piece, chunk)
    fn()  # warm-up: first calls allocate and (onnxruntime) plan memory
    benchmark.group = f"{piece} chunk {chunk}"
    benchmark.extra_info.update(backend=backend, frames=FRAMES, chunk=chunk)
    benchmark(fn)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        _MEDIANS[(piece, chunk, backend)] = float(stats.stats.median)


def _print_table(config: pytest.Config) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or not _MEDIANS:
        return
    with (capture.global_and_fixture_disabled() if capture is not None
          else contextlib.nullcontext()):
        reporter.write_line("")
        reporter.write_line(f"torch vs onnxruntime, {FRAMES} frames per round, {THREADS} "
                            "threads (median)")
        reporter.write_line(f"{'case':<22}{'torch ms':>10}{'ort ms':>10}{'torch f/s':>11}"
                            f"{'ort f/s':>10}{'speed-up':>10}")
        for piece in PIECES:
            for chunk in CHUNKS:
                t = _MEDIANS.get((piece, chunk, "torch"))
                o = _MEDIANS.get((piece, chunk, "onnxruntime"))
                if t is None or o is None:
                    continue
                reporter.write_line(f"{piece + ' chunk ' + str(chunk):<22}{t * 1e3:>10.1f}"
                                    f"{o * 1e3:>10.1f}{FRAMES / t:>11.0f}{FRAMES / o:>10.0f}"
                                    f"{t / o:>9.2f}x")

