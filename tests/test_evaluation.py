"""``dtgan eval``: metrics, baselines, the motion probe, protocols P1-P5 and the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from dtgan_plugin.errors import UsageError
from dtgan_plugin.evaluation import metrics as M
from dtgan_plugin.evaluation.baselines import (CopySourceBaseline, FlowWarpBaseline, Method,
                                               StaticBaseline, make_baseline)
from dtgan_plugin.evaluation.probe import default_probe_path, load_probe
from dtgan_plugin.evaluation.protocols import (SynthEvalData, SynthSpec, evaluate,
                                               open_eval_folder, parse_protocols,
                                               parse_synth_spec, run_evaluation)
from dtgan_plugin import synthfaces as sf

from conftest import make_clip, run_cli

TINY_SPEC = "identities=20:clips=2:frames=6"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised 32 px model (the tiny training config's sizes)."""
    from dtgan_plugin.models import ModelConfig, build_model, save_checkpoint
    from dtgan_plugin.models.config import EncoderConfig, GeneratorConfig

    torch.manual_seed(0)
    cfg = ModelConfig(resolution=32,
                      encoder=EncoderConfig(widths=(8, 16, 16, 32), feature_dim=32, hidden=32),
                      generator_cfg=GeneratorConfig(base_width=8, max_width=32, dyn_channels=8))
    path = tmp_path_factory.mktemp("ck") / "model.safetensors"
    save_checkpoint(path, build_model(cfg))
    return path


@pytest.fixture(scope="module")
def probe():
    """The shipped motion probe."""
    return load_probe()


def _video(seed: int = 0, b: int = 2, t: int = 5, s: int = 24) -> torch.Tensor:
    return torch.rand(b, t, 3, s, s, generator=torch.Generator().manual_seed(seed))


# --- metrics --------------------------------------------------------------------------------

def test_identical_videos_score_perfectly() -> None:
    v = _video()
    assert torch.equal(M.l1(v, v), torch.zeros(2))
    assert torch.allclose(M.ssim(v, v), torch.ones(2), atol=1e-5)
    assert torch.equal(M.psnr(v, v), torch.full((2,), M.PSNR_CAP))
    assert torch.equal(M.temporal_error(v, v), torch.zeros(2))
    assert torch.equal(M.excess_jitter(v, v), torch.zeros(2))


def test_metrics_match_their_definitions() -> None:
    a, b = _video(0), _video(1)
    assert torch.allclose(M.l1(a, b), (a - b).abs().mean(dim=(1, 2, 3, 4)))
    mse = (a - b).square().mean(dim=(1, 2, 3, 4))
    assert torch.allclose(M.psnr(a, b), 10 * torch.log10(1 / mse))
    s = M.ssim(a, b)
    assert bool((s < 0.2).all()), s  # independent noise is structurally unrelated
    # a constant offset changes L1 but not the frame-to-frame error
    shifted = a * 0.5 + 0.25
    shifted2 = shifted + 0.1
    assert torch.allclose(M.temporal_error(shifted2, shifted), torch.zeros(2), atol=1e-6)


def test_ssim_uses_an_11x11_gaussian_window_and_agrees_with_skimage() -> None:
    skm = pytest.importorskip("skimage.metrics")
    a, b = _video(2, b=1, t=1, s=32), _video(3, b=1, t=1, s=32)
    b = (0.7 * a + 0.3 * b).clamp(0, 1)
    ours = float(M.ssim(a, b))
    ref = skm.structural_similarity(a[0, 0].permute(1, 2, 0).double().numpy(),
                                    b[0, 0].permute(1, 2, 0).double().numpy(),
                                    gaussian_weights=True, sigma=1.5, win_size=11,
                                    use_sample_covariance=False, data_range=1.0,
                                    channel_axis=2)
    assert ours == pytest.approx(ref, abs=2e-3)


def test_metrics_refuse_mismatched_shapes() -> None:
    with pytest.raises(UsageError, match="differ in shape"):
        M.l1(_video(s=24), _video(s=16))
    with pytest.raises(UsageError, match="expected videos"):
        M.psnr(torch.zeros(3, 3, 8, 8), torch.zeros(3, 3, 8, 8))


