"""The checkpoint format: bit-exact round trip, refusal of bad files, named checkpoints."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dtgan_plugin.errors import CheckpointError
from dtgan_plugin.models import (FORMAT, ModelConfig, build_discriminators, build_model,
                                 load_checkpoint, load_discriminators, read_checkpoint_metadata,
                                 resolve_checkpoint, save_checkpoint)
from dtgan_plugin.models import plugin as model_plugin
from dtgan_plugin.models.config import GeneratorConfig


SMALL = ModelConfig(generator_cfg=GeneratorConfig(base_width=8, max_width=32))


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return build_model(SMALL).eval()


@pytest.fixture()
def saved(tmp_path, small_model) -> Path:
    return save_checkpoint(tmp_path / "model.safetensors", small_model, extra={"step": 7})


def _one_line_error(path, **kw) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def _rewrite(src: Path, dst: Path, *, tensors=None, metadata=None) -> Path:
    """Re-save a checkpoint's tensors/metadata with changes (a hand-made broken file)."""
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as fh:
        meta = dict(fh.metadata())
    data = load_file(str(src))
    if tensors is not None:
        data = tensors(data)
    if metadata is not None:
        meta = metadata(meta)
    save_file(data, str(dst), metadata=meta)
    return dst


# ---------------------------------------------------------------- round trip


def test_round_trip_is_bit_exact(saved, small_model):
    loaded = load_checkpoint(saved)
    assert loaded.config == small_model.config
    assert not loaded.training
    a, b = small_model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    assert loaded.fingerprint() == small_model.fingerprint()
    src, tgt = torch.rand(1, 3, 3, 64, 64) * 2 - 1, torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(loaded(tgt, src), small_model(tgt, src))


def test_metadata(saved, small_model):
    meta = read_checkpoint_metadata(saved)
    assert meta["format"] == FORMAT and meta["format_version"] == "1"
    assert meta["extra"] == {"step": 7}
    assert ModelConfig.from_dict(meta["config"]) == SMALL
    assert meta["fingerprint"] == small_model.fingerprint()
    assert meta["has_discriminators"] is False
    assert meta["parameters"] == sum(t.numel() for t in small_model.state_dict().values())


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, small_model):
    dest = tmp_path / "m.safetensors"
    dest.write_bytes(b"old")
    save_checkpoint(dest, small_model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    assert load_checkpoint(dest).fingerprint() == small_model.fingerprint()


def test_save_refuses_bad_targets(tmp_path, small_model):
    with pytest.raises(CheckpointError, match="does not exist"):
        save_checkpoint(tmp_path / "nope" / "m.safetensors", small_model)
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "m.safetensors", small_model, extra={"x": object()})
    with pytest.raises(CheckpointError, match="DTGAN"):
        save_checkpoint(tmp_path / "m.safetensors", torch.nn.Linear(2, 2))
    assert list(tmp_path.iterdir()) == []


def test_channels_last_model_saves_and_loads(tmp_path):
    torch.manual_seed(1)
    model = build_model(SMALL).to_channels_last()
    path = save_checkpoint(tmp_path / "cl.safetensors", model)
    loaded = load_checkpoint(path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_discriminators_round_trip(tmp_path, small_model):
    torch.manual_seed(2)
    discs = build_discriminators(SMALL)
    path = save_checkpoint(tmp_path / "train.safetensors", small_model, discriminators=discs)
    assert read_checkpoint_metadata(path)["has_discriminators"] is True
    assert load_checkpoint(path).fingerprint() == small_model.fingerprint()
    again = load_discriminators(path)
    for k, v in discs.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_load_discriminators_from_inference_checkpoint(saved):
    with pytest.raises(CheckpointError, match="holds no discriminators"):
        load_discriminators(saved)


# ---------------------------------------------------------------- refusals


def test_missing_file_and_directory(tmp_path):
    assert "not found" in _one_line_error(tmp_path / "absent.safetensors")
    assert "not found" in _one_line_error(str(tmp_path / "absent.safetensors"))
    assert "directory" in _one_line_error(tmp_path)


def test_truncated_file(tmp_path, saved):
    data = saved.read_bytes()
    for cut in (len(data) - 100, 200, 4):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        msg = _one_line_error(bad)
        assert "truncated" in msg, msg


def test_empty_and_garbage_files(tmp_path):
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    assert "truncated" in _one_line_error(empty)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"not json at all!" + b"x" * 32)
    assert "not a safetensors file" in _one_line_error(junk)
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(b"\xff" * 64)
    assert "not a safetensors file" in _one_line_error(huge)


