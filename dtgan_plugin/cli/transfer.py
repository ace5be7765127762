"""``dtgan transfer`` and ``dtgan dynamics``: thin wrappers over the API that speak their flags."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..dynfile import DYN_SUFFIX as DYNAMICS_SUFFIX
from ..errors import UsageError
from . import options
from .reword import Rule, speaking_flags

#: how errors from the graph ``transfer`` builds (inputs [src]/[tgt], output 'out') and from
#: the writer (audio_from=, codec=) translate into this command's flags
TRANSFER_RULES: list[Rule] = [
    (r"'dtgan\.transfer' input 'target' takes image but gets video from input \[tgt\]",
     "-t/--target must be an image, not a video"),
    (r"'dtgan\.dynamics' input 'source' takes video but gets image from input \[src\]",
     "-s/--source must be a video, not an image"),
    (r"connect a stream of the right kind \(see 'dtgan inspect [\w.]+'\)", ""),
    (r"(from )?input \[tgt\]", "-t/--target"),
    (r"(from )?input \[src\]", "-s/--source"),
    (r"\[tgt\]", "-t/--target"),
    (r"\[src\]", "-s/--source"),
    (r"output 'out' \((.+?)\)", r"-o/--output \1"),
    (r"output 'out'", "-o/--output"),
    (r"but audio_from was given", "but --keep-audio was given"),
    (r"drop audio_from", "drop --keep-audio"),
    (r"check the audio_from path", "check the -s/--source path"),
    (r"audio_from", "--keep-audio"),
    (r"or codec=auto", "or --codec auto"),
    (r"pass codec=", "pass --codec"),
    (r"codec=(\w+)", r"--codec \1"),
    (r"pass alpha='(\w+)' \(--alpha \w+\)", r"pass --alpha \1"),
    (r"alpha='(\w+)'", r"--alpha \1"),
    (r", or use write_image for a single frame", ""),
    (r"^size sets the output", "--size sets the output"),
    (r"^leave size out, or turn paste-back off$", "leave --size out, or add --no-paste-back"),
    (r"^crop must be one of", "--crop must be one of"),
    (r"^dtgan\.transfer: head=(\S+) needs", r"--head \1 needs"),
    (r"^leave head at 1, or use --checkpoint", "leave --head at 1, or use --checkpoint"),
]


def _warn(kind: str, text: str) -> None:
    print(f"dtgan: {kind}: {text}", file=sys.stderr)


def _audio_notice(args: argparse.Namespace) -> None:
    """Say so when --keep-audio cannot keep anything: no source, stdin, or a silent source."""
    if not args.keep_audio:
        return
    if args.source is None:
        _warn("warning", "--keep-audio: no -s/--source to take audio from; the output has none")
    elif args.source == "-":
        _warn("warning", "--keep-audio: a source on stdin carries no audio; the output has none")
    elif os.path.isfile(args.source):
        from ..media.ffmpeg_bin import probe_file

        if not probe_file(args.source).audio_codecs:
            _warn("warning", f"--keep-audio: {args.source} has no audio track; the output has "
                             "none")


def _size_notice(args: argparse.Namespace) -> None:
    """An odd --size written as 4:2:0 h264 is padded to the next even number: say so."""
    if args.size is None or args.size % 2 == 0:
        return
    from ..errors import DtganError
    from ..media.writer import resolve_codec

    try:
        codec = resolve_codec(args.output, args.codec)
    except DtganError:
        return  # the run reports the bad codec in its own words
    if codec == "h264":
        even = args.size + 1
        _warn("note", f"--size {args.size} is odd; the h264 output is padded to {even}x{even} "
                      "(4:2:0 video needs even sizes)")


def _check_transfer_args(args: argparse.Namespace) -> None:
    if args.source is None and args.dynamics is None:
        raise UsageError("give a source video with -s/--source or a dynamics file with "
                         "--dynamics")
    if args.source is not None and args.dynamics is not None and not args.keep_audio:
        raise UsageError("-s/--source with --dynamics only makes sense with --keep-audio "
                         "(the dynamics drive the target; the source lends its audio)")
    options.check_output_path(args.output, "-o/--output")


def cmd_transfer(args: argparse.Namespace) -> int:
    """Make the target image move like the source video (or a dynamics file)."""
    from ..api import transfer

    _check_transfer_args(args)
    _audio_notice(args)
    _size_notice(args)
    with speaking_flags(TRANSFER_RULES):
        stats = transfer(args.source, args.target, args.output, checkpoint=args.checkpoint,
                         device=args.device, reference_frame=args.reference_frame,
                         amplify=args.amplify, size=args.size, fit=args.fit,
                         keep_audio=args.keep_audio, dynamics=args.dynamics, codec=args.codec,
                         crf=args.crf, smooth=args.smooth, progress=args.progress,
                         chunk_size=args.chunk_size, alpha=args.alpha, crop=args.crop,
                         face=args.face, paste_back=args.paste_back,
                         landmarker=args.landmarker, backend=args.backend,
                         detail=args.detail, head=args.head)
    if stats.crop_note:
        print(f"dtgan: note: {stats.crop_note}", file=sys.stderr)
    if args.output != "-":
        print(f"wrote {args.output} ({stats.frames} frames, {stats.fps:.1f} frames/s)",
              file=sys.stderr)
    return 0


def cmd_dynamics(args: argparse.Namespace) -> int:
    """Extract dynamics once, to reuse on many targets."""
    from ..api import extract_dynamics

    if not args.output.endswith(DYNAMICS_SUFFIX):
        raise UsageError(f"dynamics output '{args.output}' should end in {DYNAMICS_SUFFIX}")
    options.check_output_path(args.output, "-o/--output")
    out = extract_dynamics(args.source, args.output, checkpoint=args.checkpoint,
                           device=args.device, reference_frame=args.reference_frame,
                           fit=args.fit, progress=args.progress, chunk_size=args.chunk_size,
                           crop=args.crop, face=args.face, landmarker=args.landmarker,
                           backend=args.backend)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    """Add ``transfer`` and ``dynamics``."""
    p = subparsers.add_parser("transfer", help="make a target image move like a source video",
                              description="Make a target image move like a source video. "
                                          "Use '-' for y4m on stdin/stdout; write a file name "
                                          "that starts with a dash as --target=-x.png or "
                                          "./-x.png.")
    p.set_defaults(func=cmd_transfer)
    p.add_argument("-s", "--source", help="source video (or '-' for y4m on stdin)")
    p.add_argument("--dynamics", help=f"a {DYNAMICS_SUFFIX} file instead of a source video "
                   "(with -s and --keep-audio, the source only lends its audio)")
    p.add_argument("-t", "--target", required=True, help="target image (PNG, JPEG, WebP, ...)")
    p.add_argument("-o", "--output", required=True, help="output video (or '-' for y4m on stdout)")
    options.add_model_flags(p)
    options.add_render_flags(p)
    options.add_face_flags(p)
    p.add_argument("--keep-audio", action="store_true", help="copy the source's audio track")
    options.add_encode_flags(p)

    p = subparsers.add_parser("dynamics",
                              help=f"extract a source's dynamics to a {DYNAMICS_SUFFIX} file",
                              description="Extract appearance-suppressed dynamics once and reuse "
                                          "them on many targets with 'dtgan transfer "
                                          "--dynamics'.")
    p.set_defaults(func=cmd_dynamics)
    p.add_argument("-s", "--source", required=True, help="source video")
    p.add_argument("-o", "--output", required=True, help=f"FILE{DYNAMICS_SUFFIX}")
    options.add_model_flags(p)
    options.add_face_flags(p, paste_back=False)
