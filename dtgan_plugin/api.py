"""The Python API: one-call transfer and dynamics extraction, and a streaming Transferer.

``transfer`` builds a filter graph as objects (the nodes of :mod:`dtgan_plugin.graph.ast`, no
text is formatted or parsed) and runs it, so decode, the model and encode overlap on threads
exactly as in ``dtgan graph``. ``extract_dynamics`` streams a source through the dynamics
encoder into a ``.dyn.safetensors`` file directly. :class:`Transferer` is for host
applications that decode and encode themselves: push frame chunks, get frame chunks back.
Dynamics edits (amplify, smooth) come from :mod:`dtgan_plugin.dynamics_ops`, the functions the
``dtgan.amplify``/``dtgan.smooth`` stages use.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import dynamics_ops as ops
from .errors import MediaError, OptionError, UsageError
from .filters.model_stages import MAX_OUTPUT_SIZE as MAX_SIZE
from .graph.ast import FilterNode, GraphSpec, Label
from .graph.nodes import RunStats
from .inference import FIT_POLICIES, DynamicsExtractor, Renderer
from .media.image import ALPHA_MODES
from .models.head_pose import MAX_HEAD
from .stream import DEFAULT_CHUNK

if TYPE_CHECKING:
    from .faces.decide import CropSettings

PathLike = str | os.PathLike[str]

#: ``detail="auto"`` warps the target's face at twice its size in the photo, up to this side.
#: Twice, because the crop and the paste-back each resample: carphone driving the astronaut
#: (face box 210 px), the pasted face kept 0.38 of the photo's fine detail (mean |Laplacian|)
#: at 1x, 0.57 at 2x, 0.61 at 512, and 0.21 when the 128 px render was upscaled
AUTO_DETAIL = 512
#: the oversampling of ``detail="auto"``
DETAIL_OVERSAMPLE = 2.0
MAX_DETAIL = 2048


# ---------------------------------------------------------------------------- argument checks

def _int_arg(what: str, value: Any, low: int, high: int | None = None) -> int:
    """A whole number in [low, high], else OptionError naming the argument."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise OptionError(f"{what} must be a whole number {span}, got {value!r}")
    return int(value)


def _float_arg(what: str, value: Any, low: float, high: float) -> float:
    """A finite number in [low, high], else OptionError naming the argument."""
    try:
        number = float(value) if not isinstance(value, (bool, str)) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and low <= number <= high):
        raise OptionError(f"{what} must be a number from {low:g} to {high:g}, got {value!r}")
    return number


