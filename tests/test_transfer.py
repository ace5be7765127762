"""Model stages, the transfer/dynamics commands, the streaming Transferer, dynamics files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dtgan_plugin.errors import DtganError
from dtgan_plugin.models import build_model
from dtgan_plugin.models.checkpoint import save_checkpoint
from dtgan_plugin.models.config import ModelConfig

from conftest import (SMALL_MODEL, audio_rms, audio_seconds, make_clip, run_cli,
                      small_checkpoint)

SMALL = SMALL_MODEL


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised small checkpoint, with the generator heads nudged off identity."""
    return small_checkpoint(tmp_path_factory.mktemp("ck") / "fresh.safetensors", nudge=0.05)


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("src") / "src clip.mp4", frames=40, size=48, fps=30,
                     audio=True)


def _probe(path: Path) -> tuple[int, float, int, int]:
    from dtgan_plugin.media import open_video

    with open_video(path) as r:
        n = sum(len(c) for c in r.chunks(64))
        return n, r.info.fps, r.info.width, r.info.height


def test_transfer_cli_end_to_end(tmp_path: Path, ckpt: Path, src: Path, rgb_image: Path) -> None:
    out = tmp_path / "out.mp4"
    res = run_cli("transfer", "-s", str(src), "-t", str(rgb_image), "-o", str(out),
                  "--checkpoint", str(ckpt), "--no-progress", "--keep-audio")
    assert res.returncode == 0, res.stderr.decode()
    n, fps, w, h = _probe(out)
    assert (n, w, h) == (40, 32, 32) and fps == pytest.approx(30.0)
    from dtgan_plugin.media import open_video

    with open_video(out) as r:
        assert r.has_audio
    big = tmp_path / "big.mp4"
    res = run_cli("transfer", "-s", str(src), "-t", str(rgb_image), "-o", str(big),
                  "--checkpoint", str(ckpt), "--no-progress", "--size", "96", "--amplify", "2")
    assert res.returncode == 0, res.stderr.decode()
    assert _probe(big)[2:] == (96, 96)


def test_dynamics_file_round_trip_and_reuse(tmp_path: Path, ckpt: Path, src: Path,
                                            rgb_image: Path) -> None:
    dyn = tmp_path / "s.dyn.safetensors"
    # whole frames on both sides (MediaPipe sees a "face" in ffmpeg's testsrc2 pattern)
    res = run_cli("dynamics", "-s", str(src), "-o", str(dyn), "--checkpoint", str(ckpt),
                  "--no-progress", "--crop", "none")
    assert res.returncode == 0, res.stderr.decode()
    from dtgan_plugin.dynfile import DynamicsFile

    f = DynamicsFile(dyn)
    assert (f.num_frames, f.dim) == (40, 32) and f.fps == pytest.approx(30.0)
    assert f.meta["reference_frame"] == "0" and len(f.meta["checkpoint"]) >= 8
    # the saved dynamics equal what the graph stage streams, and drive the same video
    a, b = tmp_path / "a.mkv", tmp_path / "b.mkv"
    assert run_cli("transfer", "-s", str(src), "-t", str(rgb_image), "-o", str(a),
                   "--checkpoint", str(ckpt), "--no-progress").returncode == 0
    res = run_cli("transfer", "--dynamics", str(dyn), "-t", str(rgb_image), "-o", str(b),
                  "--checkpoint", str(ckpt), "--no-progress")
    assert res.returncode == 0, res.stderr.decode()
    from dtgan_plugin.media import open_video

    with open_video(a) as ra, open_video(b) as rb:
        fa, fb = ra.get_batch(list(range(40))), rb.get_batch(list(range(40)))
    assert torch.equal(fa, fb)  # lossless codec: bit-identical