class _Boom:
    """Unpickling this would create a marker file: proof that a loader ran pickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_renamed_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps({"w": _Boom(str(marker))}, protocol=4))
    msg = _one_line_error(bad)
    assert "pickle" in msg and "never unpickles" in msg
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="pickle"):
        read_checkpoint_metadata(bad)
    assert not marker.exists()


def test_torch_save_archive_renamed_is_refused(tmp_path, small_model):
    bad = tmp_path / "torch.safetensors"
    torch.save(small_model.state_dict(), bad)
    assert "torch.save" in _one_line_error(bad)


def test_plain_safetensors_without_format_metadata(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    assert "not a dtgan checkpoint" in _one_line_error(plain)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "pt"})
    assert "format 'pt'" in _one_line_error(other)


def test_unsupported_format_version(tmp_path, saved):
    bad = _rewrite(saved, tmp_path / "v2.safetensors",
                   metadata=lambda m: {**m, "format_version": "2"})
    msg = _one_line_error(bad)
    assert "format_version '2'" in msg and "upgrade" in msg


def test_invalid_config_metadata(tmp_path, saved):
    def bad_cfg(meta):
        cfg = json.loads(meta["config"])
        cfg["generator"] = "gan"
        return {**meta, "config": json.dumps(cfg)}

    msg = _one_line_error(_rewrite(saved, tmp_path / "cfg.safetensors", metadata=bad_cfg))
    assert "invalid model config" in msg and "'generator'" in msg
    msg = _one_line_error(_rewrite(saved, tmp_path / "nocfg.safetensors",
                                   metadata=lambda m: {k: v for k, v in m.items()
                                                       if k != "config"}))
    assert "no 'config'" in msg


def test_shape_mismatch(tmp_path, saved):
    def widen(data):
        name = "generator.trunk.down.0.weight"
        w = data[name]
        data[name] = torch.zeros(w.shape[0] + 1, *w.shape[1:])
        return data

    msg = _one_line_error(_rewrite(saved, tmp_path / "shape.safetensors", tensors=widen))
    assert "generator.trunk.down.0.weight" in msg and "shape" in msg


def test_missing_and_unexpected_tensors(tmp_path, saved):
    def drop(data):
        del data["encoder.lstm.weight_hh_l0"]
        return data

    msg = _one_line_error(_rewrite(saved, tmp_path / "drop.safetensors", tensors=drop))
    assert "lacks model tensors encoder.lstm.weight_hh_l0" in msg

    def add(data):
        data["generator.extra.weight"] = torch.zeros(3)
        return data

    msg = _one_line_error(_rewrite(saved, tmp_path / "add.safetensors", tensors=add))
    assert "unexpected model tensors generator.extra.weight" in msg


def test_config_and_weights_of_different_architectures(tmp_path, saved):
    # the config says synth, the weights are warp: the flow head is unexpected
    def synth(meta):
        return {**meta, "config": SMALL.replace(generator="synth").to_json()}

    msg = _one_line_error(_rewrite(saved, tmp_path / "arch.safetensors", metadata=synth))
    assert "unexpected model tensors generator.flow" in msg


def test_corrupt_weights_fail_the_fingerprint(tmp_path, saved):
    def flip(data):
        data["generator.trunk.bott_target.bias"] = data["generator.trunk.bott_target.bias"] + 1
        return data

    bad = _rewrite(saved, tmp_path / "rot.safetensors", tensors=flip)
    assert "corrupt" in _one_line_error(bad)
    # verify=False loads the weights as they are: the flipped bias is there, +1 from the saved
    loaded = load_checkpoint(bad, verify=False).state_dict()["generator.trunk.bott_target.bias"]
    original = load_checkpoint(saved).state_dict()["generator.trunk.bott_target.bias"]
    torch.testing.assert_close(loaded, original + 1)


def test_nan_weights_are_refused(tmp_path, saved):
    def nan(data):
        data["encoder.lstm.bias_hh_l0"][0] = float("nan")
        return data

    bad = _rewrite(saved, tmp_path / "nan.safetensors", tensors=nan)
    assert "NaN" in _one_line_error(bad)


def test_bad_map_location(saved):
    assert "unknown device" in _one_line_error(saved, map_location="gpu7")


# ---------------------------------------------------------------- named checkpoints


def test_existing_path_wins_over_names(tmp_path, saved, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").write_bytes(saved.read_bytes())
    assert resolve_checkpoint("default") == Path("default")
    assert resolve_checkpoint(saved) == saved


def test_default_without_asset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(model_plugin, "DEFAULT_ASSET", tmp_path / "absent.safetensors")
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint("default")
    assert "no default model is installed yet" in str(info.value)
    assert "--checkpoint PATH" in str(info.value)
    with pytest.raises(CheckpointError, match="no default model"):
        load_checkpoint("default")


def test_default_with_asset(tmp_path, saved, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(model_plugin, "DEFAULT_ASSET", saved)
    assert resolve_checkpoint("default") == saved
    assert load_checkpoint("default").config == SMALL


def test_unknown_name_lists_known_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint("nosuchmodel")
    msg = str(info.value)
    assert "unknown checkpoint 'nosuchmodel'" in msg and "default" in msg
    with pytest.raises(CheckpointError, match="empty"):
        resolve_checkpoint("")


def test_registry_lists_default():
    from dtgan_plugin.hooks.manager import get_registry

    entry = get_registry().get("models", "default")
    assert entry is not None and entry.plugin == "dtgan_plugin.models.plugin"
    assert entry.extra.get("description")


def test_plugin_module_does_not_import_torch():
    code = ("import sys, dtgan_plugin.models.plugin as p; "
            "assert 'torch' not in sys.modules, 'torch imported'; print(p.DEFAULT_ASSET.name)")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "default.safetensors"