def _choice_arg(what: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of ``choices``, else OptionError listing them."""
    if value not in choices:
        raise OptionError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _bool_arg(what: str, value: Any) -> bool:
    """True or False (not a truthy string such as 'no'), else OptionError."""
    if not isinstance(value, (bool, np.bool_)):
        raise OptionError(f"{what} must be True or False, got {value!r}")
    return bool(value)


def _path_arg(what: str, value: Any) -> str:
    """A path (str or os.PathLike), else UsageError."""
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise UsageError(f"{what} must be a file path, got {value!r}")
    return os.fspath(value)


def _backend_arg(backend: Any, device: Any) -> str:
    """A known backend that can run on ``device``, else a one-line OptionError."""
    from .export.ort_backend import check_backend_device

    check_backend_device(backend, device)
    return str(backend)


def _load(checkpoint: Any, device: Any, backend: str) -> Any:
    """The model on its backend: torch on ``device``, or the checkpoint's ONNX export (CPU)."""
    from .export.ort_backend import load_backend

    return load_backend(_path_arg("checkpoint", checkpoint), device, backend)


def _output_arg(what: str, value: Any) -> str:
    """An output path that is not an existing directory ('-' is stdout)."""
    path = _path_arg(what, value)
    if path != "-" and os.path.isdir(path):
        raise UsageError(f"{what} '{path}' is a directory", hint="give a file name inside it")
    return path


# --------------------------------------------------------------------------------- the graph

def _value(value: Any) -> str:
    """An option value as the AST holds it (unescaped text; floats exactly, as repr)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def _node(name: str, *, ins: tuple[str, ...] = (), outs: tuple[str, ...] = (),
          **options: Any) -> FilterNode:
    """One stage of a programmatic graph (columns are 0: there is no text to point into)."""
    return FilterNode(name=name, column=0, named={k: _value(v) for k, v in options.items()},
                      in_labels=[Label(n, 0) for n in ins],
                      out_labels=[Label(n, 0) for n in outs])


def _chain(nodes: list[FilterNode], ins: tuple[str, ...], outs: tuple[str, ...]
           ) -> list[FilterNode]:
    """Link ``nodes`` one after another, ``ins`` feeding the first and ``outs`` leaving the last."""
    nodes[0].in_labels = [Label(n, 0) for n in ins]
    nodes[-1].out_labels = [Label(n, 0) for n in outs]
    return nodes


def transfer_spec(*, target: str, source: str | None, dynamics: str | None, checkpoint: str,
                  reference_frame: int, amplify: float, smooth: bool, size: int | None,
                  fit: str, alpha: str, face_crop: "CropSettings | None" = None,
                  backend: str = "torch", landmarker: str = "mediapipe", head: float = 1.0
                  ) -> tuple[GraphSpec, dict[str, str]]:
    """The transfer graph (source or saved dynamics → edits → transfer) and its named inputs.

    ``backend`` is both model stages' ``backend`` option (``torch`` or ``onnxruntime``), and
    ``landmarker`` their ``landmarker`` (what a landmark model reads faces with), and ``head``
    the transfer's ``head`` (how much of the source's head motion it keeps).

    With ``face_crop``, the source's and the target's faces are cropped to the model's size
    (``dtgan.facecrop``) and, with ``face_crop.paste_back``, the animated crop is pasted back
    into the full photo (``dtgan.pasteback``).
    """
    inputs: dict[str, str] = {}
    chains: list[list[FilterNode]] = []
    # the default is left out, so graphs of pixel models read as before
    lmk = {} if landmarker == "mediapipe" else {"landmarker": landmarker}
    pose = {} if head == 1.0 else {"head": head}
    photo = "tgt"
    if alpha == "refuse":
        inputs["tgt"] = target  # graph inputs read images with the refusing policy
    else:
        chains.append([_node("dtgan.image", outs=("tgt",), file=target, alpha=alpha)])
    model_target = "tgt"
    if face_crop is not None:
        photo, model_target = "tgt_full", "tgt_face"
        if face_crop.paste_back:
            chains.append([_node("dtgan.split", ins=("tgt",), outs=("tgt_full", "tgt_c"))])
        crop_in = "tgt_c" if face_crop.paste_back else "tgt"
        chains.append([_node("dtgan.facecrop", ins=(crop_in,), outs=(model_target,),
                             **face_crop.target_options())])
    if dynamics is not None:
        head = [_node("dtgan.load", file=dynamics)]
        head_in: tuple[str, ...] = ()
    else:
        inputs["src"] = str(source)
        head = [_node("dtgan.dynamics", checkpoint=checkpoint, reference=reference_frame, fit=fit,
                      backend=backend, **lmk)]
        if face_crop is not None:
            head.insert(0, _node("dtgan.facecrop", **face_crop.stage_options()))
        head_in = ("src",)
    edits = ([_node("dtgan.smooth")] if smooth else []) + (
        [_node("dtgan.amplify", factor=amplify)] if amplify != 1.0 else [])
    chains.append(_chain([*head, *edits], head_in, ("d",)))
    if face_crop is not None and face_crop.paste_back:
        detail = face_crop.target_size if face_crop.target_size > face_crop.size else 0
        chains.append([_node("dtgan.transfer", ins=(model_target, "d"), outs=("faces",),
                             checkpoint=checkpoint, fit=fit, size=detail, backend=backend,
                             **lmk, **pose)])
        chains.append([_node("dtgan.pasteback", ins=(photo, "faces"), outs=("out",),
                             **face_crop.paste_options())])
    else:
        chains.append([_node("dtgan.transfer", ins=(model_target, "d"), outs=("out",),
                             checkpoint=checkpoint, fit=fit, size=int(size or 0),
                             backend=backend, **lmk, **pose)])
    return GraphSpec(chains=chains), inputs


@dataclass
class TransferStats(RunStats):
    """A transfer's run statistics, and whether faces were cropped (``crop="auto"``: why not)."""

    crop: bool = False
    crop_note: str | None = None


