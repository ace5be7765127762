"""The checkpoint format: one ``.safetensors`` file, validated before any weight is trusted.

Layout of a checkpoint file (format_version "1"):

* tensors ``encoder.*`` and ``generator.*`` — the :class:`~dtgan_plugin.models.DTGAN` state
  dict; optionally ``discriminators.frame.*`` / ``discriminators.clip.*`` (training);
* metadata (safetensors' string → string map):

  - ``format`` = ``"dtgan-checkpoint"``, ``format_version`` = ``"1"``;
  - ``config`` — the :class:`~dtgan_plugin.models.ModelConfig` as JSON;
  - ``fingerprint`` — the model's :meth:`~dtgan_plugin.models.DTGAN.fingerprint`, checked on
    load (it catches bit rot that still parses);
  - ``extra`` — free-form JSON (training step, data, notes);
  - ``dtgan_version``, ``has_discriminators``.

Loading never unpickles: the header is parsed as JSON by us, the data read by safetensors.
Every problem a user can cause is a :class:`~dtgan_plugin.errors.CheckpointError` with a
one-line message saying what is wrong and how to fix it.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Mapping

from ..atomic import clean_stale, commit, discard, temp_path
from ..errors import CheckpointError, ConfigError

FORMAT = "dtgan-checkpoint"
FORMAT_VERSION = "1"
SUPPORTED_VERSIONS = ("1",)
_MODEL_PREFIXES = ("encoder.", "generator.")
_DISC_PREFIX = "discriminators."
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit


def resolve_checkpoint(name_or_path: str | os.PathLike[str]) -> Path:
    """An existing file path as given, else a named checkpoint from the model registry."""
    raw = os.fspath(name_or_path)
    if not raw:
        raise CheckpointError("empty checkpoint name",
                              hint="pass a .safetensors path or a registered name like 'default'")
    path = Path(raw).expanduser()
    if path.is_dir():
        raise CheckpointError(f"checkpoint {raw} is a directory, not a file",
                              hint="pass the .safetensors file inside it")
    if path.exists():
        return path
    from ..hooks.manager import get_registry

    registry = get_registry()
    entry = registry.get("models", raw)
    if entry is not None:
        resolved = entry.obj()
        return Path(resolved)
    known = ", ".join(registry.names("models")) or "none"
    if isinstance(name_or_path, Path) or os.sep in raw or raw.endswith(".safetensors"):
        raise CheckpointError(f"checkpoint not found: {raw}",
                              hint=f"check the path, or use a registered name ({known})")
    raise CheckpointError(f"unknown checkpoint '{raw}': no such file and no registered model "
                          f"of that name",
                          hint=f"known names: {known}; or pass a .safetensors path")


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The parsed safetensors header and the file size, or a CheckpointError saying why not."""
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}",
                              hint="check the path, or pass a registered name like 'default'")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a regular file",
                              hint="pass a .safetensors file")
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
                raise CheckpointError(
                    f"{path} is a Python pickle, not a safetensors checkpoint; dtgan "
                    "never unpickles files (it can run code)",
                    hint="convert it to .safetensors in an environment you trust")
            if head[:4] == b"PK\x03\x04":
                raise CheckpointError(
                    f"{path} is a torch.save zip/pickle archive, not a safetensors "
                    "checkpoint; dtgan never unpickles files (it can run code)",
                    hint="convert it to .safetensors in an environment you trust")
            if len(head) < 8:
                raise CheckpointError(f"{path} is truncated or not a safetensors file "
                                      f"({size} bytes)", hint="re-save or re-download it")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > _MAX_HEADER:
                raise CheckpointError(f"{path} is not a safetensors file (its first "
                                      "8 bytes are not a header length)",
                                      hint="pass a checkpoint written by save_checkpoint")
            if 8 + header_len > size:
                raise CheckpointError(
                    f"{path} is truncated: its header needs {8 + header_len} bytes "
                    f"but the file has {size}", hint="re-save or re-download it")
            raw = fh.read(header_len)
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err.strerror or err}",
                              hint="check the file's permissions") from None
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(f"{path} is not a safetensors file (its header is not JSON)",
                              hint="pass a checkpoint written by save_checkpoint") from None
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise CheckpointError(f"{path} has a malformed safetensors header "
                                  f"(entry '{name}')", hint="re-save or re-download it") from None
    if 8 + header_len + end > size:
        raise CheckpointError(f"{path} is truncated: it should be "
                              f"{8 + header_len + end} bytes but has {size}",
                              hint="re-save or re-download it")
    return header, size


