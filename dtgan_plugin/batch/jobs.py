"""Batch jobs: what to run (manifest or folders), what to call each output, and the report.

A *job* is one (source video, target image) pair with its options and output path. Jobs come
from a manifest (CSV with a header row, or JSON lines) or from two folders and a pairing rule.
Everything here is pure planning: no model, no decoding, so a bad manifest, template or shard
spec is a one-line :class:`~dtgan_plugin.errors.UsageError` before any work starts.

Output names come from ``--name-template`` (Python ``str.format`` syntax, fields in
:data:`TEMPLATE_FIELDS`); ``/`` in a template makes sub-folders of the output folder.
"""

from __future__ import annotations

import csv
import difflib
import fcntl
import hashlib
import json
import os
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import UsageError

#: default ``--name-template``
DEFAULT_TEMPLATE = "{source_stem}__{target_stem}.mp4"

#: name of the per-batch report inside the output folder
REPORT_NAME = "report.jsonl"

#: fields a ``--name-template`` may use, with what each means (``dtgan batch --help`` shows them)
TEMPLATE_FIELDS: dict[str, str] = {
    "source_stem": "source file name without its extension (clip01)",
    "source_name": "source file name (clip01.mp4)",
    "source_ext": "source extension without the dot (mp4)",
    "source_dir": "name of the folder holding the source",
    "source_reldir": "source folder relative to --sources or the manifest's folder ('' if none)",
    "source_hash": "8 hex digits of the source's absolute path (tells same-named files apart)",
    "source_index": "0-based position of the source in sorted/manifest order",
    "target_stem": "target file name without its extension",
    "target_name": "target file name",
    "target_ext": "target extension without the dot",
    "target_dir": "name of the folder holding the target",
    "target_reldir": "target folder relative to --targets or the manifest's folder",
    "target_hash": "8 hex digits of the target's absolute path",
    "target_index": "0-based position of the target",
    "index": "0-based position of the job in the whole batch",
    "amplify": "the job's motion strength",
    "reference_frame": "the job's reference frame",
    "size": "the job's output size (0 = the model's resolution)",
    "fit": "the job's fit policy",
}

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg",
                              ".y4m", ".gif", ".flv", ".wmv", ".ts", ".mts", ".3gp", ".ogv"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
#: output containers accepted when no writer registry can be asked
_FALLBACK_OUTPUT_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v",
                                         ".gif", ".y4m"})

PAIRINGS = ("all", "same-name", "zip")
FIT_POLICIES = ("crop", "pad", "stretch")


