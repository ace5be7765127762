"""The three fitting policies against their definitions, on an image whose blocks make the
answer obvious whatever the interpolation: 96x48, three colour columns, a white top band."""

from __future__ import annotations

import pytest
import torch

from dtgan_plugin.inference import fit_image

RED, GREEN, BLUE, WHITE = (torch.tensor(c, dtype=torch.float32) for c in
                           ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)))


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    img = torch.zeros(3, 48, 96)
    for i, colour in enumerate((RED, GREEN, BLUE)):
        img[:, :, 32 * i:32 * (i + 1)] = colour[:, None, None]
    img[:, :12] = 1.0  # the top quarter is white
    return img


def _px(x: torch.Tensor, row: int, col: int) -> torch.Tensor:
    return x[:, row, col]


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool((a - b).abs().max() < 0.05)


def test_crop_scales_the_short_side_and_cuts_the_centre(image: torch.Tensor) -> None:
    x = fit_image(image, 24, "crop")  # 48x24 after scaling, columns 12..36 kept
    assert x.shape == (3, 24, 24)
    assert _close(_px(x, 20, 1), RED) and _close(_px(x, 20, 12), GREEN)
    assert _close(_px(x, 20, 22), BLUE)
    assert _close(_px(x, 2, 12), WHITE) and _close(_px(x, 8, 12), GREEN)  # white: rows 0..6


def test_pad_scales_the_long_side_and_repeats_the_edges(image: torch.Tensor) -> None:
    x = fit_image(image, 24, "pad")  # 24x12 in rows 6..18, edge rows repeated above and below
    assert x.shape == (3, 24, 24)
    assert _close(_px(x, 12, 3), RED) and _close(_px(x, 12, 12), GREEN)
    assert _close(_px(x, 12, 20), BLUE)
    assert _close(_px(x, 7, 12), WHITE)      # the white band, now rows 6..9
    assert _close(_px(x, 0, 12), WHITE)      # above the image: its top row repeated
    assert _close(_px(x, 23, 12), GREEN)     # below: its bottom row repeated


def test_stretch_resizes_both_sides(image: torch.Tensor) -> None:
    x = fit_image(image, 24, "stretch")  # white rows 0..6, columns 0..8 / 8..16 / 16..24
    assert x.shape == (3, 24, 24)
    assert _close(_px(x, 12, 3), RED) and _close(_px(x, 12, 12), GREEN)
    assert _close(_px(x, 12, 20), BLUE)
    assert _close(_px(x, 2, 12), WHITE) and _close(_px(x, 8, 12), GREEN)
    # what tells it from crop: all three colours across, and the red column is 8 px wide
    assert _close(_px(x, 20, 6), RED) and not _close(fit_image(image, 24, "crop")[:, 20, 6], RED)


def test_the_cli_fit_flag_reaches_the_model(tmp_path, image: torch.Tensor) -> None:
    # an at-rest model with amplify 0 writes the fitted target itself: the flag's effect shows
    from PIL import Image

    from dtgan_plugin.media import open_video, read_image

    from conftest import make_clip, run_cli, small_checkpoint

    Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(tmp_path / "t.png")
    small_checkpoint(tmp_path / "m.safetensors", at_rest=True)
    src = make_clip(tmp_path / "s.mp4", frames=4, size=32)

    for fit in ("crop", "pad", "stretch"):
        out = tmp_path / f"{fit}.mkv"
        res = run_cli("transfer", "-s", str(src), "-t", str(tmp_path / "t.png"), "-o", str(out),
                      "--checkpoint", str(tmp_path / "m.safetensors"), "--fit", fit,
                      "--amplify", "0", "--crop", "none", "--codec", "ffv1", "--no-progress")
        assert res.returncode == 0, res.stderr.decode()[-800:]
        with open_video(out) as r:
            frame = r.get_batch([0])[0]
        want = fit_image(read_image(tmp_path / "t.png"), 32, fit)
        assert (frame - want).abs().max() < 3 / 255, fit