def transfer(source: PathLike | None, target: PathLike, output: PathLike, *,
             checkpoint: str = "default", device: str = "auto", reference_frame: int = 0,
             amplify: float = 1.0, size: int | None = None, fit: str = "crop",
             keep_audio: bool = False, dynamics: PathLike | None = None, codec: str = "auto",
             crf: int | None = None, smooth: bool = False, progress: bool = True,
             chunk_size: int = DEFAULT_CHUNK, alpha: str = "refuse", crop: str = "auto",
             face: int = 0, paste_back: bool = True, landmarker: str = "mediapipe",
             backend: str = "torch", detail: int | str = "auto", head: float = 1.0) -> Any:
    """Make ``target`` move like ``source`` (or like a saved ``dynamics`` file); write ``output``.

    With both ``dynamics`` and ``source``, the dynamics drive the target and the source only
    lends its audio (``keep_audio``). ``alpha`` says what to do with a transparent target:
    ``refuse`` (an error), ``composite`` (flatten over white) or ``drop`` (ignore alpha).

    ``crop`` (``auto``, ``face``, ``none``): with ``auto`` (default) the faces of the source
    and the target are found and cropped to the model's size when a face landmarker is
    installed (``pip install 'dtgan-plugin[faces]'``) and the target has a face; ``face``
    insists on it; ``none`` uses whole frames. ``face`` picks the N-th largest face;
    ``paste_back`` puts the animated face back into the full-size photo (the output then has
    the photo's size, made even). ``detail`` is the side in pixels at which a model that can
    (the real-face ``default``) warps the target's face for paste-back: ``auto`` (default) twice
    the face's size in the photo, at most 512; ``0`` the model's resolution, upscaled.

    ``backend``: ``torch`` (default) or ``onnxruntime`` (the ``[onnx]`` extra; CPU only, so
    ``device`` must be ``auto`` or ``cpu``; the checkpoint is exported into a cache once).

    Returns the run's statistics (frames, seconds, fps, and ``crop``: whether faces were
    cropped, with ``crop_note`` saying why not under ``auto``). Without paste-back the output
    is at the model's resolution or ``size``; it has as many frames as the source, at its fps.
    """
    from .graph import Graph

    if source is None and dynamics is None:
        raise UsageError("give a source video or a dynamics file")
    backend = _backend_arg(backend, device)
    if backend == "onnxruntime":
        device = "cpu"  # onnxruntime runs on the CPU: decode and encode there too
    src = None if source is None else _path_arg("source", source)
    dyn = None if dynamics is None else _path_arg("dynamics", dynamics)
    tgt = _path_arg("target", target)
    ckpt = _path_arg("checkpoint", checkpoint)
    alpha = _choice_arg("alpha", alpha, ALPHA_MODES)
    size = None if size is None else _int_arg("size", size, 1, MAX_SIZE)
    face_crop, note = _face_crop(crop, tgt, ckpt, alpha=alpha, face=face, paste_back=paste_back,
                                 landmarker=landmarker, size=size, detail=_detail_arg(detail))
    spec, inputs = transfer_spec(
        target=tgt, source=src, dynamics=dyn, checkpoint=ckpt,
        reference_frame=_int_arg("reference_frame", reference_frame, 0),
        amplify=_float_arg("amplify", amplify, -ops.MAX_AMPLIFY, ops.MAX_AMPLIFY),
        smooth=_bool_arg("smooth", smooth), size=size,
        fit=_choice_arg("fit", fit, FIT_POLICIES), alpha=alpha, face_crop=face_crop,
        backend=backend, landmarker=_face_args(crop, face, landmarker)[2],
        head=_float_arg("head", head, 0.0, MAX_HEAD))
    out = _output_arg("output", output)
    # with saved dynamics the source (if given) is only where the audio comes from
    audio: bool | str = _bool_arg("keep_audio", keep_audio)
    if dyn is not None and src is not None:
        audio = src if keep_audio else False
    graph = Graph(spec, inputs=list(inputs), outputs=["out"])
    stats = graph.run(inputs, {"out": out}, device=device,
                      progress=_bool_arg("progress", progress), keep_audio=audio, codec=codec,
                      crf=crf, chunk_size=_int_arg("chunk_size", chunk_size, 1))
    return TransferStats(**vars(stats), crop=face_crop is not None, crop_note=note)


