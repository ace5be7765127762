"""Registers ``dtgan eval`` through the same hook a third-party plugin would use."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from ..hooks.hookspecs import hookimpl

_EPILOG = """\
examples:
  dtgan eval --checkpoint runs/default/model.safetensors --synth -o eval/default
  dtgan eval --checkpoint dtgan=runs/default/model.safetensors \\
             --checkpoint raw=runs/raw/model.safetensors --checkpoint noDT=runs/noDT/model.safetensors \\
             --synth identities=200:clips=8:frames=16 --clips 128 -o eval/ablations
  dtgan eval --checkpoint default --data my_videos/ --protocols P1,P5 -o eval/mine

--synth renders the test-split identities (every 10th index) of the synthfaces world --seed
with held-out dynamics from world seed+1000; neither is ever used in training. Add split=val to
--synth to score the validation identities instead, for choosing between checkpoints without
looking at the test set. --data takes a
folder written by 'dtgan data synth' (its test/ split) or a folder of your own videos (then only
P1 and P5 apply). Writes REPORT_DIR/report.json, report.md and examples/*.png|gif.
"""


def _split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


def _command_line(args: argparse.Namespace, synth: str | None) -> str:
    """The equivalent ``dtgan eval`` command, for the report (rebuilt from the parsed options,
    so it is right whether the command came from a shell or from a host's ``main([...])``)."""
    parts = ["dtgan", "eval"]
    for ck in args.checkpoint or []:
        parts += ["--checkpoint", ck]
    if args.data is not None:
        parts += ["--data", args.data, "--frames", str(args.frames)]
    else:
        parts += ["--synth", synth or "identities=200:clips=8:frames=16"]
    parts += ["-o", str(args.output), "--seed", str(args.seed), "--protocols", args.protocols,
              "--baselines", args.baselines]
    if args.clips is not None:
        parts += ["--clips", str(args.clips)]
    if args.probe:
        parts += ["--probe", args.probe]
    if args.paired_with:
        parts += ["--paired-with", args.paired_with]
    return " ".join(shlex.quote(p) for p in parts)


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the evaluation protocols and write the report."""
    from ..errors import UsageError
    from .protocols import run_evaluation

    checkpoints = list(args.checkpoint or [])
    baselines = _split_list(args.baselines)
    if not checkpoints and not baselines:
        raise UsageError("nothing to evaluate: pass --checkpoint (repeatable) or --baselines")
    synth = None
    if args.data is None:
        synth = args.synth if args.synth is not None else ""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    command = _command_line(args, synth)

    def log(msg: str) -> None:
        print(f"dtgan eval: {msg}", file=sys.stderr)

    report = run_evaluation(checkpoints, args.output, data=args.data, synth=synth,
                            clips=args.clips, seed=args.seed, device=args.device,
                            protocols=args.protocols, baselines=baselines,
                            batch_size=args.batch_size, frames=args.frames,
                            examples=args.examples, probe_path=args.probe,
                            progress=bool(getattr(args, "progress", True)), command=command,
                            log=log, paired_with=args.paired_with)
    from .report import format_table

    print(format_table(report), end="")
    for note in report.get("notes", []):
        log(f"note: {note}")
    total = report["timing"].get("total_seconds", 0.0)
    log(f"{report['clips']} clips in {total:.1f} s; report written to {args.output}/report.md")
    return 0


@hookimpl
def dtgan_register_commands(subparsers: Any) -> None:
    """Add ``eval``."""
    p = subparsers.add_parser(
        "eval", help="evaluate checkpoints against baselines (protocols P1-P5)",
        description="Evaluate one or more checkpoints and the static and flow-warp baselines on "
                    "held-out identities and dynamics: P1 self-reconstruction, P2 cross-identity "
                    "with exact ground truth, P3 motion fidelity, P4 appearance leakage, P5 "
                    "temporal consistency.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", "-c", action="append", metavar="[NAME=]PATH",
                   help="a checkpoint (.safetensors path or registered name); repeat to compare "
                        "several (NAME=PATH names the row)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--synth", nargs="?", const="", metavar="OPTIONS",
                     help="procedural held-out data (default when --data is not given): "
                          "identities=200:clips=8:frames=16:size=<model resolution>; clips are "
                          "per test identity; add speed=P / concat=P for speed-changed and "
                          "concatenated-expression sources with probability P")
    src.add_argument("--data", metavar="DIR",
                     help="a 'dtgan data synth' folder or a folder of your own videos")
    p.add_argument("-o", "--output", required=True, metavar="REPORT_DIR",
                   help="folder for report.json, report.md and examples/")
    p.add_argument("--clips", type=int, default=None, metavar="N",
                   help="evaluate at most N clips (default: all the data has)")
    p.add_argument("--seed", type=int, default=0,
                   help="synthfaces world seed (identities; dynamics use seed+1000) and pairing "
                        "seed (default 0, the training default)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    p.add_argument("--protocols", default="P1,P2,P3,P4,P5", metavar="P1,P2,...",
                   help="which protocols to run (default all)")
    p.add_argument("--baselines", default="static,flow-warp", metavar="LIST",
                   help="baselines in the table: static, flow-warp, copy-source, or none "
                        "(default static,flow-warp)")
    p.add_argument("--frames", type=int, default=16,
                   help="frames read from the start of each video of a --data video folder "
                        "(default 16)")
    p.add_argument("--batch-size", type=int, default=16, help="clips per batch (default 16)")
    p.add_argument("--examples", type=int, default=4,
                   help="example pairs drawn in the pictures (default 4, 0 for none)")
    p.add_argument("--probe", metavar="PATH",
                   help="motion probe weights (default: the shipped "
                        "dtgan_plugin/assets/motion_probe.safetensors)")
    p.add_argument("--paired-with", default="", metavar="NAME",
                   help="compare every other method with this one clip by clip (mean "
                        "difference and its 95 %% interval, in report.md); default: the first "
                        "--checkpoint; 'none' to leave it out")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=cmd_eval)