def _metadata(path: Path, header: Mapping[str, Any]) -> dict[str, str]:
    """The validated dtgan metadata of a parsed header."""
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        meta = {}
    fmt = meta.get("format")
    if fmt != FORMAT:
        what = "has no 'format' metadata" if fmt is None else f"has format '{fmt}'"
        raise CheckpointError(f"{path} is a safetensors file but not a dtgan "
                              f"checkpoint ({what}, expected '{FORMAT}')",
                              hint="pass a checkpoint written by dtgan's save_checkpoint")
    version = meta.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise CheckpointError(f"{path} has checkpoint format_version {version!r}; this "
                              f"dtgan reads {', '.join(SUPPORTED_VERSIONS)}",
                              hint="upgrade dtgan-plugin, or re-save the checkpoint with this "
                                   "version")
    if "config" not in meta:
        raise CheckpointError(f"{path} has no 'config' metadata",
                              hint="re-save it with save_checkpoint")
    return meta


def _config(path: Path, meta: Mapping[str, str]) -> Any:
    from .config import ModelConfig

    try:
        return ModelConfig.from_json(meta["config"])
    except ConfigError as err:
        raise CheckpointError(f"{path} holds an invalid model config: {err}",
                              hint="re-save it with a matching dtgan version") from None


def read_checkpoint_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Format, config (dict), extra (dict), fingerprint and tensor counts, without the weights."""
    p = resolve_checkpoint(path)
    header, size = _read_header(p)
    meta = _metadata(p, header)
    config = _config(p, meta)
    try:
        extra = json.loads(meta.get("extra") or "{}")
    except ValueError:
        raise CheckpointError(f"{p} has 'extra' metadata that is not JSON",
                              hint="re-save it with save_checkpoint") from None
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    params = 0
    for info in tensors.values():
        n = 1
        for s in info.get("shape", []):
            n *= int(s)
        params += n
    return {
        "path": str(p),
        "format": meta["format"],
        "format_version": meta["format_version"],
        "config": config.to_dict(),
        "extra": extra,
        "fingerprint": meta.get("fingerprint", ""),
        "dtgan_version": meta.get("dtgan_version", ""),
        "has_discriminators": any(k.startswith(_DISC_PREFIX) for k in tensors),
        "tensors": len(tensors),
        "parameters": params,
        "size_bytes": size,
    }


def save_checkpoint(path: str | os.PathLike[str], model: Any, *,
                    extra: Mapping[str, Any] | None = None,
                    discriminators: Any = None) -> Path:
    """Write ``model`` (and optionally the discriminators) to one .safetensors file, atomically."""
    import torch
    from safetensors.torch import save_file

    from .. import __version__
    from .model import DTGAN

    if not isinstance(model, DTGAN):
        raise CheckpointError(f"save_checkpoint needs a DTGAN model, got {type(model).__name__}")
    try:
        extra_json = json.dumps(dict(extra or {}), sort_keys=True)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint 'extra' must be JSON-serialisable: {err}",
                              hint="pass plain numbers, strings, lists and dicts") from None
    tensors: dict[str, torch.Tensor] = {}
    # contiguous CPU copies: safetensors refuses shared or strided storage (channels-last)
    for k, v in model.state_dict().items():
        tensors[k] = v.detach().to("cpu").contiguous().clone()
    if discriminators is not None:
        for k, v in discriminators.state_dict().items():
            tensors[_DISC_PREFIX + k] = v.detach().to("cpu").contiguous().clone()
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_json(),
        "fingerprint": model.fingerprint(),
        "extra": extra_json,
        "dtgan_version": __version__,
        "has_discriminators": "true" if discriminators is not None else "false",
    }
    dest = Path(path).expanduser()
    parent = dest.parent
    if not parent.is_dir():
        raise CheckpointError(f"cannot write checkpoint {dest}: directory {parent} does not exist",
                              hint="create it first")
    clean_stale(parent, dest)
    tmp = temp_path(dest)
    try:
        tmp.open("xb").close()  # permission or space problems show here, before any work
    except OSError as err:
        discard(tmp)
        raise CheckpointError(f"cannot write checkpoint {dest}: {err.strerror or err}",
                              hint="check the directory's permissions and free space") from None
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())  # the rename must not expose a file whose data is not on disk
        commit(tmp, dest)
    except OSError as err:
        discard(tmp)
        raise CheckpointError(f"cannot write checkpoint {dest}: {err.strerror or err}",
                              hint="check the directory's permissions and free space") from None
    except BaseException:
        discard(tmp)
        raise
    return dest


def _load_tensors(path: Path, prefix: str, *, strip: bool) -> dict[str, Any]:
    from safetensors import SafetensorError, safe_open

    out = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            for name in fh.keys():
                take = name.startswith(prefix) if prefix else not name.startswith(_DISC_PREFIX)
                if take:
                    out[name[len(prefix):] if strip else name] = fh.get_tensor(name)
    except (SafetensorError, OSError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path} could not be read as safetensors: {first}",
                              hint="re-save or re-download it") from None
    return out


def _check_state(path: Path, what: str, expected: Mapping[str, Any],
                 got: Mapping[str, Any]) -> None:
    import torch

    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise CheckpointError(f"{path} lacks {what} tensors {', '.join(missing[:3])}"
                              f"{more}", hint="it was saved from a different architecture; "
                                              "re-save it or use a matching dtgan version")
    if unexpected:
        more = f" and {len(unexpected) - 3} more" if len(unexpected) > 3 else ""
        raise CheckpointError(f"{path} has unexpected {what} tensors "
                              f"{', '.join(unexpected[:3])}{more}",
                              hint="it was saved from a different architecture; re-save it or "
                                   "use a matching dtgan version")
    for name, ref in expected.items():
        t = got[name]
        if tuple(t.shape) != tuple(ref.shape):
            raise CheckpointError(f"{path}: tensor {name} has shape {tuple(t.shape)}, "
                                  f"but its config needs {tuple(ref.shape)}",
                                  hint="the weights do not match the stored config; re-save it")
        if ref.is_floating_point() != t.is_floating_point() or (
                not ref.is_floating_point() and t.dtype != ref.dtype):
            raise CheckpointError(f"{path}: tensor {name} has dtype {t.dtype}, "
                                  f"expected {ref.dtype}", hint="re-save it with save_checkpoint")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: tensor {name} contains NaN or infinity",
                                  hint="the training run that wrote it diverged; use an "
                                       "earlier checkpoint")


def load_checkpoint(path: str | os.PathLike[str], *,
                    map_location: Any = "cpu", verify: bool = True) -> Any:
    """Load a DTGAN (in eval mode) from a checkpoint path or registered name.

    ``verify`` re-computes the weights' fingerprint and compares it with the recorded one.
    """
    import torch

    from .model import DTGAN, weights_fingerprint

    try:
        device = torch.device(map_location)
    except (RuntimeError, TypeError):
        raise CheckpointError(f"unknown device {map_location!r} for map_location",
                              hint="use 'cpu', 'cuda', 'cuda:0' or 'mps'") from None
    p = resolve_checkpoint(path)
    header, _ = _read_header(p)
    meta = _metadata(p, header)
    config = _config(p, meta)
    model = DTGAN(config)
    expected = model.state_dict()
    got = _load_tensors(p, "", strip=False)
    _check_state(p, "model", expected, got)
    recorded = meta.get("fingerprint")
    if verify and recorded and weights_fingerprint(config, got) != recorded:
        raise CheckpointError(f"{p} is corrupt: its weights do not match the "
                              f"fingerprint {recorded} recorded when it was saved",
                              hint="re-save or re-download it")
    model.load_state_dict(got, strict=True)
    try:
        model = model.to(device)
    except (RuntimeError, AssertionError) as err:
        raise CheckpointError(f"cannot move the model to device {device}: "
                              f"{str(err).splitlines()[0]}",
                              hint="pick a device this machine has, e.g. 'cpu'") from None
    return model.eval()


def load_discriminators(path: str | os.PathLike[str], *, map_location: Any = "cpu") -> Any:
    """The discriminators saved alongside a model (training resume)."""
    import torch

    from .discriminators import build_discriminators

    p = resolve_checkpoint(path)
    header, _ = _read_header(p)
    meta = _metadata(p, header)
    config = _config(p, meta)
    got = _load_tensors(p, _DISC_PREFIX, strip=True)
    if not got:
        raise CheckpointError(f"{p} holds no discriminators (an inference-only "
                              "checkpoint)", hint="start them fresh, or resume from a training "
                                                  "checkpoint saved with discriminators=...")
    discs = build_discriminators(config)
    _check_state(p, "discriminator", discs.state_dict(), got)
    discs.load_state_dict(got, strict=True)
    return discs.to(torch.device(map_location))