@dataclass(frozen=True)
class JobOptions:
    """Per-job transfer options (manifest columns override the command-line defaults)."""

    amplify: float = 1.0
    reference_frame: int = 0
    size: int | None = None
    fit: str = "crop"
    smooth: bool = False
    keep_audio: bool = False
    codec: str = "auto"
    crf: int | None = None
    alpha: str = "refuse"
    crop: str = "auto"
    face: int = 0
    paste_back: bool = True
    detail: int | str = "auto"
    head: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stable key order)."""
        out = {"amplify": self.amplify, "reference_frame": self.reference_frame,
               "size": self.size, "fit": self.fit, "smooth": self.smooth,
               "keep_audio": self.keep_audio, "codec": self.codec, "crf": self.crf,
               "alpha": self.alpha, "crop": self.crop, "face": self.face,
               "paste_back": self.paste_back}
        if self.detail != "auto":
            # only when set: job ids hash this dict, and a batch started before the option
            # existed must resume with the same ids
            out["detail"] = self.detail
        if self.head != 1.0:
            out["head"] = self.head  # likewise
        return out


#: manifest columns that become :class:`JobOptions` fields
OPTION_COLUMNS = ("amplify", "reference_frame", "size", "fit", "smooth", "keep_audio", "codec",
                  "crf", "alpha", "crop", "face", "paste_back", "detail", "head")
#: the allowed values of the manifest's word-valued columns
_CHOICES = {"alpha": ("refuse", "composite", "drop"), "crop": ("auto", "face", "none")}
MANIFEST_COLUMNS = ("source", "target", "output", *OPTION_COLUMNS)


@dataclass(frozen=True)
class Job:
    """One source × target pair: inputs, options and the output path (all absolute)."""

    id: str
    index: int
    source: Path
    target: Path
    output: Path
    options: JobOptions = field(default_factory=JobOptions)

    def describe(self) -> str:
        """``source + target`` in a few words, for messages."""
        return f"{self.source.name} + {self.target.name}"


@dataclass
class JobResult:
    """What happened to one job; one line of ``report.jsonl``."""

    job: str
    source: str
    target: str
    output: str
    status: str                      # done | skipped | failed
    error: str | None = None
    frames: int = 0
    seconds: float = 0.0
    worker: str = ""
    dynamics: str | None = None      # extracted | cached | None (not reached)
    extract_seconds: float = 0.0

    @classmethod
    def for_job(cls, job: Job, status: str, **kw: Any) -> "JobResult":
        """A result row for ``job``."""
        return cls(job=job.id, source=str(job.source), target=str(job.target),
                   output=str(job.output), status=status, **kw)

    def to_dict(self) -> dict[str, Any]:
        """The report row (plus a UTC timestamp)."""
        return {"job": self.job, "source": self.source, "target": self.target,
                "output": self.output, "status": self.status, "error": self.error,
                "frames": self.frames, "seconds": round(self.seconds, 4), "worker": self.worker,
                "dynamics": self.dynamics, "extract_seconds": round(self.extract_seconds, 4),
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


# --------------------------------------------------------------------------------- helpers

def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else None


def path_hash(path: Path) -> str:
    """8 hex digits identifying an absolute path."""
    return hashlib.sha1(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _job_id(source: Path, target: Path, output: Path, options: JobOptions) -> str:
    # stable across runs and machines for the same inputs, options and output
    blob = json.dumps([str(source), str(target), str(output), options.to_dict()],
                      sort_keys=True)
    return hashlib.sha1(blob.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _reldir(path: Path, root: Path | None) -> str:
    if root is None:
        return ""
    try:
        rel = path.parent.relative_to(root)
    except ValueError:
        return ""
    return "" if str(rel) == "." else rel.as_posix()


# -------------------------------------------------------------------------------- template

def check_template(template: str) -> None:
    """UsageError if the template is malformed or uses an unknown field."""
    if not template or not template.strip():
        raise UsageError("--name-template is empty", hint=f"e.g. '{DEFAULT_TEMPLATE}'")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise UsageError(f"--name-template '{template}' is malformed: {err}",
                         hint="use {field} placeholders; write {{ or }} for a literal brace") from None
    for _, name, _, _ in parsed:
        if name is None:
            continue
        base = name.split(".")[0].split("[")[0]
        if not base:
            raise UsageError(f"--name-template '{template}' has an empty {{}} placeholder",
                             hint="name a field, e.g. {source_stem}")
        if base not in TEMPLATE_FIELDS:
            raise UsageError(f"--name-template uses unknown field '{{{base}}}'",
                             hint=_did_you_mean(base, TEMPLATE_FIELDS)
                             or f"known fields: {', '.join(TEMPLATE_FIELDS)}")


def _output_extensions() -> frozenset[str]:
    """Extensions some registered writer accepts (fallback list if the registry has none)."""
    try:
        from ..hooks.manager import get_registry

        exts: set[str] = set()
        for entry in get_registry().entries("writers"):
            for ext in entry.extra.get("extensions", ()) or ():
                exts.add(str(ext).lower() if str(ext).startswith(".") else f".{str(ext).lower()}")
        return frozenset(exts) or _FALLBACK_OUTPUT_EXTENSIONS
    except Exception:  # noqa: BLE001 - planning must not depend on every plugin loading
        return _FALLBACK_OUTPUT_EXTENSIONS


def render_name(template: str, fields: Mapping[str, Any]) -> str:
    """Fill the template; a bad format spec (``{index:q}``) is a UsageError."""
    try:
        return template.format(**fields)
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as err:
        raise UsageError(f"--name-template '{template}' cannot be filled: {err}",
                         hint="check the format specs, e.g. {index:04d}") from None


def _safe_relative(name: str, template: str) -> Path:
    """The rendered name as a path below the output folder (no absolute path, no '..')."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        raise UsageError(f"--name-template '{template}' gave an empty file name")
    if ".." in parts:
        raise UsageError(f"--name-template '{template}' gave '{name}', which leaves the output "
                         "folder", hint="remove '..' from the template and the file names")
    return Path(*parts)


