"""The procedural faces: determinism, geometry, exact cross-identity truth, splits, datagen."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch

from dtgan_plugin.errors import OptionError, UsageError
from dtgan_plugin import synthfaces as sf
from dtgan_plugin.synthfaces.geometry import _Grid
from dtgan_plugin.synthfaces.layers import _static_layers
from dtgan_plugin.synthfaces.params import _PI

P = _PI  # parameter name -> column


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _params(n: int, t: int, **values: float) -> torch.Tensor:
    p = sf.neutral_params(n, t)
    for name, value in values.items():
        p[..., P[name]] = value
    return p


def _box(points: torch.Tensor, pad: float, size: int) -> tuple[slice, slice]:
    """Rows/cols slice around pixel points ``(K, 2)`` (x, y) with ``pad`` pixels."""
    x0 = max(int(points[:, 0].min() - pad), 0)
    x1 = min(int(points[:, 0].max() + pad) + 1, size)
    y0 = max(int(points[:, 1].min() - pad), 0)
    y1 = min(int(points[:, 1].max() + pad) + 1, size)
    return slice(y0, y1), slice(x0, x1)


LM = {name: i for i, name in enumerate(sf.LANDMARK_NAMES)}


# --- rendering basics ------------------------------------------------------------------------

@pytest.mark.parametrize("size", [64, 128])
def test_render_shape_dtype_and_range(size: int) -> None:
    idn = sf.sample_identities(3, _gen(0))
    params, labels = sf.sample_dynamics(3, 5, _gen(1))
    frames = sf.render(idn, params, size)
    assert frames.shape == (3, 5, 3, size, size)
    assert frames.dtype == torch.float32
    assert float(frames.min()) >= 0.0 and float(frames.max()) <= 1.0
    assert labels.shape == (3,) and labels.dtype == torch.long
    # not a blank image: faces have real contrast
    assert float(frames.std()) > 0.1


def test_render_non_square_and_broadcast() -> None:
    idn = sf.sample_identities(1, _gen(0))
    params, _ = sf.sample_dynamics(2, 3, _gen(1))
    frames = sf.render(idn, params, (48, 80))  # one identity broadcast over two clips
    assert frames.shape == (2, 3, 3, 48, 80)
    one = sf.render(idn, params[1:], (48, 80))
    assert torch.allclose(frames[1:], one, atol=1e-6)


def test_determinism_same_seed_identical_different_seed_differs() -> None:
    def make(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = _gen(seed)
        idn = sf.sample_identities(4, g)
        params, _ = sf.sample_dynamics(4, 6, g)
        return params, sf.render(idn, params, 64)

    p1, f1 = make(7)
    p2, f2 = make(7)
    p3, f3 = make(8)
    assert torch.equal(p1, p2) and torch.equal(f1, f2)
    assert not torch.equal(p1, p3)
    assert float((f1 - f3).abs().mean()) > 0.02


def test_identities_for_is_a_function_of_seed_and_index() -> None:
    many = sf.identities_for(5, [0, 1, 2, 3, 4, 5])
    one = sf.identities_for(5, [3])
    assert torch.allclose(sf.render_neutral(many[3], 32), sf.render_neutral(one, 32), atol=1e-6)
    other_world = sf.identities_for(6, [3])
    assert not torch.equal(one.skin, other_world.skin)
    # different identities look different
    faces = sf.render_neutral(many, 64)
    for i in range(1, 6):
        assert float((faces[0] - faces[i]).abs().mean()) > 0.02


def test_frames_depend_only_on_their_own_params() -> None:
    """Chunking, cropping and frame order change nothing: frame t is a function of params[t]."""
    idn = sf.sample_identities(3, _gen(2))
    params, _ = sf.sample_dynamics(3, 7, _gen(3), concat=0.5)
    ref = sf.render(idn, params, 48)
    small_chunks = sf.render(idn, params, 48, chunk_pixels=48 * 48 * 2)
    uncropped = sf.render(idn, params, 48, crop=False)
    single = sf.render(idn[1], params[1:2, 4:5], 48)
    assert torch.allclose(ref, small_chunks, atol=1e-6)
    assert torch.allclose(ref, uncropped, atol=1e-6)
    assert torch.allclose(ref[1, 4], single[0, 0], atol=1e-6)


def test_a_frame_never_depends_on_its_batch() -> None:
    """Faces with and without hats, glasses, wrinkles... rendered together or alone agree."""
    idn = sf.sample_identities(16, _gen(30))
    assert bool(idn.hat.any()) and bool(idn.glasses.any()) and not bool(idn.glasses.all())
    params, _ = sf.sample_dynamics(16, 2, _gen(31), classes=list(range(6)) * 2 + [4] * 4)
    params[:, 1] = sf.apex_vectors()[torch.tensor(list(range(6)) * 2 + [4] * 4)]
    together = sf.render(idn, params, 40)
    for i in range(16):
        alone = sf.render(idn[i], params[i:i + 1], 40)[0]
        assert torch.allclose(together[i], alone, atol=1e-6), i


def test_edges_are_antialiased_at_every_size() -> None:
    """Shapes have fractional coverage on their edges (no hard staircase), at any resolution."""
    idn = sf.sample_identities(2, _gen(4))
    for size in (32, 64, 128):
        frame = sf.render_neutral(idn, size)
        step = (frame[..., 1:] - frame[..., :-1]).abs().amax(1)  # horizontal steps
        # many small steps (AA ramps) exist alongside large ones
        frac = ((step > 0.02) & (step < 0.5)).float().mean()
        assert frac > 0.01


def test_bad_arguments_raise_option_errors() -> None:
    idn = sf.sample_identities(2, _gen(0))
    with pytest.raises(OptionError, match="shape"):
        sf.render(idn, torch.zeros(2, 3, 5), 32)
    with pytest.raises(OptionError, match="2 identities but params for 3"):
        sf.render(idn, sf.neutral_params(3, 1), 32)
    with pytest.raises(OptionError, match="size"):
        sf.render(idn, sf.neutral_params(2, 1), 0)
    with pytest.raises(OptionError, match="unknown expression"):
        sf.sample_dynamics(2, 4, _gen(0), classes=["joy"])
    with pytest.raises(OptionError, match="probability"):
        sf.sample_dynamics(2, 4, _gen(0), reverse=2.0)
    with pytest.raises(OptionError, match="split"):
        sf.SynthFaceClips(10, split="holdout")
    with pytest.raises(OptionError, match="no identities"):
        sf.SynthFaceClips(2, split="train")
    with pytest.raises(OptionError, match="n must be"):
        sf.sample_identities(0)


def test_identity_dict_round_trip() -> None:
    idn = sf.sample_identities(3, _gen(9))
    back = sf.Identity.from_dict(json.loads(json.dumps(idn.to_dict(1))))
    assert len(back) == 1
    assert torch.allclose(sf.render_neutral(back, 32), sf.render_neutral(idn[1], 32), atol=1e-6)
    with pytest.raises(OptionError, match="lack"):
        sf.Identity.from_dict({"head_w": 0.5})


# --- dynamics ---------------------------------------------------------------------------------

def test_dynamics_start_neutral_reach_apex_and_stay_in_range() -> None:
    params, labels = sf.sample_dynamics(60, 16, _gen(11), classes=[c for c in range(6)] * 10)
    assert torch.equal(labels, torch.arange(6).repeat(10))
    assert torch.equal(params[:, 0], torch.zeros(60, sf.NUM_PARAMS))  # frame 0 is neutral
    lo = torch.tensor([sf.PARAM_RANGES[n][0] for n in sf.PARAM_NAMES])
    hi = torch.tensor([sf.PARAM_RANGES[n][1] for n in sf.PARAM_NAMES])
    assert bool(((params >= lo) & (params <= hi)).all())
    happy = params[labels == 0]
    assert float(happy[..., P["smile"]].amax(1).min()) > 0.4
    sad = params[labels == 1]
    assert float(sad[..., P["smile"]].amin(1).max()) < -0.3
    surprise = params[labels == 2]
    assert float(surprise[..., P["mouth_open"]].amax(1).min()) > 0.4
    # random blinks happen, and are events (the eyes open again)
    blink = params[..., P["blink"]]
    assert int((blink.amax(1) > 0.9).sum()) >= 10
    assert bool((blink[:, 0] == 0).all())
    # head motion is small and smooth
    shift = params[..., P["shift_x"]]
    assert float(shift.abs().max()) < 0.1
    assert float((shift[:, 1:] - shift[:, :-1]).abs().max()) < 0.03


def test_dynamics_variants() -> None:
    base, _ = sf.sample_dynamics(8, 12, _gen(5), classes="surprise")
    rev, _, meta = sf.sample_dynamics(8, 12, _gen(5), classes="surprise", reverse=True,
                                      return_meta=True)
    assert bool(meta["reversed"].all())
    assert torch.equal(rev, base.flip(1))
    cat, labels, meta = sf.sample_dynamics(20, 24, _gen(6), classes="happy", concat=True,
                                           return_meta=True)
    assert bool(meta["concat"].all()) and bool((meta["second_label"] != labels).all())
    assert bool((meta["second_label"] >= 0).all())
    # the first half is happy: smile there; the second half is another expression
    first = cat[:, :12, P["smile"]].amax(1)
    assert float(first.min()) > 0.3
    assert torch.equal(cat[:, 0], torch.zeros(20, sf.NUM_PARAMS))
    fast, _, meta = sf.sample_dynamics(10, 16, _gen(7), speed_change=True, return_meta=True)
    assert bool(((meta["speed"] >= 0.5) & (meta["speed"] <= 2.0)).all())
    assert not bool((meta["speed"] == 1).all())


def test_clip_dynamics_is_keyed_by_identity_and_clip() -> None:
    a, la = sf.clip_dynamics(3, [4, 4, 9], [0, 1, 0], 10)
    b, lb = sf.clip_dynamics(3, [9], [0], 10)
    assert torch.equal(a[2], b[0]) and la[2] == lb[0]
    assert not torch.equal(a[0], a[1])
    assert la.tolist() == [4 % 6, 5 % 6, 9 % 6]


def test_each_expression_has_a_distinct_apex() -> None:
    idn = sf.sample_identities(3, _gen(12))
    apex = sf.apex_vectors()
    params = torch.zeros(3, 7, sf.NUM_PARAMS)
    params[:, 1:] = apex
    frames = sf.render(idn, params, 64)
    for i in range(3):
        for a in range(7):
            for b in range(a + 1, 7):
                l1 = float((frames[i, a] - frames[i, b]).abs().mean())
                assert l1 > 0.003, (i, a, b, l1)


def test_blink_closes_the_eyes() -> None:
    idn = sf.sample_identities(4, _gen(13))
    params = _params(4, 2)
    params[:, 1, P["blink"]] = 1.0
    frames = sf.render(idn, params, 128)
    marks = sf.landmarks(idn, params, 128)
    for i in range(4):
        rows, cols = _box(marks[i, 0, [LM["left_eye"], LM["right_eye"]]], 8, 128)
        open_eye, shut = frames[i, 0, :, rows, cols], frames[i, 1, :, rows, cols]
        assert float((open_eye - shut).abs().mean()) > 0.05
        whites_open = int((open_eye.amin(0) > 0.9).sum())
        whites_shut = int((shut.amin(0) > 0.9).sum())
        assert whites_open >= 20 and whites_shut <= whites_open // 4, (whites_open, whites_shut)


# --- exact cross-identity truth ---------------------------------------------------------------

def test_cross_truth_is_identity_b_with_the_dynamics_of_a() -> None:
    ds = sf.SynthFaceClips(num_identities=30, clips_per_identity=6, T=12, size=64, seed=3,
                           split="train", cross_pairs=1.0)
    batch = ds.get_batch(list(range(12)))  # classes cycle with (identity + clip) % 6
    happy = (batch["label"] == 0).nonzero().reshape(-1)
    assert len(happy) > 0, batch["label"]
    k = int(happy[0])
    item = {key: value[k] for key, value in batch.items()}
    a, b = int(item["source_id"]), int(item["target_id"])
    assert bool(item["is_cross"]) and a != b
    idn_a, idn_b = sf.identities_for(3, [a]), sf.identities_for(3, [b])
    params = item["params"].unsqueeze(0)
    # exact: the truth IS B rendered with A's parameters, and the source is A with them
    # (equal up to float rounding: vectorised and scalar code paths may differ in the last bit)
    assert torch.allclose(item["truth"], sf.render(idn_b, params, 64)[0], atol=1e-6)
    assert torch.allclose(item["source"], sf.render(idn_a, params, 64)[0], atol=1e-6)
    assert torch.allclose(item["truth"], sf.render_pair(idn_b, params, 64)[0], atol=1e-6)
    # frame 0 of the truth is B's neutral face, which is also the target
    neutral_b = sf.render_neutral(idn_b, 64)[0]
    assert torch.allclose(item["truth"][0], neutral_b, atol=1e-6)
    assert torch.allclose(item["target"], neutral_b, atol=1e-6)
    # the mouth moves between neutral and apex in both A's clip and the truth
    apex = int(item["params"][:, P["smile"]].argmax())
    assert float(item["params"][apex, P["smile"]]) > 0.4
    for frames, idn in ((item["source"], idn_a), (item["truth"], idn_b)):
        marks = sf.landmarks(idn, params, 64)[0]
        mouth = [LM["mouth_left"], LM["mouth_right"], LM["mouth_top"], LM["mouth_bottom"]]
        rows, cols = _box(torch.cat([marks[0, mouth], marks[apex, mouth]]), 3, 64)
        change = float((frames[apex, :, rows, cols] - frames[0, :, rows, cols]).abs().mean())
        assert change > 0.05, change
    # appearance is B's: background corner and cheek colour match B's neutral, not A's
    _assert_truth_shows_b_not_a(item, idn_a, idn_b, params, apex, distinct=False)


def _assert_truth_shows_b_not_a(item: dict, idn_a, idn_b, params, apex: int, *,
                                distinct: bool = True) -> None:
    """Background and cheek of the truth are B's colours; for a ``distinct`` pair (A's skin
    and background visibly differ from B's), visibly not A's."""
    neutral_a, neutral_b = sf.render_neutral(idn_a, 64)[0], sf.render_neutral(idn_b, 64)[0]
    corner = (slice(None), slice(0, 4), slice(0, 4))
    for t in range(len(item["truth"])):
        assert torch.allclose(item["truth"][t][corner], neutral_b[corner], atol=1e-6)
    ca = neutral_a[corner].mean((1, 2))
    if distinct:
        assert float((item["truth"][apex][corner].mean((1, 2)) - ca).abs().max()) > 0.05
    mark_b = sf.landmarks(idn_b, params, 64)[0, apex]
    cheek_x = int((mark_b[LM["mouth_left"], 0] + mark_b[LM["left_eye"], 0]) / 2) - 3
    cheek_y = int(mark_b[LM["nose_tip"], 1])
    cheek = item["truth"][apex, :, cheek_y - 1:cheek_y + 2, cheek_x - 1:cheek_x + 2]
    got = cheek.mean((1, 2))
    assert float((got - idn_b.skin[0]).abs().max()) < 0.12, (got, idn_b.skin[0])
    if distinct:
        assert float((got - idn_a.skin[0]).abs().max()) > 0.08  # A's skin does not leak in


def test_cross_truth_does_not_leak_the_source_appearance() -> None:
    # a pair chosen so that A and B differ visibly (skin and background): a leak would show
    ds = sf.SynthFaceClips(num_identities=30, clips_per_identity=6, T=12, size=64, seed=3,
                           split="train", cross_pairs=1.0)
    batch = ds.get_batch(list(range(48)))
    corner = (slice(None), slice(0, 4), slice(0, 4))
    for k in range(48):
        idn_a = sf.identities_for(3, [int(batch["source_id"][k])])
        idn_b = sf.identities_for(3, [int(batch["target_id"][k])])
        bg = (sf.render_neutral(idn_a, 64)[0][corner].mean((1, 2))
              - sf.render_neutral(idn_b, 64)[0][corner].mean((1, 2))).abs().max()
        if float((idn_a.skin[0] - idn_b.skin[0]).abs().max()) > 0.15 and float(bg) > 0.05:
            break
    else:
        raise AssertionError("no cross pair with distinct skin and background in 48 clips")
    item = {key: value[k] for key, value in batch.items()}
    params = item["params"].unsqueeze(0)
    apex = int((item["params"] - item["params"][:1]).abs().sum(1).argmax())
    _assert_truth_shows_b_not_a(item, idn_a, idn_b, params, apex)


def test_head_motion_of_a_is_measurable_on_the_truth() -> None:
    """Head shift estimated from the face mask of B's truth frames matches A's shift_x."""
    idn = sf.identities_for(1, [2, 5])
    params, _ = sf.sample_dynamics(1, 9, _gen(21), classes="sad")
    params[0, :, P["shift_x"]] = torch.linspace(0.0, 0.2, 9)
    params[0, :, P["shift_y"]] = 0.0
    params[0, :, P["roll"]] = 0.0
    truth_b = sf.render(idn[1], params, 64)[0]
    source_a = sf.render(idn[0], params, 64)[0]
    for frames, who in ((truth_b, idn[1]), (source_a, idn[0])):
        # the background does not move: pixels that differ from the bare background are the
        # head, whose mask's centroid tracks the head's position
        bare = _static_layers(who, _Grid(64, 64, torch.device("cpu")))[0][0]
        rows = slice(8, 44)  # above the shoulders
        xs = torch.arange(64, dtype=torch.float32)
        centres = []
        for t in range(9):
            mask = (frames[t, :, rows] - bare[:, rows]).abs().sum(0) > 0.08
            w = mask.float().sum(0)
            centres.append(float((w * xs).sum() / w.sum()))
        moved = torch.tensor(centres) - centres[0]
        expected = params[0, :, P["shift_x"]] * 32  # image units -> pixels (half-width 32)
        assert float((moved - expected).abs().max()) < 1.0, (moved, expected)
    # the landmarks agree with the params too
    marks = sf.landmarks(idn[1], params, 64)[0]
    moved = marks[:, LM["head_center"], 0] - marks[0, LM["head_center"], 0]
    assert torch.allclose(moved, params[0, :, P["shift_x"]] * 32, atol=1e-4)


# --- the dataset ------------------------------------------------------------------------------

def test_splits_are_disjoint_and_cover_every_identity() -> None:
    n = 57
    ids = {s: set(sf.split_identities(n, s)) for s in sf.SPLITS}
    assert ids["train"].isdisjoint(ids["val"]) and ids["train"].isdisjoint(ids["test"])
    assert ids["val"].isdisjoint(ids["test"])
    assert set().union(*ids.values()) == set(range(n))
    assert len(ids["train"]) == 45 and len(ids["val"]) == 6 and len(ids["test"]) == 6
    # an identity keeps its split whatever the dataset size
    assert {sf.split_of(i) for i in ids["test"]} == {"test"}
    for split in sf.SPLITS:
        ds = sf.SynthFaceClips(n, clips_per_identity=2, T=4, size=32, seed=0, split=split)
        assert len(ds) == 2 * len(ids[split])
        batch = ds.get_batch(list(range(len(ds))))
        assert set(batch["source_id"].tolist()) == ids[split]
        assert set(batch["target_id"].tolist()) <= ids[split]
        sampled = ds.sample_batch(6, _gen(1))
        assert set(sampled["source_id"].tolist()) <= ids[split]
        assert set(sampled["target_id"].tolist()) <= ids[split]


def test_dataset_items_are_deterministic_and_well_formed() -> None:
    ds = sf.SynthFaceClips(20, clips_per_identity=3, T=6, size=32, seed=4)
    item = ds[5]
    assert item["source"].shape == (6, 3, 32, 32) and item["truth"].shape == (6, 3, 32, 32)
    assert item["target"].shape == (3, 32, 32) and item["params"].shape == (6, sf.NUM_PARAMS)
    for key in ("label", "source_id", "target_id", "is_cross", "clip", "has_truth"):
        assert item[key].dim() == 0
    again = sf.SynthFaceClips(20, clips_per_identity=3, T=6, size=32, seed=4)[5]
    for key in item:
        assert torch.equal(item[key], again[key]), key
    # batched access equals item access
    batch = ds.get_batch([5, 7])
    assert torch.allclose(batch["truth"][0], item["truth"], atol=1e-6)
    assert torch.allclose(batch["source"][1], ds[7]["source"], atol=1e-6)
    everything = ds.get_batch(list(range(len(ds))))
    cross = everything["is_cross"]
    assert bool(cross.any()) and not bool(cross.all())
    self_pairs = ~cross
    assert torch.equal(everything["truth"][self_pairs], everything["source"][self_pairs])
    assert torch.equal(everything["target"][self_pairs], everything["source"][self_pairs, 0])
    assert torch.equal(everything["target_id"][self_pairs], everything["source_id"][self_pairs])
    assert bool((everything["target_id"][cross] != everything["source_id"][cross]).all())
    assert not torch.equal(everything["truth"][cross], everything["source"][cross])
    with pytest.raises(IndexError):
        ds[len(ds)]
    # a plain DataLoader collates items into the get_batch layout
    loaded = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert loaded["source"].shape == (2, 6, 3, 32, 32) and loaded["label"].shape == (2,)
    assert torch.allclose(loaded["truth"], ds.get_batch([0, 1])["truth"], atol=1e-6)


def test_self_pairs_only_and_sample_batch() -> None:
    ds = sf.SynthFaceClips(20, clips_per_identity=2, T=5, size=32, seed=1, cross_pairs=False)
    assert not bool(ds.get_batch(list(range(len(ds))))["is_cross"].any())
    b1 = ds.sample_batch(8, _gen(3), cross_fraction=1.0)
    b2 = ds.sample_batch(8, _gen(3), cross_fraction=1.0)
    for key in b1:
        assert torch.equal(b1[key], b2[key]), key
    assert b1["source"].shape == (8, 5, 3, 32, 32) and b1["target"].shape == (8, 3, 32, 32)
    assert bool(b1["is_cross"].all()) and bool((b1["clip"] == -1).all())
    for i in range(8):
        tgt = sf.identities_for(1, [int(b1["target_id"][i])])
        truth = sf.render(tgt, b1["params"][i:i + 1], 32)[0]
        assert torch.allclose(b1["truth"][i], truth, atol=1e-6)
        assert torch.allclose(b1["target"][i], sf.render_neutral(tgt, 32)[0], atol=1e-6)
    b3 = ds.sample_batch(8, _gen(4), cross_fraction=0.0, fresh=False)
    assert not bool(b3["is_cross"].any()) and torch.equal(b3["truth"], b3["source"])
    assert bool((b3["clip"] >= 0).all())


# --- datagen and `dtgan data synth` ---------------------------------------------------------

def _parse(argv: list[str]) -> argparse.Namespace:
    from dtgan_plugin.cli.data import register as add_data_parser

    parser = argparse.ArgumentParser(prog="dtgan")
    add_data_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_data_synth_writes_a_lossless_dataset(tmp_path: Path) -> None:
    from dtgan_plugin.media import open_video, read_image

    out = tmp_path / "synth"
    args = _parse(["data", "synth", "-o", str(out), "--identities", "4", "--clips", "2",
                   "--frames", "8", "--size", "32", "--seed", "5", "--no-progress"])
    assert args.func(args) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["complete"] and index["num_clips"] == 8
    assert index["splits"] == {"train": [2, 3], "val": [1], "test": [0]}
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    assert not list(out.rglob(".*partial*"))  # no temporary leftovers
    ds = sf.SynthFaceClips(4, clips_per_identity=2, T=8, size=32, seed=5, split="train")
    for row in rows:
        meta = json.loads((out / row["meta"]).read_text())
        assert meta["identity"] == row["identity"] and meta["class"] == sf.CLASS_NAMES[row["label"]]
        assert len(meta["params"]) == 8 and meta["param_names"] == list(sf.PARAM_NAMES)
        idn = sf.Identity.from_dict(meta["identity_params"])
        expected = sf.render(idn, torch.tensor([meta["params"]]), 32)[0]
        with open_video(out / row["video"]) as reader:
            decoded = reader.get_batch(list(range(8)))
        # lossless: decoding gives the rendered frames quantised to uint8. Renders of another
        # batch size differ by ~1e-6, so a value at a rounding boundary may land on either side
        err = (decoded * 255 - expected * 255).abs()
        assert err.max() <= 0.5 + 1e-3, float(err.max())
        neutral = read_image(out / row["target"])
        assert torch.equal((neutral * 255).round(), (sf.render_neutral(idn, 32)[0] * 255).round())
        if row["split"] == "train":  # the same clip as the on-the-fly dataset's
            k = ds.ids.index(row["identity"]) * 2 + row["clip"]
            assert torch.equal(torch.tensor(meta["params"]), ds.get_batch([k])["params"][0])


def test_data_synth_resumes_and_refuses_foreign_folders(tmp_path: Path) -> None:
    from dtgan_plugin.training.datagen import SynthFolder, write_dataset

    out = tmp_path / "d"
    # (32 px: decord cannot decode FFV1 frames narrower than 32 px)
    first = write_dataset(out, identities=3, clips=1, size=32, frames=3, seed=0, progress=False)
    assert first["written"] == 3
    victim = out / "train" / "id000002" / "clip000.json"
    victim.unlink()  # as if the run had been killed before this clip finished...
    stale = victim.parent / ".clip000.partial-999999999-abcdef.mkv"  # ...leaving a temp file
    stale.write_bytes(b"half a video")
    again = write_dataset(out, identities=3, clips=1, size=32, frames=3, seed=0, progress=False)
    assert again["written"] == 1 and again["skipped"] == 2 and victim.exists()
    assert not stale.exists()
    with pytest.raises(UsageError, match="other settings"):
        write_dataset(out, identities=3, clips=1, size=32, frames=4, seed=0, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        write_dataset(foreign, identities=3, clips=1, size=16, frames=3, seed=0, progress=False)
    with pytest.raises(OptionError, match="identities"):
        write_dataset(tmp_path / "x", identities=0, clips=1, size=16, frames=3, seed=0)
    with pytest.raises(OptionError, match="fps"):
        write_dataset(tmp_path / "x", identities=1, clips=1, size=16, frames=3, seed=0, fps=-1)
    folder = SynthFolder(out, "train")
    assert len(folder) == 1
    item = folder[0]
    assert item["source"].shape == (3, 3, 32, 32) and item["params"].shape == (3, sf.NUM_PARAMS)
    assert item["identity"] == 2
    with pytest.raises(UsageError, match="index.json"):
        SynthFolder(tmp_path / "nothing")


def test_data_synth_cli_validates_arguments(tmp_path: Path) -> None:
    args = _parse(["data", "synth", "-o", str(tmp_path / "o"), "--identities", "2",
                   "--size", "4", "--no-progress"])
    with pytest.raises(OptionError, match="size"):
        args.func(args)
    args = _parse(["data", "synth", "-o", str(tmp_path / "o"), "--frames", "0",
                   "--no-progress"])
    with pytest.raises(OptionError, match="frames"):
        args.func(args)


# --------------------------------------------------------------------------------------------
# 68-point landmarks (iBUG 300-W layout)
# --------------------------------------------------------------------------------------------

G68 = sf.LANDMARK68_GROUPS


def _plain(n: int, seed: int) -> sf.Identity:
    """Random identities without glasses or hats, which would cover eyes and brows."""
    idn = sf.sample_identities(n, _gen(seed))
    idn.glasses.zero_()
    idn.hat.zero_()
    return idn


def _recoloured(idn: sf.Identity, params: torch.Tensor, size: int, field: str) -> torch.Tensor:
    """How much of each pixel shows colour ``field``: red channel of a render with the field
    pure red minus one with it black, ``(N, T, H, W)`` (scaled by how the field is shaded)."""
    hot, cold = idn[torch.arange(len(idn))], idn[torch.arange(len(idn))]
    setattr(hot, field, torch.tensor([[1.0, 0.0, 0.0]]).expand(len(idn), 3).clone())
    setattr(cold, field, torch.zeros(len(idn), 3))
    return (sf.render(hot, params, size) - sf.render(cold, params, size))[:, :, 0]


def _at(img: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Nearest-pixel values of ``img`` (H, W) at points ``(K, 2)`` (x, y)."""
    h, w = img.shape
    x = pts[:, 0].round().long().clamp(0, w - 1)
    y = pts[:, 1].round().long().clamp(0, h - 1)
    return img[y, x]


