"""``dtgan batch``: many source x target transfers from a manifest or two folders."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from ..batch.jobs import (DEFAULT_TEMPLATE, OPTION_COLUMNS, PAIRINGS, TEMPLATE_FIELDS,
                          JobOptions, Plan, parse_shard, plan_from_folders, plan_from_manifest,
                          select_shard)
from ..errors import DtganError, UsageError
from . import options


def build_plan(args: argparse.Namespace) -> Plan:
    """The validated job list described by the command-line arguments."""
    defaults = JobOptions(amplify=args.amplify, reference_frame=args.reference_frame,
                          size=args.size, fit=args.fit, smooth=args.smooth,
                          keep_audio=args.keep_audio, codec=args.codec, crf=args.crf,
                          alpha=args.alpha, crop=args.crop, face=args.face,
                          paste_back=args.paste_back, detail=args.detail, head=args.head)
    folders = args.sources is not None or args.targets is not None
    if args.manifest and folders:
        raise UsageError("give either --manifest or --sources/--targets, not both")
    if args.manifest:
        if args.pairing != "all" or args.recursive:
            raise UsageError("--pairing and --recursive apply to --sources/--targets, "
                             "not to --manifest")
        return plan_from_manifest(args.manifest, out_dir=args.out_dir,
                                  template=args.name_template, options=defaults)
    if not folders:
        raise UsageError("nothing to do: give --manifest FILE or --sources DIR --targets DIR",
                         hint="see 'dtgan batch --help'")
    if args.sources is None or args.targets is None:
        missing = "--targets" if args.targets is None else "--sources"
        raise UsageError(f"{missing} is missing: folder mode needs both --sources and --targets")
    return plan_from_folders(args.sources, args.targets, out_dir=args.out_dir,
                             pairing=args.pairing, template=args.name_template,
                             options=defaults, recursive=args.recursive)


def cmd_batch(args: argparse.Namespace) -> int:
    """Run many source × target transfers, resumably, locally or on Ray."""
    from ..batch.runner import BatchOptions, format_summary, get_executor, output_done, run_batch

    shard = parse_shard(args.shard)
    if args.address and args.executor != "ray":
        raise UsageError("--address only applies to --executor ray")
    get_executor(args.executor)  # unknown executor: fail before listing any folder
    plan = build_plan(args)
    for warning in plan.warnings:
        print(f"dtgan: warning: {warning}", file=sys.stderr)
    if args.dry_run:
        jobs = select_shard(plan.jobs, shard)
        for job in jobs:
            state = "done" if output_done(job.output) and not args.overwrite else "pending"
            if args.json:
                print(json.dumps({"job": job.id, "state": state, "source": str(job.source),
                                  "target": str(job.target), "output": str(job.output),
                                  **job.options.to_dict()}))
            else:
                print(f"{state:<8} {job.output}  <-  {job.source.name} + {job.target.name}")
        return 0
    options = BatchOptions(checkpoint=args.checkpoint, device=args.device,
                           executor=args.executor, jobs=args.jobs, address=args.address,
                           shard=shard, fail_fast=args.fail_fast, overwrite=args.overwrite,
                           progress=getattr(args, "progress", True), chunk_size=args.chunk_size,
                           backend=args.backend,
                           cache_dir=Path(args.cache_dir).resolve() if args.cache_dir else None)
    summary = _with_sigterm_as_interrupt(lambda: run_batch(plan, options))
    print(format_summary(summary), file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
    if summary.get("stopped_by"):
        raise DtganError(f"stopped at the first failure (--fail-fast): "
                         f"{summary['stopped_by']['error']}",
                         hint=f"see {summary['report']}")
    if summary["failed"]:
        raise DtganError(f"{summary['failed']} of {summary['jobs']} job(s) failed; "
                         f"see {summary['report']}",
                         hint="fix them and rerun the same command: finished jobs are skipped")
    return 0


def _with_sigterm_as_interrupt(fn: Any) -> Any:
    """Run ``fn`` with SIGTERM (what schedulers send on preemption) handled like Ctrl-C, so
    workers stop and writers remove their temp files before the process exits."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return fn()

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        return fn()
    finally:
        signal.signal(signal.SIGTERM, previous)