def _fields(source: Path, target: Path, *, index: int, source_index: int, target_index: int,
            options: JobOptions, source_root: Path | None,
            target_root: Path | None) -> dict[str, Any]:
    return {
        "source_stem": _stem(source), "source_name": source.name,
        "source_ext": source.suffix.lstrip("."), "source_dir": source.parent.name,
        "source_reldir": _reldir(source, source_root), "source_hash": path_hash(source),
        "source_index": source_index,
        "target_stem": _stem(target), "target_name": target.name,
        "target_ext": target.suffix.lstrip("."), "target_dir": target.parent.name,
        "target_reldir": _reldir(target, target_root), "target_hash": path_hash(target),
        "target_index": target_index, "index": index,
        "amplify": _num(options.amplify), "reference_frame": options.reference_frame,
        "size": options.size or 0, "fit": options.fit,
    }


def _stem(path: Path) -> str:
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def _num(x: float) -> float | int:
    # 1.0 renders as "1" in names, 0.5 as "0.5"
    return int(x) if float(x).is_integer() else x


# --------------------------------------------------------------------------------- options

def _parse_bool(text: Any, where: str, key: str) -> bool:
    if isinstance(text, bool):
        return text
    low = str(text).strip().lower()
    if low in ("1", "true", "yes", "y", "on"):
        return True
    if low in ("0", "false", "no", "n", "off"):
        return False
    raise UsageError(f"{where}: '{key}' must be true or false, got {text!r}")


def _parse_int(text: Any, where: str, key: str, lo: int) -> int:
    if isinstance(text, bool):
        raise UsageError(f"{where}: '{key}' must be a whole number, got {text!r}")
    try:
        value = int(text) if not isinstance(text, float) or float(text).is_integer() else None
    except (TypeError, ValueError):
        value = None
    if value is None:
        raise UsageError(f"{where}: '{key}' must be a whole number, got {text!r}")
    if value < lo:
        raise UsageError(f"{where}: '{key}' must be >= {lo}, got {value}")
    return value