def _random_frames(n: int, t: int, seed: int) -> tuple[sf.Identity, torch.Tensor]:
    idn = _plain(n, seed)
    params, _ = sf.sample_dynamics(n, t, _gen(seed + 1), speed_change=0.5)
    return idn, params


def test_landmarks68_layout_and_symmetry() -> None:
    idn = _plain(3, 60)
    pts = sf.landmarks68(idn, sf.neutral_params(3, 2), 64)
    assert pts.shape == (3, 2, 68, 2) and pts.dtype == torch.float32
    assert sorted(i for r in G68.values() for i in r) == list(range(68))
    p = pts[0, 0]
    x, y = p[:, 0], p[:, 1]
    # 300-W order, image left to right: outer/inner corners of both eyes, mouth corners
    assert x[36] < x[39] < x[42] < x[45] and x[48] < x[60] < x[64] < x[54]
    assert x[0] < x[8] < x[16] and y[8] == y[:17].max()  # the chin is the lowest jaw point
    assert y[37] < y[41] and y[44] < y[46] and y[51] < y[62] <= y[66] < y[57]
    assert y[27] < y[30] and x[31] < x[33] < x[35]
    # a face at rest is mirror-symmetric about the head's centre column
    mirror = ([16 - i for i in range(17)] + [26 - i for i in range(10)] + list(range(27, 31))
              + [35 - i for i in range(5)] + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
              + [54 - i for i in range(7)] + [59 - i for i in range(5)]
              + [64 - i for i in range(5)] + [67, 66, 65])
    centre = sf.landmarks(idn, sf.neutral_params(3, 1), 64)[0, 0, LM["head_center"], 0]
    assert torch.allclose(x + x[mirror], 2 * centre.expand(68), atol=1e-4)
    assert torch.allclose(y, y[mirror], atol=1e-4)


