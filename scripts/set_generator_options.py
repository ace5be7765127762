"""Copy a checkpoint with some ``generator_cfg`` switches changed (same weights).

How the shipped ``default`` was made from its training run's weights:

    python scripts/set_generator_options.py runs/faces128adv/model.safetensors default.safetensors \\
        motion_correction=false flow_correction=false mouth_cavity=true head_outline=true \
        body_anchors=true eyelids=true

Only switches that add or remove a computation without weights of their own may change
(``motion_correction``, ``flow_correction``, ``mouth_cavity``, ``head_outline``,
``body_anchors``, ``eyelids``, ``identity_at_rest``); anything
else would leave weights unused or missing. The copy is written atomically and keeps the
original's training metadata; its fingerprint changes with the config.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

SWITCHES = ("motion_correction", "flow_correction", "mouth_cavity", "head_outline",
            "body_anchors", "eyelids", "identity_at_rest")


def _parse(item: str) -> tuple[str, bool]:
    key, sep, value = item.partition("=")
    if not sep or key not in SWITCHES or value.lower() not in ("true", "false"):
        raise SystemExit(f"set_generator_options: expected KEY=true|false with KEY one of "
                         f"{', '.join(SWITCHES)}, got {item!r}")
    return key, value.lower() == "true"


def main() -> None:
    """Command line: source checkpoint, output path, KEY=VALUE switches."""
    from dtgan_plugin.errors import DtganError
    from dtgan_plugin.models import build_model, load_checkpoint
    from dtgan_plugin.models.checkpoint import read_checkpoint_metadata, save_checkpoint

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("output")
    ap.add_argument("switches", nargs="+", metavar="KEY=true|false")
    args = ap.parse_args()
    changes = dict(_parse(item) for item in args.switches)
    try:
        model = load_checkpoint(args.source)
        meta = read_checkpoint_metadata(args.source)
        gen = dataclasses.replace(model.config.generator_cfg, **changes)
        copy = build_model(model.config.replace(generator_cfg=gen))
        copy.load_state_dict(model.state_dict())
        save_checkpoint(args.output, copy, extra=dict(meta.get("extra", {})))
    except DtganError as err:
        sys.exit(f"set_generator_options: {err}")
    print(f"{args.output}: fingerprint {model.fingerprint()} -> {copy.fingerprint()}")


if __name__ == "__main__":
    main()