def _parse_float(text: Any, where: str, key: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: '{key}' must be a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise UsageError(f"{where}: '{key}' must be a finite number, got {text!r}")
    return value


def apply_options(base: JobOptions, raw: Mapping[str, Any], where: str) -> JobOptions:
    """``base`` with the given option values (strings from CSV or typed from JSON) applied."""
    kw: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or (isinstance(value, str) and value.strip() == ""):
            continue  # an empty cell keeps the default
        if key == "amplify":
            kw[key] = _parse_float(value, where, key)
        elif key == "head":
            from ..models.head_pose import MAX_HEAD

            if isinstance(value, bool):  # JSON true/false is not a strength
                raise UsageError(f"{where}: 'head' must be a number, got {value!r}")
            head = _parse_float(value, where, key)
            if not 0.0 <= head <= MAX_HEAD:
                raise UsageError(f"{where}: 'head' must be between 0 and {MAX_HEAD:g}, got "
                                 f"{value!r}", hint="1 keeps the source's head motion, 0 keeps "
                                                    "the head still")
            kw[key] = head
        elif key == "reference_frame":
            kw[key] = _parse_int(value, where, key, 0)
        elif key == "size":
            size = _parse_int(value, where, key, 0)
            kw[key] = size or None
        elif key in ("crf", "face"):
            kw[key] = _parse_int(value, where, key, 0)
        elif key == "detail":
            auto = isinstance(value, str) and value.strip().lower() == "auto"
            kw[key] = "auto" if auto else _parse_int(value, where, key, 0)
        elif key in _CHOICES:
            word = str(value).strip()
            if word not in _CHOICES[key]:
                raise UsageError(f"{where}: '{key}' must be one of {', '.join(_CHOICES[key])}, "
                                 f"got {word!r}")
            kw[key] = word
        elif key in ("smooth", "keep_audio", "paste_back"):
            kw[key] = _parse_bool(value, where, key)
        elif key == "fit":
            fit = str(value).strip()
            if fit not in FIT_POLICIES:
                raise UsageError(f"{where}: 'fit' must be one of {', '.join(FIT_POLICIES)}, "
                                 f"got {fit!r}")
            kw[key] = fit
        elif key == "codec":
            kw[key] = str(value).strip()
        else:  # pragma: no cover - callers filter keys first
            raise UsageError(f"{where}: unknown option '{key}'")
    return JobOptions(**{**base.__dict__, **kw})


# -------------------------------------------------------------------------------- manifest

def _norm_key(key: Any) -> str:
    return str(key).strip().lower().replace("-", "_").replace(" ", "_")


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a ``.csv`` (header row) or ``.jsonl`` manifest, each with a ``_where`` tag."""
    mpath = Path(path)
    if not mpath.is_file():
        raise UsageError(f"manifest '{mpath}' does not exist", hint="check the --manifest path")
    suffix = mpath.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise UsageError(f"manifest '{mpath.name}' must be a .csv or .jsonl file",
                         hint="CSV with a header row (source,target,...) or one JSON object a line")
    rows: list[dict[str, Any]] = []
    try:
        with open(mpath, newline="", encoding="utf-8-sig") as fh:
            if suffix == ".csv":
                reader = csv.reader(fh)
                header: list[str] | None = None
                for row in reader:
                    if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
                        continue
                    if header is None:
                        header = [_norm_key(c) for c in row]
                        continue
                    where = f"{mpath.name} line {reader.line_num}"
                    if len(row) > len(header):
                        raise UsageError(f"{where}: {len(row)} cells but the header has "
                                         f"{len(header)} columns", hint="quote cells containing commas")
                    rows.append({**dict(zip(header, (c.strip() for c in row))), "_where": where})
                if header is None:
                    raise UsageError(f"manifest '{mpath.name}' is empty",
                                     hint="add a header row: source,target[,output,amplify,...]")
            else:
                for lineno, line in enumerate(fh, 1):
                    text = line.strip()
                    if not text or text.startswith("#"):
                        continue
                    where = f"{mpath.name} line {lineno}"
                    try:
                        obj = json.loads(text)
                    except ValueError as err:
                        raise UsageError(f"{where}: not valid JSON ({err.args[0].split(':')[0]})",
                                         hint="one JSON object per line") from None
                    if not isinstance(obj, dict):
                        raise UsageError(f"{where}: expected a JSON object, got "
                                         f"{type(obj).__name__}")
                    rows.append({**{_norm_key(k): v for k, v in obj.items()}, "_where": where})
    except UnicodeDecodeError:
        raise UsageError(f"manifest '{mpath.name}' is not UTF-8 text") from None
    except csv.Error as err:
        raise UsageError(f"manifest '{mpath.name}' is not valid CSV: {err}") from None
    if not rows:
        raise UsageError(f"manifest '{mpath.name}' has no jobs", hint="add one row per job")
    for row in rows:
        where = row["_where"]
        for key in row:
            if key != "_where" and key not in MANIFEST_COLUMNS:
                raise UsageError(f"{where}: unknown column '{key}'",
                                 hint=_did_you_mean(key, MANIFEST_COLUMNS)
                                 or f"known columns: {', '.join(MANIFEST_COLUMNS)}")
        for key in ("source", "target"):
            value = row.get(key)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise UsageError(f"{where}: '{key}' is missing",
                                 hint="every row needs a source video and a target image")
            if not isinstance(value, str):
                raise UsageError(f"{where}: '{key}' must be a path string, got {value!r}")
    return rows


# --------------------------------------------------------------------------------- folders

def list_media(folder: str | os.PathLike[str], extensions: frozenset[str], *, what: str,
               flag: str, recursive: bool = False) -> list[Path]:
    """Sorted media files (by extension, hidden files skipped) in a folder."""
    root = Path(folder)
    if not root.exists():
        raise UsageError(f"{flag} folder '{root}' does not exist", hint=f"check the {flag} path")
    if not root.is_dir():
        raise UsageError(f"{flag} '{root}' is not a folder",
                         hint="give a folder, or use --manifest for a list of files")
    pattern = root.rglob("*") if recursive else root.iterdir()
    files = sorted(p.resolve() for p in pattern
                   if p.is_file() and p.suffix.lower() in extensions
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        shown = " ".join(sorted(extensions)[:6])
        raise UsageError(f"{flag} folder '{root}' has no {what}",
                         hint=f"expected files such as {shown} ...")
    return files


def pair(sources: Sequence[Path], targets: Sequence[Path],
         pairing: str) -> tuple[list[tuple[int, int]], list[str]]:
    """Index pairs (source i, target j) for a pairing rule, plus warnings."""
    if pairing == "all":
        return [(i, j) for i in range(len(sources)) for j in range(len(targets))], []
    if pairing == "zip":
        if len(sources) != len(targets):
            raise UsageError(f"--pairing zip needs as many sources as targets, got "
                             f"{len(sources)} and {len(targets)}",
                             hint="use --pairing all or same-name, or fix the folders")
        return [(i, i) for i in range(len(sources))], []
    if pairing == "same-name":
        by_stem: dict[str, list[int]] = {}
        for j, t in enumerate(targets):
            by_stem.setdefault(_stem(t), []).append(j)
        pairs = [(i, j) for i, s in enumerate(sources) for j in by_stem.get(_stem(s), [])]
        if not pairs:
            raise UsageError("--pairing same-name found no source and target with the same "
                             "file name (without extension)",
                             hint="rename the files, or use --pairing all or zip")
        warnings = []
        lonely = len(sources) - len({i for i, _ in pairs})
        if lonely:
            warnings.append(f"{lonely} source(s) have no target of the same name and are left out")
        lonely = len(targets) - len({j for _, j in pairs})
        if lonely:
            warnings.append(f"{lonely} target(s) have no source of the same name and are left out")
        return pairs, warnings
    raise UsageError(f"unknown --pairing '{pairing}'", hint=f"use one of {', '.join(PAIRINGS)}")


# ------------------------------------------------------------------------------------ plan

@dataclass
class Plan:
    """The full, validated job list of a batch, and warnings to show the user."""

    jobs: list[Job]
    out_dir: Path
    warnings: list[str] = field(default_factory=list)


def _finish(entries: list[tuple[Path, Path, JobOptions, Path | None, int, int]], *,
            out_dir: Path, template: str, source_root: Path | None,
            target_root: Path | None) -> list[Job]:
    """Name outputs, make job ids, and refuse duplicate outputs or outputs that are inputs."""
    check_template(template)
    exts: frozenset[str] | None = None  # the writer registry is asked only for rare suffixes
    jobs: list[Job] = []
    seen: dict[Path, Job] = {}
    inputs = {p for e in entries for p in (e[0], e[1])}
    for index, (source, target, options, output, si, ti) in enumerate(entries):
        if output is None:
            name = render_name(template, _fields(source, target, index=index, source_index=si,
                                                 target_index=ti, options=options,
                                                 source_root=source_root,
                                                 target_root=target_root))
            output = out_dir / _safe_relative(name, template)
        suffix = output.suffix.lower()
        if suffix not in _FALLBACK_OUTPUT_EXTENSIONS:
            if exts is None:
                exts = _output_extensions() | _FALLBACK_OUTPUT_EXTENSIONS
            if suffix not in exts:
                raise UsageError(f"output '{output.name}' (job {index}: {source.name} + "
                                 f"{target.name}) has no known video extension",
                                 hint=f"use one of {', '.join(sorted(exts))}")
        output = Path(os.path.abspath(output))
        if output in inputs:
            raise UsageError(f"output '{output}' would overwrite an input file",
                             hint="choose another --out-dir or name")
        job = Job(_job_id(source, target, output, options), index, source, target, output,
                  options)
        if output in seen:
            other = seen[output]
            raise UsageError(f"two jobs would write '{output.name}' ({other.describe()} and "
                             f"{job.describe()})",
                             hint="add {source_dir}, {source_hash} or {index} to --name-template")
        seen[output] = job
        jobs.append(job)
    return jobs


def plan_from_folders(sources: str | os.PathLike[str], targets: str | os.PathLike[str], *,
                      out_dir: str | os.PathLike[str], pairing: str = "all",
                      template: str = DEFAULT_TEMPLATE, options: JobOptions = JobOptions(),
                      recursive: bool = False) -> Plan:
    """Jobs for the videos in ``sources`` × the images in ``targets`` (``pairing`` rule)."""
    if pairing not in PAIRINGS:
        raise UsageError(f"unknown --pairing '{pairing}'", hint=f"use one of {', '.join(PAIRINGS)}")
    check_template(template)
    src_root, tgt_root = Path(sources).resolve(), Path(targets).resolve()
    srcs = list_media(sources, VIDEO_EXTENSIONS, what="videos", flag="--sources",
                      recursive=recursive)
    tgts = list_media(targets, IMAGE_EXTENSIONS, what="images", flag="--targets",
                      recursive=recursive)
    pairs, warnings = pair(srcs, tgts, pairing)
    out = Path(os.path.abspath(out_dir))
    entries = [(srcs[i], tgts[j], options, None, i, j) for i, j in pairs]
    jobs = _finish(entries, out_dir=out, template=template, source_root=src_root,
                   target_root=tgt_root)
    return Plan(jobs, out, warnings)


def plan_from_manifest(manifest: str | os.PathLike[str], *, out_dir: str | os.PathLike[str],
                       template: str = DEFAULT_TEMPLATE,
                       options: JobOptions = JobOptions()) -> Plan:
    """Jobs from a manifest; relative paths are relative to the manifest's folder."""
    check_template(template)
    mpath = Path(manifest).resolve()
    base = mpath.parent
    rows = read_manifest(mpath)
    out = Path(os.path.abspath(out_dir))
    src_index: dict[Path, int] = {}
    tgt_index: dict[Path, int] = {}
    entries = []
    for row in rows:
        where = row["_where"]
        source = Path(os.path.abspath(base / os.path.expanduser(row["source"].strip())))
        target = Path(os.path.abspath(base / os.path.expanduser(row["target"].strip())))
        opts = apply_options(options, {k: row[k] for k in OPTION_COLUMNS if k in row}, where)
        output = None
        raw_out = row.get("output")
        if isinstance(raw_out, str) and raw_out.strip():
            rel = Path(os.path.expanduser(raw_out.strip()))
            # an output is relative to --out-dir (like a template name); an absolute one would
            # escape it as '..' would, so both are refused
            if rel.is_absolute():
                raise UsageError(f"{where}: output '{raw_out.strip()}' is an absolute path",
                                 hint="give it relative to --out-dir")
            output = out / _safe_relative(raw_out.strip(), raw_out)
        elif raw_out not in (None, ""):
            raise UsageError(f"{where}: 'output' must be a path string, got {raw_out!r}")
        si = src_index.setdefault(source, len(src_index))
        ti = tgt_index.setdefault(target, len(tgt_index))
        entries.append((source, target, opts, output, si, ti))
    jobs = _finish(entries, out_dir=out, template=template, source_root=base, target_root=base)
    return Plan(jobs, out, [])


# ----------------------------------------------------------------------------------- shard

def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"I/N"`` (1-based, like Playwright's ``--shard``) → ``(I, N)``; None stays None."""
    if spec is None or spec == "":
        return None
    text = str(spec).strip()
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise UsageError(f"bad --shard '{spec}'", hint="use I/N with 1 <= I <= N, e.g. 2/4")
    i, n = int(parts[0]), int(parts[1])
    if n < 1 or not 1 <= i <= n:
        raise UsageError(f"bad --shard '{spec}': I must be between 1 and N",
                         hint="use I/N with 1 <= I <= N, e.g. 2/4")
    return i, n


def select_shard(jobs: Sequence[Job], shard: tuple[int, int] | None) -> list[Job]:
    """Shard I of N: a contiguous block of the jobs sorted by source, so each source's jobs
    stay in as few (neighbouring) shards as the split allows and few shards extract it.

    The split depends only on the job list, so every invocation with the same inputs agrees;
    the union of shards 1..N is every job, and no two shards share one.
    """
    if shard is None:
        return list(jobs)
    i, n = shard
    ordered = sorted(jobs, key=lambda j: (str(j.source), str(j.target), str(j.output)))
    total = len(ordered)
    lo, hi = (i - 1) * total // n, i * total // n
    return sorted(ordered[lo:hi], key=lambda j: j.index)


# ---------------------------------------------------------------------------------- report

class Report:
    """``report.jsonl``: one JSON line appended (and flushed) per finished job.

    Appends take an exclusive ``flock`` so several shards sharing an output folder never
    interleave lines.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, result: JobResult, **extra: Any) -> None:
        """Write one row."""
        line = json.dumps({**result.to_dict(), **extra}, default=str) + "\n"
        data = line.encode("utf-8", "surrogateescape")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def rows(self) -> list[dict[str, Any]]:
        """Every readable row (a torn last line from a killed run is ignored)."""
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
        return out