def test_landmarks68_lie_on_the_drawn_features() -> None:
    size = 128
    idn, params = _random_frames(4, 5, 61)
    pts = sf.landmarks68(idn, params, size)
    centre = sf.landmarks(idn, params, size)[:, :, LM["head_center"]]
    skin = _recoloured(idn, params, size, "skin")
    lips = _recoloured(idn, params, size, "lip_colour") > 0.5  # the drawn lips' pixels
    brows = _recoloured(idn, params, size, "hair")
    for i in range(4):
        for t in range(5):
            p = pts[i, t]
            # jaw: on the face's outline (sides only: the neck and ears are skin too); just
            # inside it the face shows, just outside it does not
            side = torch.tensor([2, 3, 4, 5, 11, 12, 13, 14])
            out = p[side] - centre[i, t]
            out = out / out.norm(dim=1, keepdim=True)
            assert (_at(skin[i, t], p[side] - 1.5 * out) > 0.6).all(), (i, t)
            assert (_at(skin[i, t], p[side] + 1.5 * out) < 0.25).all(), (i, t)
            # eyes: every point within a pixel of the eye (white or lid line: no skin shows)
            eyes = p[36:48]
            near = torch.stack([_at(skin[i, t], eyes + torch.tensor([dx, dy]))
                                for dx in (-1, 0, 1) for dy in (-1, 0, 1)])
            assert (near.min(0).values < 0.15).all(), (i, t)
            # brows: drawn in 0.6 x the hair colour, so they show 0.6 of the hair's change
            ratio = _at(brows[i, t], p[17:27])
            assert ((ratio > 0.3) & (ratio < 0.8)).all(), (i, t, ratio)
            # mouth: the outer-lip points' box is the drawn lips' box
            ys, xs = lips[i, t].nonzero(as_tuple=True)
            drawn = torch.stack([xs.min(), xs.max(), ys.min(), ys.max()]).float()
            q = p[48:68]
            box = torch.stack([q[:, 0].min(), q[:, 0].max(), q[:, 1].min(), q[:, 1].max()])
            assert (box - drawn).abs().max() <= 1.5, (i, t, box, drawn)
            # the inner lip lies on the drawn mouth (lips or opening): no skin shows there
            assert (_at(skin[i, t], p[60:68]) < 0.15).all(), (i, t)


