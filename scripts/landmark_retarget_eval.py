"""How well a landmark model's encoder + motion head carry motion, in geometry alone (no pixels).

For each checkpoint (``dynamics_input = "landmarks"`` with the ``geowarp`` generator):

* **procedural, held out**: cross-identity clips of the test identities; the model moves the
  target's exact landmarks with the source's dynamics; error = mean distance to the truth's
  landmarks (the target identity under the source's parameters), in % of the interocular
  distance; ``static`` (the target's landmarks, unmoved) is the floor to beat;
* **real video** (needs the ``faces`` and ``demo`` extras): carphone driving itself and the
  astronaut, on the 128 px face crops of ``dtgan eval --real``: the moved landmarks' signals
  (mouth, eyes, brows, head) against the source's: mean correlation and amplitude ratio.

    python scripts/landmark_retarget_eval.py runs/a/model.safetensors runs/b/model.safetensors
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

from dtgan_plugin.evaluation import realvideo_metrics as RM
from dtgan_plugin.models import load_checkpoint


def synth_error(model: torch.nn.Module, clips: int = 64, frames: int = 16) -> tuple[float, float]:
    """(model, static) mean landmark error on held-out cross pairs, % of interocular."""
    from dtgan_plugin.synthfaces import SynthFaceClips

    size = model.resolution
    ds = SynthFaceClips(200, clips_per_identity=8, T=frames, size=size, seed=0, split="test",
                        cross_pairs=1.0, landmarks=True)
    b = ds.sample_batch(clips, torch.Generator().manual_seed(1234), images=False)
    with torch.no_grad():
        d = model.encoder.extract(b["source_lmk"])
        moved = model.generator.points_for(b["target_lmk"], d)
    truth = b["truth_lmk"]
    ref = b["target_lmk"]
    iod = (ref[:, 42:48].mean(1) - ref[:, 36:42].mean(1)).norm(dim=-1).view(-1, 1, 1)
    err = ((moved - truth).norm(dim=-1) / iod).mean()
    still = ((ref[:, None] - truth).norm(dim=-1) / iod).mean()
    return 100 * float(err), 100 * float(still)


def real_signals(model: torch.nn.Module, pairs: list) -> tuple[float, float]:
    """Mean correlation and amplitude of the moved landmarks' signals against the source's."""
    corr, amp = [], []
    for prep in pairs:
        src = torch.as_tensor(prep.source_pts, dtype=torch.float32)[None]
        tgt = torch.as_tensor(prep.target_pts, dtype=torch.float32)[None]
        with torch.no_grad():
            pts = model.generator.points_for(tgt, model.encoder.extract(src))[0].numpy()
        agree = RM.signal_agreement(RM.landmark_signals(prep.source_pts),
                                    RM.landmark_signals(pts), RM.MOVES_STD)
        summary = RM.summarise_agreement(agree)
        corr.append(summary["corr_mean"])
        amp.append(summary["amplitude_mean"])
    return float(np.mean(corr)), float(np.mean(amp))


def real_pairs() -> list:
    """carphone → self and → astronaut, cropped and landmarked as ``dtgan eval --real`` does."""
    import tempfile

    from dtgan_plugin.demo import real_demo_media
    from dtgan_plugin.evaluation.realvideo import RealPair, prepare_pair
    from dtgan_plugin.faces.registry import get_landmarker

    media = real_demo_media(Path(tempfile.mkdtemp()))
    if isinstance(media, str):
        raise SystemExit(f"real video: {media}")
    carphone, astronaut = media
    lm = get_landmarker("mediapipe")
    return [prepare_pair(RealPair(carphone, None, "self"), lm),
            prepare_pair(RealPair(carphone, astronaut, "astronaut"), lm)]


def main() -> None:
    """Command line: checkpoints to compare."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="landmark-model .safetensors files")
    ap.add_argument("--no-real", action="store_true", help="skip the real-video part")
    args = ap.parse_args()
    pairs = [] if args.no_real or importlib.util.find_spec("mediapipe") is None else real_pairs()
    print("| checkpoint | encoding | held-out error, % iod (static) | real corr | real amp |")
    print("|---|---|---:|---:|---:|")
    for path in args.checkpoints:
        model = load_checkpoint(path).eval()
        if not model.config.uses_landmarks or not hasattr(model.generator, "points_for"):
            print(f"{path}: not a landmark geowarp model", file=sys.stderr)
            continue
        err, still = synth_error(model)
        corr, amp = real_signals(model, pairs) if pairs else (float("nan"), float("nan"))
        print(f"| {path} | {model.config.encoder.landmark_encoding} | {err:.2f} ({still:.2f}) "
              f"| {corr:.3f} | {amp:.2f} |")


if __name__ == "__main__":
    main()