_EPILOG = "name template fields:\n" + "\n".join(
    f"  {{{name}}}{' ' * max(1, 18 - len(name))}{desc}" for name, desc in TEMPLATE_FIELDS.items()
) + """

""" + textwrap.fill(
    "Manifest: CSV with a header row, or JSON lines; columns source, target and optionally "
    f"output, {', '.join(OPTION_COLUMNS)} (empty = the command-line value). Relative "
    "source/target paths are relative to the manifest's folder, relative outputs to "
    "--out-dir.", 92) + """

A job is done when its output exists (outputs are renamed into place only when complete), so
rerunning the same command resumes: done jobs are skipped, failed and unfinished ones rerun.
Each finished job appends a line to OUT_DIR/report.jsonl. Dynamics are extracted once per
source into OUT_DIR/.dyn/ and reused for every target.

Exit codes: 0 all jobs done or skipped, 1 some job failed, 2 bad usage."""


def register(subparsers: Any) -> None:
    """Add ``batch``."""
    p = subparsers.add_parser(
        "batch", help="run many sources x targets (manifest or folders), resumable, local or Ray",
        description="Run every source video x target image job of a manifest or two folders. "
                    "Resumable: rerun the same command after a crash or Ctrl-C.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=cmd_batch)
    g = p.add_argument_group("jobs")
    g.add_argument("--manifest", metavar="FILE", help="a .csv or .jsonl list of jobs")
    g.add_argument("--sources", metavar="DIR", help="folder of source videos")
    g.add_argument("--targets", metavar="DIR", help="folder of target images")
    g.add_argument("--pairing", default="all", choices=PAIRINGS,
                   help="all: every source with every target (default); same-name: a source "
                        "with the target of the same file stem; zip: in sorted order")
    g.add_argument("--recursive", action="store_true",
                   help="also look in sub-folders of --sources/--targets")
    g.add_argument("--out-dir", required=True, metavar="DIR",
                   help="where outputs, report.jsonl and the dynamics cache go")
    g.add_argument("--name-template", default=DEFAULT_TEMPLATE, metavar="TEMPLATE",
                   help=f"output file name below --out-dir (default '{DEFAULT_TEMPLATE}'; "
                        "fields below; '/' makes sub-folders)")
    g.add_argument("--shard", metavar="I/N",
                   help="run only part I of N (1-based) of the job list, e.g. on N machines")
    g.add_argument("--overwrite", action="store_true",
                   help="redo jobs whose output already exists")
    g.add_argument("--dry-run", action="store_true",
                   help="list the jobs (pending or done) and exit")
    g.add_argument("--json", action="store_true",
                   help="print the summary (or the --dry-run list) as JSON on stdout")

    g = p.add_argument_group("execution")
    g.add_argument("--executor", default="local",
                   help="local (processes here, default) or ray (or a plugin's executor)")
    g.add_argument("--jobs", "-j", type=options.positive_int, default=1, metavar="N",
                   help="parallel workers, each with its own model (default 1)")
    g.add_argument("--address", metavar="ADDR",
                   help="Ray cluster to join (e.g. ray://HEAD:10001 or auto); default: start a "
                        "local Ray")
    g.add_argument("--fail-fast", action="store_true",
                   help="stop at the first failed job (default: record it and go on)")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="dynamics cache folder (default OUT_DIR/.dyn)")
    options.add_chunk_flag(g)

    g = p.add_argument_group("model and output (defaults for every job; manifest columns "
                             "override them)")
    options.add_model_flags(g, chunk=False)
    options.add_render_flags(g)
    options.add_face_flags(g, landmarker=False)
    g.add_argument("--keep-audio", action="store_true", help="copy each source's audio track")
    options.add_encode_flags(g, codecs="auto (by extension), h264, ffv1, vp9, ...")