def test_landmarks68_follow_the_expression_parameters() -> None:
    idn = _plain(1, 62)
    ramp = torch.linspace(0, 1, 6)

    def points(name: str, values: torch.Tensor, **fixed: float) -> torch.Tensor:
        p = _params(1, len(values), **fixed)
        p[0, :, P[name]] = values
        return sf.landmarks68(idn, p, 128)[0]

    gap = lambda q, a, b: (q[:, a] - q[:, b]).norm(dim=-1)  # noqa: E731
    mouth = points("mouth_open", ramp)
    assert gap(mouth, 62, 66)[0] < 1e-4 and (gap(mouth, 62, 66).diff() > 0).all()
    eyes = points("blink", ramp)
    for a, b in ((37, 41), (38, 40), (43, 47), (44, 46)):
        assert (gap(eyes, a, b).diff() < 0).all() and gap(eyes, a, b)[0] > 3
    assert gap(eyes, 37, 41)[-1] < 0.5  # shut
    wide = points("eye_squint", torch.tensor([0.0, -1.0]))
    assert gap(wide, 37, 41)[1] > gap(wide, 37, 41)[0]
    brows = points("brows_up", torch.linspace(-1, 1, 5))
    assert (brows[:, 17:27, 1].diff(dim=0) < 0).all()
    width = points("lip_stretch", torch.linspace(-1, 1, 5))
    assert (gap(width, 48, 54).diff() > 0).all()
    smile = points("smile", torch.tensor([0.0, 1.0]))
    assert (smile[1, [48, 54], 1] < smile[0, [48, 54], 1]).all()  # corners go up
    # nodding moves the inner features down but not the head's outline
    nod = points("nod", torch.tensor([0.0, 1.0]))
    assert torch.allclose(nod[1, :17], nod[0, :17], atol=1e-4)
    assert (nod[1, 17:, 1] > nod[0, 17:, 1] + 1).all()


