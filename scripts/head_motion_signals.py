"""The README's ``--head`` table: per-signal agreement on real-video pairs at several ``head``.

Each pair is prepared as ``dtgan eval --real`` prepares it (the same face crops and
landmarks), the default model renders it through :class:`~dtgan_plugin.api.Transferer` with
``head=H``, and the output is scored by the protocol's own :func:`score_output`. Printed: the
mean over the pairs of each signal's correlation and amplitude.

    python scripts/make_real_clips.py /tmp/clips       # prints the --real pairs
    python scripts/head_motion_signals.py --heads 1,0.5,0 --real SRC:TGT --real ...

Needs the faces and test extras (MediaPipe, scikit-video, scikit-image).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from dtgan_plugin.api import Transferer
from dtgan_plugin.errors import DtganError
from dtgan_plugin.evaluation.realvideo import parse_real_pair, prepare_pair, score_output
from dtgan_plugin.evaluation.realvideo_metrics import SIGNALS
from dtgan_plugin.faces.registry import get_landmarker


def _render(prep, checkpoint: str, head: float) -> torch.Tensor:
    """The model's output on a prepared pair, at the crops' size, with ``head``."""
    tr = Transferer(prep.target, checkpoint, size=int(prep.source.shape[-1]),
                    target_landmarks=prep.target_pts, head=head)
    outs = [tr.push(prep.source, prep.source_pts), tr.flush()]
    return torch.cat([o for o in outs if o.shape[0]]).float().clamp(0, 1)


def main() -> None:
    """Command line: pairs, heads, checkpoint."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", action="append", required=True, metavar="SRC:TGT",
                    help="a pair as dtgan eval --real takes it (repeat)")
    ap.add_argument("--heads", default="1,0.5,0", help="comma-separated head values")
    ap.add_argument("--checkpoint", default="default")
    args = ap.parse_args()
    try:
        heads = [float(v) for v in args.heads.split(",")]
    except ValueError:
        ap.error(f"--heads takes comma-separated numbers, got {args.heads!r}")
    torch.set_num_threads(2)
    try:
        landmarker = get_landmarker("mediapipe")
        preps = [prepare_pair(parse_real_pair(text), landmarker) for text in args.real]
        print("| head | " + " | ".join(SIGNALS) + " |")
        print("|---" * (len(SIGNALS) + 1) + "|")
        for head in heads:
            rows = [score_output(p, _render(p, args.checkpoint, head), landmarker)["signals"]
                    for p in preps]
            cells = [f"{np.mean([r[s]['corr'] for r in rows]):.3f} / "
                     f"{np.mean([r[s]['amplitude'] for r in rows]):.2f}" for s in SIGNALS]
            print(f"| {head:g} | " + " | ".join(cells) + " |", flush=True)
    except DtganError as err:
        ap.exit(err.exit_code, f"{ap.prog}: error: {err}\n")


if __name__ == "__main__":
    sys.exit(main())