def test_temporal_metrics_of_a_still_output() -> None:
    truth = _video(4, t=6)
    still = truth[:, :1].expand_as(truth).clone()
    jt = M._diff(truth, 2).abs().flatten(1).mean(1)
    assert torch.allclose(M.excess_jitter(still, truth), -jt)
    assert torch.equal(M.background_drift(still, still), torch.zeros(2))
    # a truth that changes everywhere has no still background: NaN, skipped by the mean
    assert bool(M.background_drift(still, truth).isnan().all())
    acc = M.MeanAccumulator()
    acc.add(M.background_drift(still, truth))
    acc.add([1.0, 3.0])
    assert acc.summary()["mean"] == 2.0 and acc.summary()["skipped"] == 2


def test_background_drift_sees_a_flickering_border() -> None:
    truth = torch.full((1, 4, 3, 32, 32), 0.5)
    truth[:, :, :, 10:20, 10:20] = torch.rand(1, 4, 3, 10, 10)  # the moving "face"
    out = truth.clone()
    out[:, 2, :, :2, :] += 0.2  # the top rows flicker on frame 2
    drift = float(M.background_drift(out, truth))
    mask = M.static_border_mask(truth)
    assert mask[0, 0].all() and not mask[0, 15, 15]
    expected = 0.2 * (2 * 32) / int(mask.sum()) / 3  # one of three later frames changes
    assert drift == pytest.approx(expected, rel=1e-4)
    assert float(M.background_drift(truth, truth)) == 0.0


def test_corr_accumulator_centres_each_clip_and_zeroes_constant_predictions() -> None:
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(4, 10, 3, generator=g)
    acc = M.CorrAccumulator(["a", "b", "c"])
    acc.add(truth * 2 + torch.arange(4.0).view(4, 1, 1), truth)  # per-clip offsets ignored
    assert all(v == pytest.approx(1.0) for v in acc.corr().values())
    still = M.CorrAccumulator(["a", "b", "c"])
    still.add(torch.randn(4, 1, 3, generator=g).expand(4, 10, 3), truth)
    assert still.corr() == {"a": 0.0, "b": 0.0, "c": 0.0}
    assert still.mae()["a"] > 0


def test_leakage_definition() -> None:
    e_t, e_s = torch.zeros(5, 4), torch.ones(5, 4)
    assert torch.allclose(M.leakage(e_t, e_t, e_s), torch.zeros(5))
    assert torch.allclose(M.leakage(e_s, e_t, e_s), torch.ones(5), atol=1e-5)
    assert torch.allclose(M.leakage(0.5 * e_s, e_t, e_s), torch.full((5,), 0.5))


# --- baselines ------------------------------------------------------------------------------

def test_static_baseline_p2_l1_is_mean_target_truth_difference() -> None:
    data = SynthEvalData(SynthSpec(identities=20, clips=2, frames=5), size=32, seed=0)
    res = evaluate([StaticBaseline()], data, protocols=["P2"], examples=0)
    per_clip = []
    for batch in data.batches(3):
        per_clip += (batch.cross_target.unsqueeze(1) - batch.cross_truth).abs() \
            .mean(dim=(1, 2, 3, 4)).tolist()
    assert res["methods"]["static"]["P2"]["l1"]["mean"] == pytest.approx(
        sum(per_clip) / len(per_clip), rel=1e-5)
    assert res["methods"]["static"]["P2"]["l1"]["n"] == len(data) == 4


def test_flow_warp_beats_static_on_pure_head_translation() -> None:
    pytest.importorskip("cv2")
    t = 8
    params = sf.neutral_params(1, t)
    params[0, :, sf.PARAM_NAMES.index("shift_x")] = torch.linspace(0, 0.12, t)
    params[0, :, sf.PARAM_NAMES.index("shift_y")] = torch.linspace(0, -0.06, t)
    a, b = sf.identities_for(0, [10]), sf.identities_for(0, [20])
    source = sf.render(a, params, 64)
    truth = sf.render(b, params, 64)
    target = sf.render_neutral(b, 64)
    static = StaticBaseline()(source, target)
    warped = FlowWarpBaseline()(source, target)
    l1_static, l1_flow = float(M.l1(static, truth)), float(M.l1(warped, truth))
    assert l1_flow < 0.6 * l1_static, (l1_flow, l1_static)
    assert torch.equal(warped[:, 0], target)  # the reference frame is not moved