def _face_args(crop: Any, face: Any, landmarker: Any) -> tuple[str, int, str]:
    """The checked ``(crop mode, face index, landmarker name)`` of a transfer or extraction."""
    from .faces.decide import CROP_MODES

    mode = _choice_arg("crop", crop, CROP_MODES)
    face = _int_arg("face", face, 0, 64)
    if not isinstance(landmarker, str) or not landmarker:
        raise OptionError(f"landmarker must be a registered landmarker name, got {landmarker!r}")
    return mode, face, landmarker


def _detail_arg(value: Any) -> int | None:
    """``detail``: ``"auto"`` → None (decided from the photo), else a size in pixels (0 = off)."""
    if value == "auto":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(f"detail must be 'auto' or a size in pixels, got {value!r}",
                          hint="use detail='auto' (the face's size in the photo), 0 (the "
                               "model's resolution) or a number of pixels")
    return _int_arg("detail", value, 0, MAX_DETAIL)


def _auto_detail(image: torch.Tensor, landmarker: str, face: int, resolution: int) -> int:
    """Twice the photo's face box side, between the model's resolution and
    :data:`AUTO_DETAIL`."""
    from .faces.autocrop import photo_box, photo_landmarks

    pts = photo_landmarks(image, landmarker, face)  # cached: decide_crop just found them
    side = float(photo_box(pts, int(image.shape[-2]), int(image.shape[-1]))[2])
    return int(min(AUTO_DETAIL, max(resolution, round(DETAIL_OVERSAMPLE * side))))


def _face_crop(crop: Any, target: str, checkpoint: str, *, alpha: str, face: Any,
               paste_back: Any, landmarker: Any, size: int | None, detail: int | None = 0
               ) -> tuple["CropSettings | None", str | None]:
    """The face-crop settings for a transfer, or None and (under ``auto``) why not."""
    from .faces.decide import CropSettings, decide_crop
    from .media import read_image
    from .models.checkpoint import read_checkpoint_metadata

    mode, face, landmarker = _face_args(crop, face, landmarker)
    paste = _bool_arg("paste_back", paste_back)
    if mode == "none":
        return None, None
    try:
        image = read_image(target, alpha="drop" if alpha == "refuse" else alpha) \
            if os.path.isfile(target) else None
    except MediaError:
        image = None  # not an image: the graph reports that in the caller's own words
    crop_it, note = decide_crop(mode, image, what=f"the target '{Path(target).name}'",
                                landmarker=landmarker, face=face)
    config = read_checkpoint_metadata(checkpoint)["config"]
    if not crop_it and note is not None and (config.get("dynamics_input") == "landmarks"
                                             or config.get("generator") == "geowarp"):
        # a landmark model animates faces: there is no whole-frame fallback for it
        why = note.split(", so the whole frame")[0]
        raise MediaError(f"{why}; the model '{Path(checkpoint).stem}' animates faces from "
                         "their landmarks",
                         hint="use a photo with a clearly visible face (and pip install "
                              "'dtgan-plugin[faces]'), or --checkpoint cartoon64 to animate a "
                              "whole image")
    if not crop_it:
        return None, note
    if paste and size is not None:
        raise OptionError("size sets the output of a whole-frame transfer; with paste-back the "
                          "output takes the photo's size",
                          hint="leave size out, or turn paste-back off")
    resolution = int(config["resolution"])
    if not paste:
        detail = size or 0  # the output is the crop: it is detailed at the size asked
    elif detail is None:
        detail = _auto_detail(image, landmarker, face, resolution) if image is not None else 0
    return CropSettings(size=resolution, landmarker=landmarker, face=face, paste_back=paste,
                        detail=int(detail)), None


