"""The Python API: one-call transfer and dynamics extraction, and a streaming Transferer.

``transfer`` and ``extract_dynamics`` build a filter graph and run it, so decode, the model and
encode overlap on threads exactly as in ``dtgan graph``. :class:`Transferer` is for host
applications that decode and encode themselves: push frame chunks, get frame chunks back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import UsageError
from .inference import DynamicsExtractor, Renderer, load_model, resolve_device

PathLike = str | os.PathLike[str]


def _quote(value: Any) -> str:
    """Escape an option value for the graph syntax (both of FFmpeg's escaping levels)."""
    from .graph.parser import escape_option_value

    return escape_option_value(str(value))


def _run(graph_text: str, inputs: dict[str, str], output: str, *, device: str, progress: bool,
         keep_audio: bool | str = False, codec: str = "auto", crf: int | None = None,
         chunk_size: int = 32) -> Any:
    from .graph import Graph

    graph = Graph.parse(graph_text, inputs=list(inputs), outputs=["out"])
    return graph.run(inputs, {"out": output}, device=device, progress=progress,
                     keep_audio=keep_audio, codec=codec, crf=crf, chunk_size=chunk_size)


def transfer(source: PathLike | None, target: PathLike, output: PathLike, *,
             checkpoint: str = "default", device: str = "auto", reference_frame: int = 0,
             amplify: float = 1.0, size: int | None = None, fit: str = "crop",
             keep_audio: bool = False, dynamics: PathLike | None = None, codec: str = "auto",
             crf: int | None = None, smooth: bool = False, progress: bool = True,
             chunk_size: int = 32) -> Any:
    """Make ``target`` move like ``source`` (or like a saved ``dynamics`` file); write ``output``.

    With both ``dynamics`` and ``source``, the dynamics drive the target and the source only
    lends its audio (``keep_audio``).

    Returns the run's statistics (frames, seconds, fps). The output has as many frames as the
    source, at the source's fps, at the model's resolution or ``size``.
    """
    if source is None and dynamics is None:
        raise UsageError("give a source video or a dynamics file")
    ck = _quote(checkpoint)
    inputs = {"tgt": str(target)}
    # with saved dynamics the source (if given) is only where the audio comes from
    audio: bool | str = keep_audio
    if dynamics is not None and source is not None:
        audio = str(source) if keep_audio else False
        source = None
    if dynamics is not None:
        head = f"dtgan.load=file={_quote(dynamics)}[d0]"
    else:
        inputs["src"] = str(source)
        head = f"[src]dtgan.dynamics=checkpoint={ck}:reference={int(reference_frame)}:fit={fit}[d0]"
    edits = []
    if smooth:
        edits.append("dtgan.smooth")
    if amplify != 1.0:
        edits.append(f"dtgan.amplify=factor={float(amplify)!r}")
    chain = f"[d0]{','.join(edits)}[d1];" if edits else ""
    last = "d1" if edits else "d0"
    text = (f"{head};{chain}[tgt][{last}]dtgan.transfer=checkpoint={ck}:fit={fit}"
            f":size={int(size or 0)}[out]")
    return _run(text, inputs, str(output), device=device, progress=progress,
                keep_audio=audio, codec=codec, crf=crf,
                chunk_size=chunk_size)


def extract_dynamics(source: PathLike, output: PathLike, *, checkpoint: str = "default",
                     device: str = "auto", reference_frame: int = 0, fit: str = "crop",
                     progress: bool = True, chunk_size: int = 32) -> Path:
    """Extract the source's appearance-suppressed dynamics into a ``.dyn.safetensors`` file."""
    from .dynfile import DynamicsWriter
    from .media import open_video
    from .stream import DynamicsChunk, frames_per_chunk

    out = Path(output)
    model = load_model(checkpoint, resolve_device(device))
    ex = DynamicsExtractor(model, reference_frame=reference_frame, fit=fit)
    reader = open_video(source)
    try:
        info = reader.info
        meta = {"checkpoint": model.fingerprint(), "reference_frame": reference_frame,
                "asd_mode": model.config.asd_mode, "source": Path(str(source)).name}
        bar = _bar(progress, info.num_frames, "dynamics")
        with DynamicsWriter(out, meta=meta) as writer:
            done = 0
            per_chunk = frames_per_chunk(chunk_size, info.width, info.height)
            for chunk in reader.chunks(per_chunk):
                d = ex.push(chunk.frames)
                if d.shape[0]:
                    writer.write(DynamicsChunk(d.cpu(), done, chunk.fps, {}))
                    done += int(d.shape[0])
                bar.update(len(chunk))
            ex.flush()
            if writer.frames == 0:
                from .errors import MediaError

                raise MediaError(f"source '{source}' has no frames")
            writer.fps = info.fps
        bar.close()
    finally:
        reader.close()
    return out


def _bar(enabled: bool, total: int | None, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, leave=False,
                dynamic_ncols=True)


def _to_tensor(x: Any) -> tuple[torch.Tensor, str]:
    """Frames from a host app → ``(T,3,H,W)`` float [0,1], plus the layout to answer in."""
    if isinstance(x, np.ndarray):
        arr = x[None] if x.ndim == 3 else x
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise UsageError(f"numpy frames must be (T, H, W, 3) or (H, W, 3), got {x.shape}")
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
        t = t.float() / 255.0 if arr.dtype == np.uint8 else t.float()
        return t, "numpy"
    if isinstance(x, torch.Tensor):
        t = x[None] if x.ndim == 3 else x
        if t.ndim != 4 or t.shape[1] != 3:
            raise UsageError(f"tensor frames must be (T, 3, H, W), got {tuple(x.shape)}")
        if t.dtype == torch.uint8:
            t = t.float() / 255.0
        return t.float(), "torch"
    chunk_frames = getattr(x, "frames", None)
    if isinstance(chunk_frames, torch.Tensor):
        return _to_tensor(chunk_frames)
    raise UsageError(f"cannot use {type(x).__name__} as frames; pass a tensor or numpy array")


class Transferer:
    """Streaming transfer for host applications: ``push(chunk) -> chunk``, then ``flush()``.

    ``target`` is an image path, a ``(3,H,W)`` float tensor in [0,1], or an ``(H,W,3)`` uint8
    array. Pushed frames may be ``(T,3,H,W)`` tensors (float in [0,1] or uint8) or ``(T,H,W,3)``
    uint8 arrays; the answer comes back in the same layout (torch float, or numpy uint8).
    Frame 0 of the stream is the reference frame unless ``reference_frame`` says otherwise
    (frames before a later reference are held and returned once it arrives).
    """

    def __init__(self, target: Any, checkpoint: str = "default", *, device: str = "auto",
                 reference_frame: int = 0, amplify: float = 1.0, fit: str = "crop",
                 size: int | None = None) -> None:
        self.model = load_model(checkpoint, resolve_device(device))
        if isinstance(target, (str, os.PathLike)):
            from .media import read_image

            image = read_image(target)
        else:
            image, _ = _to_tensor(target)
            image = image[0]
        self.amplify = float(amplify)
        self._dyn = DynamicsExtractor(self.model, reference_frame=reference_frame, fit=fit)
        self._render = Renderer(self.model, image, fit=fit, out_size=size)
        self.frames_in = 0
        self.frames_out = 0

    def push(self, frames: Any) -> Any:
        """Feed source frames; get the transferred frames that are ready (same count, usually)."""
        x, layout = _to_tensor(frames)
        self.frames_in += int(x.shape[0])
        d = self._dyn.push(x)
        if self.amplify != 1.0:
            d = d * self.amplify
        y = self._render.render(d)
        self.frames_out += int(y.shape[0])
        return self._answer(y, layout)

    def flush(self) -> Any:
        """End of stream: return what is left (and check the reference frame was reached)."""
        d = self._dyn.flush()
        y = self._render.render(d)
        return self._answer(y, "torch")

    @staticmethod
    def _answer(y: torch.Tensor, layout: str) -> Any:
        if layout == "numpy":
            return (y.mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        return y

    def __enter__(self) -> "Transferer":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None
