"""``dtgan transfer`` speaks of its own flags: errors, notices and ``--alpha``.

A small freshly initialised checkpoint keeps each run to a second or two; ``main([...])`` runs
in-process so the one stderr line can be checked with capsys.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dtgan_plugin.cli import main
from dtgan_plugin.models import build_model
from dtgan_plugin.models.checkpoint import save_checkpoint
from dtgan_plugin.models.config import ModelConfig

from conftest import make_clip

SMALL = {"resolution": 32, "encoder": {"widths": [8, 16, 16, 32], "feature_dim": 32, "hidden": 32},
         "generator_cfg": {"base_width": 8, "max_width": 32, "dyn_channels": 8}}
#: graph internals that must never reach a `dtgan transfer` user
INTERNALS = ("[tgt]", "[src]", "column", "'out'", "audio_from", "codec=", "alpha=",
             "dtgan inspect", "write_image")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A checkpoint, silent and sounding clips, an opaque and a transparent target."""
    root = tmp_path_factory.mktemp("cli_media")
    torch.manual_seed(0)
    ckpt = root / "small.safetensors"
    save_checkpoint(ckpt, build_model(ModelConfig.from_dict(SMALL)))
    rng = np.random.default_rng(0)
    rgb = (rng.random((40, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(root / "face.png")
    rgba = np.dstack([rgb, np.full((40, 40), 90, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "glass.png")
    return {"ckpt": ckpt, "face": root / "face.png", "glass": root / "glass.png",
            "silent": make_clip(root / "silent.mp4", frames=6, size=48),
            "sound": make_clip(root / "sound.mp4", frames=6, size=48, audio=True)}


def _transfer(capsys, media: dict[str, Path], *argv: str) -> tuple[int, list[str]]:
    # whole frames: these cases are about the flags, not faces (auto-crop has its own tests)
    code = main(["transfer", *argv, "--checkpoint", str(media["ckpt"]), "--no-progress",
                 "--crop", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    return code, [ln for ln in err if not ln.startswith("dtgan: warning: plugin")]


@pytest.mark.parametrize("case, code, needle", [
    ("target_is_video", 2, "dtgan: error: -t/--target must be an image, not a video"),
    ("source_is_image", 2, "dtgan: error: -s/--source must be a video, not an image"),
    ("gif_with_audio", 2, "but --keep-audio was given"),
    ("unknown_extension", 2, "or pass --codec)"),
    ("codec_mismatch", 2, "or --codec auto)"),
    ("output_is_source", 2, "dtgan: error: -o/--output "),
    ("transparent_target", 1, "(pass --alpha composite to flatten it over white, or --alpha "
                              "drop to ignore the alpha channel)"),
])
def test_errors_name_the_transfer_flags(capsys, tmp_path: Path, media: dict[str, Path],
                                        case: str, code: int, needle: str) -> None:
    src, face = str(media["silent"]), str(media["face"])
    out = str(tmp_path / "o.mp4")
    argv = {"target_is_video": ["-s", src, "-t", src, "-o", out],
            "source_is_image": ["-s", face, "-t", face, "-o", out],
            "gif_with_audio": ["-s", str(media["sound"]), "-t", face, "-o",
                               str(tmp_path / "o.gif"), "--keep-audio"],
            "unknown_extension": ["-s", src, "-t", face, "-o", str(tmp_path / "o.xyz")],
            "codec_mismatch": ["-s", src, "-t", face, "-o", out, "--codec", "gif"],
            "output_is_source": ["-s", src, "-t", face, "-o", src],
            "transparent_target": ["-s", src, "-t", str(media["glass"]), "-o", out]}[case]
    rc, lines = _transfer(capsys, media, *argv)
    assert rc == code and len(lines) == 1, lines
    assert needle in lines[0], lines[0]
    assert not any(word in lines[0] for word in INTERNALS), lines[0]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("alpha", ["composite", "drop"])
def test_alpha_flag_accepts_a_transparent_target(capsys, tmp_path: Path,
                                                 media: dict[str, Path], alpha: str) -> None:
    out = tmp_path / "o.mkv"
    rc, lines = _transfer(capsys, media, "-s", str(media["silent"]), "-t", str(media["glass"]),
                          "-o", str(out), "--alpha", alpha)
    assert rc == 0, lines
    assert out.stat().st_size > 0


def test_keep_audio_without_audio_says_so(capsys, tmp_path: Path,
                                          media: dict[str, Path]) -> None:
    src = media["silent"]
    rc, lines = _transfer(capsys, media, "-s", str(src), "-t", str(media["face"]), "-o",
                          str(tmp_path / "o.mp4"), "--keep-audio")
    assert rc == 0, lines
    assert lines[0] == (f"dtgan: warning: --keep-audio: {src} has no audio track; "
                        "the output has none")
    assert len(lines) == 2 and lines[1].startswith("wrote ")


def test_keep_audio_with_audio_is_quiet(capsys, tmp_path: Path, media: dict[str, Path]) -> None:
    rc, lines = _transfer(capsys, media, "-s", str(media["sound"]), "-t", str(media["face"]),
                          "-o", str(tmp_path / "o.mp4"), "--keep-audio")
    assert rc == 0 and len(lines) == 1 and lines[0].startswith("wrote "), lines


@pytest.mark.parametrize("source, needle", [
    ("-", "a source on stdin carries no audio"),
    (None, "no -s/--source to take audio from"),
])
def test_keep_audio_notice_for_stdin_and_dynamics(capsys, source: str | None,
                                                  needle: str) -> None:
    from dtgan_plugin.cli.transfer import _audio_notice

    _audio_notice(argparse.Namespace(keep_audio=True, source=source))
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"dtgan: warning: --keep-audio: {needle}; the output has none"]


def test_odd_size_gets_one_line_of_notice(capsys, tmp_path: Path,
                                          media: dict[str, Path]) -> None:
    from dtgan_plugin.media import open_video

    out = tmp_path / "o.mp4"
    rc, lines = _transfer(capsys, media, "-s", str(media["silent"]), "-t", str(media["face"]),
                          "-o", str(out), "--size", "33")
    assert rc == 0, lines
    assert lines[0] == ("dtgan: note: --size 33 is odd; the h264 output is padded to 34x34 "
                        "(4:2:0 video needs even sizes)")
    with open_video(out) as reader:
        assert (reader.info.width, reader.info.height) == (34, 34)
    rc, lines = _transfer(capsys, media, "-s", str(media["silent"]), "-t", str(media["face"]),
                          "-o", str(tmp_path / "even.mp4"), "--size", "34")
    assert rc == 0 and not any("note" in ln for ln in lines), lines