def test_missing_opencv_skips_flow_warp_with_a_note(tmp_path: Path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    report = run_evaluation([], tmp_path / "r", synth="identities=20:clips=1:frames=3:size=32",
                            protocols="P1", examples=0)
    assert list(report["methods"]) == ["static"]
    note = [n for n in report["notes"] if "flow-warp" in n]
    assert len(note) == 1 and "OpenCV is not installed" in note[0] and "\n" not in note[0]
    assert "OpenCV is not installed" in (tmp_path / "r" / "report.md").read_text()


def test_missing_probe_skips_p3_and_p4_with_a_note(tmp_path: Path) -> None:
    report = run_evaluation([], tmp_path / "r", synth="identities=20:clips=1:frames=3:size=32",
                            baselines=["static"], examples=0,
                            probe_path=str(tmp_path / "absent.safetensors"))
    assert report["protocols"] == ["P1", "P2", "P5"]
    note = [n for n in report["notes"] if n.startswith("P3 and P4 skipped")]
    assert len(note) == 1 and "train_probe" in note[0]
    assert "P3 corr" not in (tmp_path / "r" / "report.md").read_text()


def test_unknown_baseline_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="did you mean 'flow-warp'"):
        make_baseline("flowwarp")


# --- probe ----------------------------------------------------------------------------------

def test_probe_ships_small_and_reads_held_out_frames(probe) -> None:
    path = default_probe_path()
    assert path.stat().st_size < 1_000_000
    assert probe.meta["heldout"]["frames"] > 0
    # test-split identities the probe never saw, dynamics from a seed it never saw
    ids = sf.split_identities(200, "test")[:6]
    params, _ = sf.clip_dynamics(4242, ids, [0] * len(ids), 16)
    frames = sf.render(sf.identities_for(7, ids), params, 64).flatten(0, 1)
    pred, emb = probe.predict(frames)
    truth = params.flatten(0, 1)
    for name in ("mouth_open", "brows_up", "blink", "shift_x", "roll"):
        j = sf.PARAM_NAMES.index(name)
        r = torch.corrcoef(torch.stack([pred[:, j], truth[:, j]]))[0, 1]
        assert float(r) > 0.5, (name, float(r))
    assert emb.shape == (len(frames), 24)


def test_probe_works_at_other_sizes(probe) -> None:
    idn = sf.identities_for(0, [30])
    params, _ = sf.clip_dynamics(99, [30], [0], 8, classes=["surprise"])
    p64, _ = probe.predict(sf.render(idn, params, 64)[0])
    p128, _ = probe.predict(sf.render(idn, params, 128)[0])
    j = sf.PARAM_NAMES.index("mouth_open")
    assert torch.corrcoef(torch.stack([p64[:, j], p128[:, j]]))[0, 1] > 0.9


