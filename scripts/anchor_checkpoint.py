"""Turn on ``generator_cfg.identity_at_rest`` for a checkpoint trained without it.

The weights are kept as they are; only the model configuration changes, so the generator
renders the target itself at zero dynamics from then on (README, "Design notes"). This is how
the shipped default's last stage started from the previous default:

    python scripts/anchor_checkpoint.py old.safetensors anchored.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses

from dtgan_plugin.models import build_model
from dtgan_plugin.models.checkpoint import load_checkpoint, save_checkpoint


def anchor(src: str, dest: str) -> str:
    """Write ``src``'s weights under a config with identity_at_rest on; returns the fingerprint."""
    old = load_checkpoint(src)
    cfg = old.config
    new = build_model(cfg.replace(generator_cfg=dataclasses.replace(cfg.generator_cfg,
                                                                    identity_at_rest=True)))
    new.load_state_dict(old.state_dict())
    save_checkpoint(dest, new, extra={"anchored_from": src})
    return new.fingerprint()


def main() -> None:
    """Command line: SRC DEST."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="a checkpoint trained without identity_at_rest")
    ap.add_argument("dest", help="where to write the anchored checkpoint")
    args = ap.parse_args()
    print(anchor(args.src, args.dest))


if __name__ == "__main__":
    main()