def test_dynamics_with_other_checkpoint_refused(tmp_path: Path, ckpt: Path, src: Path,
                                                rgb_image: Path) -> None:
    other = tmp_path / "other.safetensors"
    torch.manual_seed(5)
    save_checkpoint(other, build_model(ModelConfig.from_dict(SMALL)))
    dyn = tmp_path / "s.dyn.safetensors"
    assert run_cli("dynamics", "-s", str(src), "-o", str(dyn), "--checkpoint", str(ckpt),
                   "--no-progress").returncode == 0
    res = run_cli("transfer", "--dynamics", str(dyn), "-t", str(rgb_image), "-o",
                  str(tmp_path / "x.mp4"), "--checkpoint", str(other), "--no-progress")
    assert res.returncode == 2
    err = res.stderr.decode().strip()
    assert "extracted by checkpoint" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_streaming_transferer_equals_whole_clip(ckpt: Path, src: Path, rgb_image: Path,
                                                chunk: int) -> None:
    from dtgan_plugin import Transferer
    from dtgan_plugin.media import open_video, read_image

    with open_video(src) as r:
        frames = r.get_batch(list(range(40)))
    whole = Transferer(rgb_image, str(ckpt), device="cpu").push(frames)
    tr = Transferer(read_image(rgb_image), str(ckpt), device="cpu")
    parts = [tr.push(frames[i:i + chunk]) for i in range(0, 40, chunk)]
    parts.append(tr.flush())
    streamed = torch.cat(parts)
    assert streamed.shape == whole.shape == (40, 3, 32, 32)
    assert torch.allclose(streamed, whole, atol=1e-5)


def test_transferer_numpy_layout_and_reference_frame(ckpt: Path, src: Path, rgb_image: Path) -> None:
    from dtgan_plugin import Transferer
    from dtgan_plugin.media import open_video

    with open_video(src) as r:
        frames = (r.get_batch(list(range(12))) * 255).round().byte()
    arr = frames.permute(0, 2, 3, 1).numpy()
    tr = Transferer(rgb_image, str(ckpt), device="cpu", reference_frame=5)
    first = tr.push(arr[:3])  # held until the reference frame arrives
    assert isinstance(first, np.ndarray) and first.shape == (0, 32, 32, 3)
    rest = tr.push(arr[3:])
    assert rest.shape == (12, 32, 32, 3) and rest.dtype == np.uint8
    late = Transferer(rgb_image, str(ckpt), device="cpu", reference_frame=50)
    late.push(arr)
    with pytest.raises(DtganError, match="past the end"):
        late.flush()


@pytest.mark.parametrize("fit", ["crop", "pad", "stretch"])
def test_amplify_zero_gives_the_fitted_target(tmp_path: Path, src: Path, rgb_image: Path,
                                              fit: str) -> None:
    from dtgan_plugin import Transferer
    from dtgan_plugin.inference import fit_image
    from dtgan_plugin.media import open_video, read_image

    # a model exact at rest: zero dynamics render the fitted target itself
    rest = small_checkpoint(tmp_path / "rest.safetensors", at_rest=True)
    with open_video(src) as r:
        frames = r.get_batch(list(range(8)))
    still = Transferer(rgb_image, str(rest), device="cpu", amplify=0.0, fit=fit).push(frames)
    # zero dynamics: every frame is the target, fitted to the model's 32 px by *this* policy
    image = read_image(rgb_image)  # 80x48: the three policies give three different pictures
    fitted = {f: fit_image(image, 32, f) for f in ("crop", "pad", "stretch")}
    assert torch.allclose(still, still[:1].expand_as(still), atol=1e-6)
    torch.testing.assert_close(still[0], fitted[fit], atol=2e-3, rtol=0)
    for other in set(fitted) - {fit}:
        assert (still[0] - fitted[other]).abs().mean() > 0.02, other


