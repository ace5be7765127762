"""``dtgan eval``: score checkpoints and baselines with the evaluation protocols P1-P5.

:func:`~dtgan_plugin.evaluation.protocols.run_evaluation` names its parameters in its errors;
:data:`EVAL_RULES` makes those errors name this command's flags instead.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError
from . import options
from .reword import Rule, speaking_flags

#: run_evaluation's parameter names, as its messages use them -> this command's flags
EVAL_RULES: list[Rule] = [
    (r"(?<![-\w])(?<!data )synth\b", "--synth"),  # not the command 'dtgan data synth'
    (r"(?<![-\w])data folder", "--data folder"),
    (r"^data must be a folder", "--data must be a folder"),
    (r"^batch_size must", "--batch-size must"),
    (r"^(frames|examples|clips) must", r"--\1 must"),
    (r"^empty checkpoint", "empty --checkpoint"),
    (r"^checkpoint '", "--checkpoint '"),
    (r"name a checkpoint \(NAME=PATH\)", "name a --checkpoint (NAME=PATH)"),
    (r"^paired reference '", "--paired-with '"),
    (r"^pass e\.g\. (P\d)", r"pass e.g. --protocols \1"),
    (r"^the output folder (.+) is a file", r"-o \1 is a file"),
    (r"pass a checkpoint or a baseline", "pass --checkpoint or --baselines"),
    (r"pass exactly one of data \(a folder\) and synth \(a spec string\)",
     "pass exactly one of --data DIR and --synth OPTIONS"),
]


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
              "--baselines", args.baselines or "static,flow-warp"]
    if args.clips is not None:
        parts += ["--clips", str(args.clips)]
    if args.probe:
        parts += ["--probe", args.probe]
    if args.paired_with:
        parts += ["--paired-with", args.paired_with]
    return " ".join(shlex.quote(p) for p in parts)


def cmd_eval_real(args: argparse.Namespace) -> int:
    """The real-video protocol: landmark motion fidelity, identity, liveliness, self pairs."""
    from ..evaluation.realvideo import (DEFAULT_FRAMES, DEFAULT_SIZE, REAL_BASELINES,
                                       run_realvideo_evaluation)

    baselines = list(REAL_BASELINES) if args.baselines is None else _split_list(args.baselines)
    methods = [*(args.checkpoint or []), *baselines]
    if not methods:
        raise UsageError("nothing to evaluate: pass --checkpoint (repeatable) or --baselines")

    def log(msg: str) -> None:
        print(f"dtgan eval: {msg}", file=sys.stderr)

    rules = [*EVAL_RULES, (r"^size must", "--size must"), (r"^face must", "--face must"),
             (r"^frames must", "--frames must"), (r"^no pair to evaluate", "no --real pair")]
    with speaking_flags(rules):
        run_realvideo_evaluation(args.real, methods, args.landmarker, args.output,
                                 size=args.size or DEFAULT_SIZE, face=args.face,
                                 examples=args.examples,
                                 frames=args.frames if args.frames is not None else DEFAULT_FRAMES,
                                 device=args.device, log=log,
                                 command=" ".join(shlex.quote(a) for a in sys.argv))
    print((Path(args.output) / "report.md").read_text(), end="")
    log(f"report written to {args.output}/report.md")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the evaluation protocols and write the report."""
    from ..evaluation.protocols import run_evaluation

    if args.real:
        return cmd_eval_real(args)
    if args.size is not None or args.face or args.landmarker != "mediapipe":
        raise UsageError("--size, --face and --landmarker apply to --real")
    checkpoints = list(args.checkpoint or [])
    baselines = _split_list(args.baselines if args.baselines is not None else "static,flow-warp")
    if not checkpoints and not baselines:
        raise UsageError("nothing to evaluate: pass --checkpoint (repeatable) or --baselines")
    synth = None
    if args.data is None:
        synth = args.synth if args.synth is not None else ""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    args.frames = 16 if args.frames is None else args.frames
    command = _command_line(args, synth)

    def log(msg: str) -> None:
        print(f"dtgan eval: {msg}", file=sys.stderr)

    with speaking_flags(EVAL_RULES):
        report = run_evaluation(checkpoints, args.output, data=args.data, synth=synth,
                                clips=args.clips, seed=args.seed, device=args.device,
                                protocols=args.protocols, baselines=baselines,
                                batch_size=args.batch_size, frames=args.frames,
                                examples=args.examples, probe_path=args.probe,
                                progress=bool(getattr(args, "progress", True)),
                                command=command, log=log, paired_with=args.paired_with)
    from ..evaluation.report import format_table

    print(format_table(report), end="")
    for note in report.get("notes", []):
        log(f"note: {note}")
    total = report["timing"].get("total_seconds", 0.0)
    log(f"{report['clips']} clips in {total:.1f} s; report written to {args.output}/report.md")
    return 0


def register(subparsers: Any) -> None:
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
    src.add_argument("--real", action="append", metavar="SRC[:TGT|:self]",
                     help="the real-video protocol on a source video and a target photo "
                          "(':self' or none: the source's first frame), repeatable; needs the "
                          "faces extra")
    p.add_argument("--landmarker", default="mediapipe", metavar="NAME",
                   help="--real: the face landmarker (default mediapipe)")
    p.add_argument("--size", type=options.int_at_least(16), default=None, metavar="PX",
                   help="--real: face crop size (default 128)")
    p.add_argument("--face", type=options.nonneg_int, default=0, metavar="N",
                   help="--real: the N-th largest face (default 0)")
    p.add_argument("-o", "--output", required=True, metavar="REPORT_DIR",
                   help="folder for report.json, report.md and examples/")
    p.add_argument("--clips", type=options.positive_int, default=None, metavar="N",
                   help="evaluate at most N clips (default: all the data has)")
    p.add_argument("--seed", type=options.whole_number, default=0,
                   help="synthfaces world seed (identities; dynamics use seed+1000) and pairing "
                        "seed (default 0, the training default)")
    options.add_device_flag(p)
    p.add_argument("--protocols", default="P1,P2,P3,P4,P5", metavar="P1,P2,...",
                   help="which protocols to run (default all)")
    p.add_argument("--baselines", default=None, metavar="LIST",
                   help="baselines in the table: static, flow-warp, copy-source, or none "
                        "(default static,flow-warp); with --real also flow-warp-aligned and "
                        "landmark-warp (default: all four)")
    p.add_argument("--frames", type=options.int_at_least(2), default=None,
                   help="frames read from the start of each video of a --data video folder "
                        "(default 16) or of a --real source (default 96)")
    p.add_argument("--batch-size", type=options.positive_int, default=16, help="clips per batch (default 16)")
    p.add_argument("--examples", type=options.nonneg_int, default=4,
                   help="example pairs drawn in the pictures (default 4, 0 for none)")
    p.add_argument("--probe", metavar="PATH",
                   help="motion probe weights (default: the shipped "
                        "dtgan_plugin/assets/motion_probe.safetensors)")
    p.add_argument("--paired-with", default="", metavar="NAME",
                   help="compare every other method with this one clip by clip (mean "
                        "difference and its 95 %% interval, in report.md); default: the first "
                        "--checkpoint; 'none' to leave it out")
    p.add_argument("--threads", type=options.positive_int, default=None, help="torch CPU threads")
    p.set_defaults(func=cmd_eval)
