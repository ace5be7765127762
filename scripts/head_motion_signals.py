"""The README's ``--head`` table: per-signal agreement on real-video pairs at several ``head``.

Each pair is prepared as ``dtgan eval --real`` prepares it (the same face crops and
landmarks), the protocol's own model method (:class:`TransferMethod`, with ``head=H``) renders
it, and its :func:`score_output` scores it. Printed: the
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

from dtgan_plugin.errors import DtganError
from dtgan_plugin.evaluation.realvideo import (TransferMethod, parse_real_pair, prepare_pair,
                                               score_output)
from dtgan_plugin.evaluation.realvideo_metrics import SIGNALS
from dtgan_plugin.faces.registry import get_landmarker


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
            method = TransferMethod(f"head {head:g}", args.checkpoint, head=head)
            rows = [score_output(p, method(p.source, p.target, p.source_pts, p.target_pts),
                                 landmarker)["signals"] for p in preps]
            cells = [f"{np.mean([r[s]['corr'] for r in rows]):.3f} / "
                     f"{np.mean([r[s]['amplitude'] for r in rows]):.2f}" for s in SIGNALS]
            print(f"| {head:g} | " + " | ".join(cells) + " |", flush=True)
    except DtganError as err:
        ap.exit(err.exit_code, f"{ap.prog}: error: {err}\n")


if __name__ == "__main__":
    sys.exit(main())
