"""``dtgan train`` and ``dtgan average``: run a training config, average checkpoints."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def cmd_train(args: argparse.Namespace) -> int:
    """Run (or resume) a training run from a TOML config."""
    from ..training.config import load_config
    from ..training.trainer import train

    cfg = load_config(args.config, args.set)
    if args.out_dir:
        cfg.run.out_dir = args.out_dir
    summary = train(cfg, resume=args.resume, progress=args.progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "last"}, indent=2))
        print(f"checkpoint: {summary['out_dir']}/model.safetensors", file=sys.stderr)
    return 0


def cmd_average(args: argparse.Namespace) -> int:
    """Average the weights of several checkpoints of one run into a new checkpoint."""
    from ..training.averaging import average_checkpoints

    summary = average_checkpoints(args.checkpoints, args.output)
    print(json.dumps(summary, indent=2))
    return 0


def register(subparsers: Any) -> None:
    """Add ``train`` and ``average``."""
    from ..training.config import builtin_configs

    p = subparsers.add_parser("train", help="train a model from a TOML config",
                              description="Train a Dynamics Transfer GAN. CONFIG is a TOML file "
                                          f"or a built-in name ({', '.join(builtin_configs())}). "
                                          "Works under torchrun for DDP.")
    p.add_argument("config", help="TOML file or built-in config name")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT_DIR/train_state.safetensors")
    p.add_argument("--out-dir", help="override run.out_dir")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set optim.steps=500")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("average", help="average several checkpoints of one run (SWA)",
                              description="Write the mean of the weights of several checkpoints "
                                          "of one training run (e.g. those kept with "
                                          "run.keep_checkpoints = true) as a new checkpoint.")
    p.add_argument("checkpoints", nargs="+", help="checkpoints of one run (2 or more)")
    p.add_argument("-o", "--output", required=True, help="the averaged checkpoint to write")
    p.set_defaults(func=cmd_average)