def test_dynamics_edit_stages(tmp_path: Path, ckpt: Path, src: Path, rgb_image: Path) -> None:
    from dtgan_plugin.dynfile import DynamicsFile
    from dtgan_plugin.graph import Graph

    d1, d2, d3 = (tmp_path / f"{n}.dyn.safetensors" for n in ("plain", "amp", "slow"))
    g = Graph.parse(f"[0]dtgan.dynamics=checkpoint='{ckpt}',dtgan.save=file='{d1}',"
                    f"dtgan.amplify=2,dtgan.save=file='{d2}',dtgan.retime=speed=0.5,"
                    f"dtgan.save=file='{d3}'[d];[1][d]dtgan.transfer=checkpoint='{ckpt}'[out]")
    stats = g.run([str(src), str(rgb_image)], [str(tmp_path / "slow.mp4")], progress=False)
    plain, amp, slow = (DynamicsFile(p).read_all() for p in (d1, d2, d3))
    assert torch.allclose(amp, plain * 2)
    assert slow.shape[0] == 79 and stats.frames == 79  # (40 - 1) / 0.5 + 1
    assert torch.allclose(slow[::2], amp, atol=1e-6)
    assert torch.allclose(slow[1::2], (amp[:-1] + amp[1:]) / 2, atol=1e-5)
    # faster than the source: every other vector, and as many frames as configure promised
    d4 = tmp_path / "fast.dyn.safetensors"
    g = Graph.parse(f"dtgan.load=file='{d1}',dtgan.retime=speed=2,dtgan.save=file='{d4}'[d];"
                    f"[0][d]dtgan.transfer=checkpoint='{ckpt}'[out]")
    stats = g.run([str(rgb_image)], [str(tmp_path / "fast.mp4")], progress=False)
    fast = DynamicsFile(d4).read_all()
    assert fast.shape[0] == stats.frames == 20 and torch.equal(fast, plain[::2])
    # smoothing damps frame-to-frame jitter; reverse + loop reorders
    g = Graph.parse(f"dtgan.load=file='{d1}',dtgan.smooth=mincutoff=0.5:beta=0,"
                    f"dtgan.save=file='{d2}',dtgan.retime=reverse=1:loop=2,"
                    f"dtgan.save=file='{d3}'[d];[0][d]dtgan.transfer=checkpoint='{ckpt}'[out]")
    g.run([str(rgb_image)], [str(tmp_path / "rev.mp4")], progress=False)
    smooth, rev = DynamicsFile(d2).read_all(), DynamicsFile(d3).read_all()
    assert smooth.diff(dim=0).abs().mean() < plain.diff(dim=0).abs().mean()
    assert torch.allclose(rev[:40], smooth.flip(0)) and torch.allclose(rev[40:], smooth.flip(0))


def test_keep_audio_follows_trim_and_speed_through_the_model(tmp_path: Path, ckpt: Path,
                                                           late_tone_clip: Path,
                                                           rgb_image: Path) -> None:
    # the source is silent for 1 s, then a tone; the output's audio must follow its motion
    from dtgan_plugin.graph import Graph

    def run(before: str, after: str, name: str) -> Path:
        out = tmp_path / name
        Graph.parse(f"[0]{before}dtgan.dynamics=checkpoint='{ckpt}'{after}[d];"
                    f"[1][d]dtgan.transfer=checkpoint='{ckpt}'[out]"
                    ).run([late_tone_clip, rgb_image], [out], progress=False, keep_audio=True)
        return out

    # a trim before the dynamics: the output starts 1.2 s into the audio, i.e. on the tone
    cut = run("dtgan.trim=start_time=1.2,", "", "cut.mp4")
    assert audio_rms(cut, 0.4) > 0.2
    # twice the speed: 2 s of source in 1 s of output, silent half then tone half
    fast = run("", ",dtgan.retime=speed=2", "fast.mp4")
    assert _probe(fast)[0] == 25
    assert abs(audio_seconds(fast) - 1.0) < 0.1
    assert audio_rms(fast, 0.35) < 0.01 and audio_rms(fast, 0.3, start=0.6) > 0.2
    # both: trim 0.4 s, then 2x: the source's 0.4..2 s in 0.8 s, the tone from 0.3 s
    both = run("dtgan.trim=start_time=0.4,", ",dtgan.retime=speed=2", "both.mp4")
    assert audio_rms(both, 0.25) < 0.01 and audio_rms(both, 0.3, start=0.45) > 0.2


def test_keep_audio_refuses_reversed_motion(tmp_path: Path, ckpt: Path, late_tone_clip: Path,
                                            rgb_image: Path) -> None:
    out = tmp_path / "rev.mp4"
    res = run_cli("graph", f"[0]dtgan.dynamics=checkpoint='{ckpt}',dtgan.retime=reverse=1[d];"
                  f"[1][d]dtgan.transfer=checkpoint='{ckpt}'[out]", "-i", str(late_tone_clip),
                  "-i", str(rgb_image), "-o", str(out), "--keep-audio", "--no-progress")
    err = res.stderr.decode().strip()
    assert res.returncode == 2 and len(err.splitlines()) == 1, err
    assert "reverses or loops" in err and "--keep-audio" in err and not out.exists()