def test_missing_or_foreign_probe_file(tmp_path: Path) -> None:
    from dtgan_plugin.errors import CheckpointError
    from dtgan_plugin.evaluation.probe import ProbeMissingError

    with pytest.raises(ProbeMissingError, match="train_probe"):
        load_probe(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04junk")
    with pytest.raises(CheckpointError):
        load_probe(bad)


# --- protocols ------------------------------------------------------------------------------

class _Blend(Method):
    """Half source, half target: a method that leaks some of the source's appearance."""

    name = "blend"

    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 0.5 * source + 0.5 * target.unsqueeze(1)


def test_leakage_and_motion_fidelity_rank_oracles(probe) -> None:
    data = SynthEvalData(SynthSpec(identities=40, clips=2, frames=8), size=64, seed=0)
    res = evaluate([CopySourceBaseline(), _Blend(), StaticBaseline()], data,
                   protocols=["P3", "P4"], probe=probe, examples=0)
    leak = {k: v["P4"]["leakage"]["mean"] for k, v in res["methods"].items()}
    assert leak["copy-source"] > 0.9
    assert leak["static"] < 0.3
    assert leak["copy-source"] > leak["blend"] > leak["static"]
    corr = {k: v["P3"]["corr_mean"] for k, v in res["methods"].items()}
    assert corr["static"] == 0.0  # a still output follows no motion
    assert corr["copy-source"] > 0.4  # the source moves exactly as itself
    assert res["probe_ceiling"]["corr_mean"] == pytest.approx(corr["copy-source"], abs=0.1)


def test_synth_eval_data_is_held_out_and_deterministic() -> None:
    spec = SynthSpec(identities=40, clips=3, frames=4)
    data = SynthEvalData(spec, size=32, seed=5, limit=5)
    assert len(data) == 5 and all(sf.split_of(i) == "test" for i in data.ids)
    pos, clip, tpos = data.items(range(len(data)))
    assert (pos != tpos).all()  # cross pairs are always two identities
    assert len(set(pos.tolist())) == 4  # a limit still spreads over identities
    b1 = next(SynthEvalData(spec, size=32, seed=5, limit=5).batches(5))
    b2 = next(data.batches(5))
    assert torch.equal(b1.source, b2.source) and torch.equal(b1.cross_truth, b2.cross_truth)
    # truth frame 0 is the target's neutral face, and the truth moves with the source
    assert torch.allclose(b1.cross_truth[:, 0], b1.cross_target)
    assert torch.equal(b1.params[:, 0], torch.zeros_like(b1.params[:, 0]))


def test_parse_synth_spec_and_protocols() -> None:
    s = parse_synth_spec("identities=50:clips=3:frames=8:size=32")
    assert (s.identities, s.clips, s.frames, s.size) == (50, 3, 8, 32)
    assert parse_synth_spec("") == SynthSpec() and SynthSpec().split == "test"
    for bad, msg in (("identities", "not key=value"), ("ids=5", "synth key 'ids'"),
                     ("frames=x", "must be an integer"), ("identities=5", "between 11"),
                     ("split=train", "split must be one of test, val"),
                     ("part=mouth", "part must be one of all, expression, motion")):
        with pytest.raises(UsageError, match=msg):
            parse_synth_spec(bad)
    assert parse_protocols("p3,P1, p1") == ("P1", "P3")
    # split=val scores the validation identities (checkpoint selection), never the test ones
    from dtgan_plugin.synthfaces import split_identities

    val = SynthEvalData(parse_synth_spec("identities=100:clips=1:split=val"), size=32)
    test = SynthEvalData(parse_synth_spec("identities=100:clips=1"), size=32)
    assert val.ids == split_identities(100, "val") and not set(val.ids) & set(test.ids)
    assert val.describe()["split"] == "val" and val.describe()["val_identities"] == len(val.ids)
    # part= keeps one kind of motion: the other parameters stay neutral on every frame
    from dtgan_plugin.synthfaces import EXPRESSION_PARAMS

    n = len(EXPRESSION_PARAMS)
    full = next(test.batches(4)).params
    for part, kept, zero in (("expression", slice(0, n), slice(n, None)),
                             ("motion", slice(n, None), slice(0, n))):
        data = SynthEvalData(parse_synth_spec(f"identities=100:clips=1:part={part}"), size=32)
        p = next(data.batches(4)).params
        assert torch.equal(p[..., kept], full[..., kept]) and not p[..., zero].any()
    with pytest.raises(UsageError, match="unknown protocol 'P9'"):
        parse_protocols("P1,P9")


def test_video_folder_supports_p1_and_p5_only(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    make_clip(videos / "a.mp4", frames=8, size=64)
    make_clip(videos / "b.mp4", frames=8, size=40, pattern="testsrc")
    (videos / "notes.txt").write_text("not a video")
    (videos / "broken.mp4").write_bytes(b"this is not an mp4 file at all")
    report = run_evaluation([], tmp_path / "rep", data=str(videos), frames=6,
                            baselines=["static", "flow-warp"], examples=2)
    assert report["data"]["kind"] == "videos" and report["clips"] == 2
    assert report["protocols"] == ["P1", "P5"]
    assert any("P1 and P5" in n for n in report["notes"])
    assert any("1 video(s) skipped; first: broken.mp4" in n for n in report["notes"])
    static = report["methods"]["static"]
    assert "P2" not in static and "P3" not in static
    assert static["P1"]["l1"]["mean"] > 0 and "temporal_error" in static["P5"]
    assert (tmp_path / "rep" / "examples" / "p1_example_00.png").stat().st_size > 0


def test_a_folder_of_unreadable_videos_is_a_runtime_error(tmp_path: Path, capsys) -> None:
    from dtgan_plugin.cli import main

    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "broken.mp4").write_bytes(b"junk")
    rc = main(["eval", "--baselines", "static", "--data", str(tmp_path / "v"), "-o",
               str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and "could be evaluated" in err, err


def test_synth_folder_from_dtgan_data_synth(tmp_path: Path) -> None:
    from dtgan_plugin.training.datagen import write_dataset

    write_dataset(tmp_path / "ds", identities=11, clips=1, size=32, frames=5, seed=0,
                  progress=False)
    data = open_eval_folder(tmp_path / "ds", frames=16, size=32)
    assert data.kind == "synth-folder" and len(data) == 2 and data.has_truth
    batch = next(data.batches(4))
    # the decoded clips are the lossless renders, the truth B moving like A
    ids = [0, 10]
    params, _ = sf.clip_dynamics(0, ids, [0, 0], 5)
    rendered = sf.render(sf.identities_for(0, ids), params, 32)
    assert (batch.source - rendered).abs().max() <= 1 / 255 + 1e-6
    truth_b = sf.render(sf.identities_for(0, [10]), params[:1], 32)
    assert torch.allclose(batch.cross_truth[:1], truth_b)
    res = evaluate([StaticBaseline()], data, protocols=["P1", "P2", "P5"], examples=0)
    assert set(res["methods"]["static"]) >= {"P1", "P2", "P5"}


# --- the command ----------------------------------------------------------------------------

def test_dtgan_eval_end_to_end(tiny_checkpoint: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.safetensors"
    other.write_bytes(tiny_checkpoint.read_bytes())
    out = tmp_path / "report"
    res = run_cli("eval", "--checkpoint", str(tiny_checkpoint), "--checkpoint",
                  f"noDT={other}", "--synth", TINY_SPEC, "-o", str(out), "--examples", "2",
                  "--no-progress", timeout=240)
    assert res.returncode == 0, res.stderr.decode()
    report = json.loads((out / "report.json").read_text())
    # the run folder's name names an unnamed model.safetensors
    names = list(report["methods"])
    assert names == [tiny_checkpoint.parent.name, "noDT", "static", "flow-warp"]
    for name in names:
        entry = report["methods"][name]
        for proto, key in (("P1", "ssim"), ("P2", "l1"), ("P4", "leakage"),
                           ("P5", "background_drift")):
            assert math.isfinite(entry[proto][key]["mean"]), (name, proto)
        assert set(entry["P3"]) >= {"corr_mean", "mae_expr", "mae_motion", "per_param"}
        assert entry["timing"]["frames"] > 0
    assert report["methods"]["static"]["P2"]["l1_vs_static"] == pytest.approx(1.0)
    assert report["protocols"] == ["P1", "P2", "P3", "P4", "P5"]
    assert report["data"]["world_seed"] == 0 and report["data"]["dynamics_seed"] == 1000
    assert report["data"]["test_identities"] == 2 and report["clips"] == 4
    fp = report["checkpoints"]["noDT"]["fingerprint"]
    assert len(fp) == 16 and report["checkpoints"][names[0]]["fingerprint"] == fp
    assert report["probe"]["path"].endswith("motion_probe.safetensors")
    assert report["timing"]["total_seconds"] > 0
    md = (out / "report.md").read_text()
    assert "| noDT | model |" in md and "| flow-warp | baseline |" in md
    assert "P4 leakage" in md and "Legend" in md
    for pic in report["pictures"]:
        assert (out / pic).stat().st_size > 0
    assert {"examples/p2_example_00.png", "examples/p2_example_01.png",
            "examples/p2_examples.gif"} <= set(report["pictures"])
    assert not list(out.rglob(".*"))  # no temporary files left behind
    # the table is printed too
    assert "| static | baseline |" in res.stdout.decode()
    # paired with the first checkpoint: its byte-identical copy differs by exactly zero
    paired = report["paired"]
    assert paired["reference"] == names[0] and set(paired["methods"]) == set(names[1:])
    for key in ("P1.l1", "P2.l1", "P2.ssim", "P4.leakage", "P5.temporal_error"):
        same = paired["methods"]["noDT"][key]
        assert same["mean_diff"] == 0.0 and same["ci95"] == 0.0 and same["n"] == 4, key
    per_clip = report["methods"]["static"]["per_clip"]["P2.l1"]
    assert len(per_clip) == 4
    assert sum(per_clip) / 4 == pytest.approx(report["methods"]["static"]["P2"]["l1"]["mean"])
    d = paired["methods"]["static"]["P2.l1"]
    assert d["mean_diff"] == pytest.approx(report["methods"]["static"]["P2"]["l1"]["mean"]
                                           - report["methods"][names[0]]["P2"]["l1"]["mean"])
    assert f"## Paired differences vs {names[0]}" in md and "| static | " in md


def test_paired_differences_and_reference_choice() -> None:
    from dtgan_plugin.errors import UsageError
    from dtgan_plugin.evaluation.protocols import _paired_reference, paired_differences

    d = paired_differences([1.0, 2.0, 4.0, float("nan")], [0.5, 1.5, 3.0, 1.0])
    assert d["n"] == 3 and d["mean_diff"] == pytest.approx(2.0 / 3)
    # the interval comes from the spread of the differences, not of the values
    assert d["ci95"] == pytest.approx(1.96 * math.sqrt(1 / 12) / math.sqrt(3))
    assert _paired_reference("", ["a", "b"], ["static"]) == "a"
    assert _paired_reference("", [], ["static"]) is None
    assert _paired_reference("static", ["a"], ["static"]) == "static"
    assert _paired_reference("none", ["a"], ["static"]) is None
    with pytest.raises(UsageError, match="did you mean 'noDT'"):
        _paired_reference("nodt", ["a", "noDT"], ["static"])


@pytest.mark.parametrize("argv, code, message", [
    (["--checkpoint", "/nonexistent/model.safetensors"], 1, "checkpoint not found"),
    (["--checkpoint", "CK", "--synth", "identities=5"], 2, "between 11"),
    (["--checkpoint", "CK", "--synth", "people=40"], 2, "unknown --synth key 'people'"),
    (["--checkpoint", "CK", "--protocols", "P1,P7"], 2, "unknown protocol 'P7'"),
    (["--checkpoint", "CK", "--baselines", "static,optical"], 2, "unknown baseline"),
    (["--checkpoint", "CK", "--data", "/nonexistent/folder"], 2, "--data folder not found"),
    (["--checkpoint", "CK", "--checkpoint", "CK"], 2, "two methods are called"),
    (["--checkpoint", "CK", "--paired-with", "nope"], 2, "--paired-with 'nope' is not one"),
])
def test_eval_bad_input_is_one_line(argv: list[str], code: int, message: str,
                                    tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    from dtgan_plugin.cli import main

    argv = [str(tiny_checkpoint) if a == "CK" else a for a in argv]
    rc = main(["eval", *argv, "-o", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == code, err
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r" / "report.json").exists()


def test_eval_usage_error_from_the_shell(tmp_path: Path) -> None:
    res = run_cli("eval", "--synth", "identities=x", "--baselines", "static", "-o",
                  str(tmp_path / "r"))
    assert res.returncode == 2
    lines = res.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "must be an integer" in lines[0]