def extract_dynamics(source: PathLike, output: PathLike, *, checkpoint: str = "default",
                     device: str = "auto", reference_frame: int = 0, fit: str = "crop",
                     progress: bool = True, chunk_size: int = DEFAULT_CHUNK, crop: str = "auto",
                     face: int = 0, landmarker: str = "mediapipe", backend: str = "torch"
                     ) -> Path:
    """Extract the source's appearance-suppressed dynamics into a ``.dyn.safetensors`` file.

    ``backend``: ``torch`` (default) or ``onnxruntime`` (CPU; see :func:`transfer`).

    ``crop`` (``auto``, ``face``, ``none``) crops the source's face to the
    model's size first, as ``transfer(crop=...)`` does; ``auto`` decides on the first frame.
    The file's metadata records whether the face was cropped (``crop``).
    """
    from .dynfile import DynamicsWriter
    from .media import open_video
    from .stream import frames_per_chunk

    src = _path_arg("source", source)
    out = Path(_output_arg("output", output))
    reference_frame = _int_arg("reference_frame", reference_frame, 0)
    fit = _choice_arg("fit", fit, FIT_POLICIES)
    chunk_size = _int_arg("chunk_size", chunk_size, 1)
    crop_args = _face_args(crop, face, landmarker)
    model = _load(checkpoint, device, _backend_arg(backend, device))
    ex = DynamicsExtractor(model, reference_frame=reference_frame, fit=fit,
                           landmarker=crop_args[2])
    reader = open_video(src)
    try:
        info = reader.info
        meta = {"checkpoint": model.fingerprint(), "reference_frame": reference_frame,
                "asd_mode": model.config.asd_mode, "source": Path(src).name}
        bar = _bar(_bool_arg("progress", progress), info.num_frames, "dynamics")
        with DynamicsWriter(out, meta=meta) as writer:
            done = 0
            cropper = None
            per_chunk = frames_per_chunk(chunk_size, info.width, info.height)
            for i, chunk in enumerate(reader.chunks(per_chunk)):
                if i == 0:  # the crop is decided on the first frame, already decoded here
                    cropper = _source_cropper(*crop_args, chunk.frames[0], src, model.resolution)
                    writer.meta["crop"] = "face" if cropper is not None else "none"
                frames = chunk.frames if cropper is None else cropper.push(chunk.frames)
                done = _write_dynamics(ex, frames, writer, done, chunk.fps, cropper)
                bar.update(len(chunk))
            if cropper is not None:
                done = _write_dynamics(ex, cropper.flush(), writer, done, info.fps, cropper)
            rest = ex.flush()  # a landmark model's frames after a lost face
            if rest.shape[0]:
                from .stream import DynamicsChunk

                writer.write(DynamicsChunk(rest.cpu(), done, info.fps, {}))
                done += int(rest.shape[0])
            if writer.frames == 0:
                raise MediaError(f"source '{src}' has no frames")
            writer.fps = info.fps
        bar.close()
    finally:
        reader.close()
    return out


def _write_dynamics(ex: DynamicsExtractor, frames: torch.Tensor | None, writer: Any, done: int,
                    fps: float, cropper: Any = None) -> int:
    """Encode ``frames`` (None: nothing ready yet) and append their dynamics; new count.

    With a ``cropper``, the crops' landmarks it found go along (a landmark model reads them).
    """
    from .stream import DynamicsChunk

    if frames is None or not len(frames):
        return done
    d = ex.push(frames, None if cropper is None else cropper.last_points)
    if d.shape[0]:
        writer.write(DynamicsChunk(d.cpu(), done, fps, {}))
    return done + int(d.shape[0])


