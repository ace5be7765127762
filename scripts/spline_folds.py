"""Where the ``geowarp`` spline folds over on real-video pairs: folded pixels per pair.

A backward warp folds where the Jacobian determinant of where each output pixel samples the
target is not positive: the picture shows a bubble or a mirrored patch there (a cheek that
turns inside out when a large head move pushes the face towards the crop's side). Each pair is
prepared as ``dtgan eval --real`` prepares it (the same 128 px face crops and landmarks), each
checkpoint renders it through the protocol's own model method, and the spline's flow
(``GeoWarpGenerator.dense_flow``, before the mouth's interior and the learned corrections) is
checked frame by frame. Printed per pair and checkpoint: frames with a fold, the most folded
pixels in one frame, and the smallest determinant.

    python scripts/make_real_clips.py /tmp/clips       # prints the --real pairs
    python scripts/spline_folds.py -c default -c still=still.safetensors --real SRC:TGT ...

Needs the faces and test extras (MediaPipe, scikit-video, scikit-image).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from typing import Iterator

import torch

from dtgan_plugin.errors import DtganError
from dtgan_plugin.evaluation.realvideo import TransferMethod, parse_real_pair, prepare_pair
from dtgan_plugin.faces.registry import get_landmarker
from dtgan_plugin.models.geowarp import GeoWarpGenerator, flow_folds


@contextmanager
def recorded_flows() -> Iterator[list[torch.Tensor]]:
    """Every flow ``GeoWarpGenerator.dense_flow`` returns while inside."""
    seen: list[torch.Tensor] = []
    original = GeoWarpGenerator.dense_flow

    def recording(self: GeoWarpGenerator, points: torch.Tensor, moved: torch.Tensor
                  ) -> torch.Tensor:
        flow = original(self, points, moved)
        seen.append(flow.detach().float().cpu())
        return flow

    GeoWarpGenerator.dense_flow = recording  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        GeoWarpGenerator.dense_flow = original  # type: ignore[method-assign]


def main() -> None:
    """Command line: pairs and checkpoints."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", action="append", required=True, metavar="SRC:TGT",
                    help="a pair as dtgan eval --real takes it (repeat)")
    ap.add_argument("-c", "--checkpoint", action="append", metavar="[NAME=]CHECKPOINT",
                    help="a geowarp checkpoint (repeat; default: default)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    specs = args.checkpoint or ["default"]
    try:
        landmarker = get_landmarker("mediapipe")
        preps = [prepare_pair(parse_real_pair(text), landmarker) for text in args.real]
        print("| pair | checkpoint | frames with a fold | most folded pixels | smallest det |")
        print("|---|---|---:|---:|---:|")
        for spec in specs:
            name, _, path = spec.rpartition("=")
            method = TransferMethod(name or path, path)
            for p in preps:
                with recorded_flows() as seen:
                    method(p.source, p.target, p.source_pts, p.target_pts)
                if not seen:
                    ap.exit(2, f"{ap.prog}: error: {spec} is not a geowarp checkpoint "
                               "(its generator has no spline); name a landmark model\n")
                count, low = flow_folds(torch.cat(seen))
                print(f"| {p.name} | {method.name} | {int((count > 0).sum())} of {len(count)} "
                      f"| {int(count.max())} | {float(low.min()):.2f} |", flush=True)
    except DtganError as err:
        ap.exit(err.exit_code, f"{ap.prog}: error: {err}\n")


if __name__ == "__main__":
    sys.exit(main())