def test_atempo_factors_multiply_to_the_speed() -> None:
    from dtgan_plugin.media.writer import atempo_factors

    assert atempo_factors(1.0) == []
    for speed in (0.001, 0.3, 0.5, 1.5, 2.0, 7.0, 1000.0):
        factors = atempo_factors(speed)
        assert all(0.5 <= f <= 2.0 for f in factors)
        assert np.isclose(np.prod(factors), speed)


def test_bad_inputs_are_one_line_errors(tmp_path: Path, ckpt: Path, src: Path,
                                        rgb_image: Path) -> None:
    cases = [
        (["transfer", "-s", str(tmp_path / "nope.mp4"), "-t", str(rgb_image)], 1, "not found"),
        (["transfer", "-s", str(src), "-t", str(rgb_image), "--checkpoint",
          str(tmp_path / "missing.safetensors")], 1, "missing.safetensors"),
        (["transfer", "-t", str(rgb_image)], 2, "source"),
        (["transfer", "-s", str(src), "-t", str(rgb_image), "--device", "tpu"], 2, "device"),
        (["dynamics", "-s", str(src), "-o", str(tmp_path / "x.bin")], 2, ".dyn.safetensors"),
        (["transfer", "-s", str(src), "-t", str(rgb_image), "--reference-frame", "999"], 2,
         "past the end"),
    ]
    for args, code, needle in cases:
        out = ["-o", str(tmp_path / "o.mp4")] if args[0] == "transfer" else []
        extra = [] if "--checkpoint" in args else ["--checkpoint", str(ckpt)]
        res = run_cli(*args, *out, *extra, "--no-progress")
        err = res.stderr.decode().strip()
        assert res.returncode == code, (args, err)
        assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "o.mp4").exists()


def test_default_checkpoint_resolves_or_says_why(tmp_path: Path) -> None:
    from dtgan_plugin.models.checkpoint import resolve_checkpoint

    default = Path(__import__("dtgan_plugin").__file__).parent / "assets" / "default.safetensors"
    if default.exists():
        assert resolve_checkpoint("default") == default
    else:
        with pytest.raises(DtganError, match="no default"):
            resolve_checkpoint("default")


def test_shipped_default_renders_the_target_at_rest() -> None:
    # the default model is exact at rest: a source that does not move leaves the target as is
    from dtgan_plugin.demo import DEMO_TARGET, demo_landmarks
    from dtgan_plugin.inference import fit_image
    from dtgan_plugin.media import read_image
    from dtgan_plugin.models.checkpoint import load_checkpoint, resolve_checkpoint

    # the package ships it: a missing or corrupt asset fails here (never skipped)
    model = load_checkpoint(resolve_checkpoint("default"))
    assert model.config.generator_cfg.identity_at_rest
    target = fit_image(read_image(DEMO_TARGET), model.resolution).unsqueeze(0) * 2 - 1
    _, points = demo_landmarks(model.resolution)
    still = points.expand(1, 6, 68, 2)  # the target's own face, not moving
    with torch.inference_mode():
        out = model(target, still, target_landmarks=points[None])
    torch.testing.assert_close(out, target.unsqueeze(1).expand_as(out), atol=1.1e-3, rtol=0)


def test_demo_writes_video_and_gif(tmp_path: Path) -> None:
    # with the faces and demo extras (the test environment has both): carphone drives the
    # astronaut at full size; --procedural: the shipped clip, the landmark model reading its
    # exact landmarks (no landmarker needed)
    from dtgan_plugin.media import open_video

    res = run_cli("demo", "-o", str(tmp_path / "real"), "--no-progress", timeout=600)
    assert res.returncode == 0, res.stderr.decode()
    out = res.stdout.decode()
    assert "out.mp4" in out and "side_by_side.gif" in out and "astronaut.png" in out
    with open_video(tmp_path / "real" / "out.mp4") as r:
        assert r.info.num_frames == 120 and (r.info.width, r.info.height) == (512, 512)
    res = run_cli("demo", "-o", str(tmp_path / "proc"), "--procedural", "--no-progress")
    assert res.returncode == 0, res.stderr.decode()
    with open_video(tmp_path / "proc" / "out.mp4") as r:
        assert r.info.num_frames == 64 and (r.info.width, r.info.height) == (128, 128)
    for sub in ("real", "proc"):
        assert (tmp_path / sub / "side_by_side.gif").stat().st_size > 10_000