def _source_cropper(mode: str, face: int, landmarker: str, first: torch.Tensor, source: str,
                    size: int) -> Any:
    """An :class:`~dtgan_plugin.faces.autocrop.AutoCropper` for the source, or None; ``auto``
    decides on its ``first`` frame ``(3, H, W)``."""
    from .faces.decide import decide_crop

    if mode == "none":
        return None
    crop_it, _ = decide_crop(mode, first, what=f"the source '{Path(source).name}'",
                             landmarker=landmarker, face=face)
    if not crop_it:
        return None
    from .faces.autocrop import AutoCropper, make_landmarker

    return AutoCropper(make_landmarker(landmarker, still=False), face=face, size=size,
                       what=f"the source '{Path(source).name}'")


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

    ``target`` is an image path (read with the ``alpha`` policy), a ``(3,H,W)`` float tensor in
    [0,1], or an ``(H,W,3)`` uint8 array. Pushed frames may be ``(T,3,H,W)`` tensors (float in
    [0,1] or uint8) or ``(T,H,W,3)`` uint8 arrays; the answers, ``flush()``'s included, come
    back in the layout pushed (torch float, or numpy uint8). Frame 0 of the stream is the
    reference frame unless ``reference_frame`` says otherwise (frames before a later reference
    are held and returned once it arrives). ``amplify`` and ``smooth`` edit the dynamics as the
    ``dtgan.amplify``/``dtgan.smooth`` stages do; smoothing needs the stream's ``fps``.
    ``backend`` is ``torch`` (default) or ``onnxruntime`` (CPU; the ``[onnx]`` extra).
    A landmark model finds faces with ``landmarker`` (the ``[faces]`` extra), unless the
    target's ``target_landmarks`` ``(68, 2)`` and each pushed chunk's landmarks are given.
    ``head`` is how much of the source's head motion a landmark model keeps (see
    :func:`transfer`).
    """

    def __init__(self, target: Any, checkpoint: str = "default", *, device: str = "auto",
                 reference_frame: int = 0, amplify: float = 1.0, smooth: bool = False,
                 fps: float = 25.0, fit: str = "crop", size: int | None = None,
                 alpha: str = "refuse", backend: str = "torch", landmarker: str = "mediapipe",
                 target_landmarks: Any = None, head: float = 1.0) -> None:
        self.amplify = _float_arg("amplify", amplify, -ops.MAX_AMPLIFY, ops.MAX_AMPLIFY)
        head = _float_arg("head", head, 0.0, MAX_HEAD)
        self.fps = _float_arg("fps", fps, 1e-3, 1000.0)
        fit = _choice_arg("fit", fit, FIT_POLICIES)
        alpha = _choice_arg("alpha", alpha, ALPHA_MODES)
        size = None if size is None else _int_arg("size", size, 1, MAX_SIZE)
        self._smoother = ops.OneEuro() if _bool_arg("smooth", smooth) else None
        self.model = _load(checkpoint, device, _backend_arg(backend, device))
        if isinstance(target, (str, os.PathLike)):
            from .media import read_image

            image = read_image(target, alpha=alpha)
        else:
            image, _ = _to_tensor(target)
            image = image[0]
        landmarker = _face_args("none", 0, landmarker)[2]
        self._dyn = DynamicsExtractor(self.model, reference_frame=_int_arg(
            "reference_frame", reference_frame, 0), fit=fit, landmarker=landmarker)
        self._render = Renderer(self.model, image, fit=fit, out_size=size,
                                landmarker=landmarker, target_landmarks=target_landmarks,
                                head=head)
        self._layout = "torch"
        self.frames_in = 0
        self.frames_out = 0

    def _edit(self, d: torch.Tensor) -> torch.Tensor:
        """Smooth, then amplify (the stages' order in ``transfer``); refuse non-finite vectors."""
        if d.shape[0] == 0:
            return d
        if self._smoother is not None:
            d = self._smoother(d, self.fps)
        if self.amplify != 1.0:
            d = ops.amplify(d, self.amplify)
        bad = ops.first_nonfinite(d)
        if bad is not None:
            raise MediaError(f"the dynamics of frame {self.frames_out + bad} are not finite "
                             "(NaN or infinity); they would render as black frames",
                             hint="check the pushed frames for NaN or infinite values")
        return d

    def push(self, frames: Any, landmarks: Any = None) -> Any:
        """Feed source frames; get the transferred frames that are ready (same count, usually).

        A landmark model finds each frame's face with the ``landmarker``, unless the frames'
        ``(T, 68, 2)`` ``landmarks`` (pixels, iBUG 68 order) come with them.
        """
        x, self._layout = _to_tensor(frames)
        self.frames_in += int(x.shape[0])
        y = self._render.render(self._edit(self._dyn.push(x, landmarks)))
        self.frames_out += int(y.shape[0])
        return self._answer(y)

    def flush(self) -> Any:
        """End of stream: what is left, in the layout pushed (and check the reference arrived)."""
        y = self._render.render(self._edit(self._dyn.flush()))
        self.frames_out += int(y.shape[0])
        return self._answer(y)

    def _answer(self, y: torch.Tensor) -> Any:
        if self._layout == "numpy":
            return (y.mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        return y

    def __enter__(self) -> "Transferer":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None