def test_landmarks68_move_rigidly_with_the_head() -> None:
    idn = _plain(2, 63)
    base = _params(2, 1, smile=0.4, mouth_open=0.5, brows_knit=0.5, blink=0.3)
    rest = sf.landmarks68(idn, base, 96)[:, 0]
    centre = sf.landmarks(idn, base, 96)[:, 0, LM["head_center"]].unsqueeze(1)
    for roll in (-0.4, 0.25):
        turned = base.clone()
        turned[..., P["roll"]] = roll
        c, s = math.cos(roll), math.sin(roll)
        rot = torch.tensor([[c, -s], [s, c]])
        expected = (rest - centre) @ rot.T + centre
        assert torch.allclose(sf.landmarks68(idn, turned, 96)[:, 0], expected, atol=2e-3)
    moved = base.clone()
    moved[..., P["shift_x"]] = 0.25
    shift = sf.landmarks68(idn, moved, 96)[:, 0] - rest
    assert torch.allclose(shift[..., 0], torch.full_like(shift[..., 0], 0.25 * 48), atol=2e-3)
    assert torch.allclose(shift[..., 1], torch.zeros_like(shift[..., 1]), atol=2e-3)


def test_clip_landmarks68_match_the_rendered_clip() -> None:
    seed, frames = 5, 7
    # dtgan data synth: identity and dynamics from world `seed`, all clips of an identity
    params, _ = sf.clip_dynamics(seed, [13] * 3, [0, 1, 2], frames)
    expected = sf.landmarks68(sf.identities_for(seed, [13]), params[2:3], 80)[0]
    assert torch.equal(sf.clip_landmarks68(seed, 13, 2, frames, 80), expected)
    # dtgan eval --synth: dynamics from seed + 1000, with the spec's variants; the truth
    # frames show the target identity moving with the source's clip
    params, _ = sf.clip_dynamics(seed + 1000, [20], [1], frames, speed_change=1.0, concat=1.0)
    got = sf.clip_landmarks68(seed, 20, 1, frames, 128, dynamics_seed=seed + 1000,
                              target_index=30, speed_change=1.0, concat=1.0)
    assert torch.equal(got, sf.landmarks68(sf.identities_for(seed, [30]), params, 128)[0])
    # and the points sit on that clip's pixels: the mouth box of every frame
    idn = sf.identities_for(seed, [30])
    lips = _recoloured(idn, params, 128, "lip_colour")[0] > 0.5
    for k in range(frames):
        ys, xs = lips[k].nonzero(as_tuple=True)
        assert abs(float(got[k, 48:60, 0].min() - xs.min())) <= 1.5
        assert abs(float(got[k, 48:60, 1].max() - ys.max())) <= 1.5
    with pytest.raises(OptionError, match="identity_index"):
        sf.clip_landmarks68(seed, -1, 0, frames)
    with pytest.raises(OptionError, match="size"):
        sf.clip_landmarks68(seed, 1, 0, frames, size=2)
