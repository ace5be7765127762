"""The ``dtgan`` command: parse arguments, call the API, map errors to exit codes.

Exit codes: 0 success, 1 runtime error (bad media, failed encode, bad checkpoint), 2 usage
error (bad arguments, graph or options), 130 interrupted. Errors are one line on stderr;
``--verbose`` adds the traceback (and the graph with a caret for graph errors).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Any, Callable, Sequence

from . import __version__
from .errors import DtganError, GraphError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _common_flags(*, suppress: bool) -> argparse.ArgumentParser:
    # the same flags work before or after the subcommand; SUPPRESS keeps a subcommand's
    # unset flag from overwriting what was given on the main parser
    default: Any = argparse.SUPPRESS if suppress else False
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="show tracebacks and more detail on errors")
    parent.add_argument("--no-progress", action="store_true", default=default,
                        help="hide progress bars")
    return parent


def _print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


# --- introspection commands -------------------------------------------------------------

def cmd_plugins(args: argparse.Namespace) -> int:
    """List loaded plugins and the hooks each implements."""
    from .hooks.manager import get_plugin_manager, load_failures

    pm = get_plugin_manager()
    rows = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: str(item[0])):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        dist = pm.get_plugin(name)
        rows.append({"name": name, "hooks": hooks,
                     "builtin": name.startswith("dtgan_plugin."),
                     "module": getattr(dist, "__name__", repr(dist))})
    failed = [{"name": n, "error": e} for n, e in load_failures]
    if args.json:
        _print_json({"plugins": rows, "failed": failed})
        return 0
    for row in rows:
        tag = " (built-in)" if row["builtin"] else ""
        print(f"{row['name']}{tag}")
        for hook in row["hooks"]:
            print(f"    {hook}")
    for row in failed:
        print(f"{row['name']} (failed to load: {row['error']})")
    return 0


def cmd_filters(args: argparse.Namespace) -> int:
    """List registered stages, like ``ffmpeg -filters``."""
    from .hooks.manager import get_registry

    reg = get_registry()
    classes = [e.obj for e in reg.entries("filters")]
    if args.json:
        _print_json([cls.describe() for cls in classes])
        return 0
    width = max((len(c.name) for c in classes), default=10)
    for cls in classes:
        ins = "+".join(str(p.kind) for p in cls.inputs) or "-"
        outs = "+".join(str(p.kind) for p in cls.outputs) or "-"
        first = (cls.description or "").strip().splitlines()[0:1]
        print(f"{cls.name:<{width}}  {ins:>16} -> {outs:<14} {first[0] if first else ''}")
    print("\nPlain names (scale, hflip, fps, crop, ...) are FFmpeg filters, run inside the ffmpeg "
          "process that decodes or encodes that edge.")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Show a stage's pads, options, defaults and documentation, like ``gst-inspect``."""
    import difflib

    from .hooks.manager import get_registry

    reg = get_registry()
    entry = reg.get("filters", args.name)
    if entry is None:
        for kind in ("models", "executors", "readers", "writers"):
            other = reg.get(kind, args.name)
            if other is not None:
                info = {"name": other.name, "kind": kind[:-1], "plugin": other.plugin,
                        **{k: v for k, v in other.extra.items() if isinstance(v, (str, int, float, list, tuple))}}
                if args.json:
                    _print_json(info)
                else:
                    for key, value in info.items():
                        print(f"{key}: {value}")
                return 0
        close = difflib.get_close_matches(args.name, reg.names("filters"), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "run 'dtgan filters' to list them"
        raise UsageError(f"no stage called '{args.name}'", hint=hint)
    desc = entry.obj.describe()
    if args.json:
        _print_json(desc)
        return 0
    print(f"{desc['name']}  (plugin: {desc['plugin']})\n")
    if desc["description"]:
        print(desc["description"].strip() + "\n")
    print("Inputs:")
    for pad in desc["inputs"] or [{"name": "-", "kind": "none"}]:
        print(f"  {pad['name']:<12} {pad['kind']}")
    print("Outputs:")
    for pad in desc["outputs"]:
        print(f"  {pad['name']:<12} {pad['kind']}")
    print("Options (positional in this order):")
    for opt in desc["options"]:
        default = "required" if opt["required"] else f"default {opt['default']!r}"
        extra = f", one of {opt['choices']}" if opt["choices"] else ""
        rng = ""
        if opt["min"] is not None or opt["max"] is not None:
            rng = f", range [{opt['min']}, {opt['max']}]"
        print(f"  {opt['name']:<14} {opt['type']:<6} {default}{extra}{rng}")
        if opt["help"]:
            print(f"  {'':<14} {opt['help']}")
    return 0


# --- parser -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The full ``dtgan`` argument parser, including plugin-provided commands."""
    common = _common_flags(suppress=True)
    parser = _Parser(prog="dtgan", parents=[_common_flags(suppress=False)],
                     description="Dynamics Transfer GAN for video pipelines: make a still image "
                                 "move like a source video.")
    parser.add_argument("--version", action="version", version=f"dtgan-plugin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, parents=[common])
        p.set_defaults(func=func)
        return p

    p = add("plugins", cmd_plugins, "list loaded plugins and their hooks")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("filters", cmd_filters, "list the graph stages")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("inspect", cmd_inspect, "show a stage's pads, options and documentation")
    p.add_argument("name", help="stage name, e.g. dtgan.resize")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    from .graph.command import add_graph_parser
    from .commands import add_model_commands

    add_graph_parser(_SubparsersWithCommon(sub, common))
    add_model_commands(sub, common)

    from .hooks.manager import _report, get_plugin_manager

    # built-in subsystems (training, eval, batch) add their commands through the same hook
    # a third-party plugin uses; one plugin's broken command must not take the others down
    wrapped = _SubparsersWithCommon(sub, common)
    for impl in get_plugin_manager().hook.dtgan_register_commands.get_hookimpls():
        try:
            impl.function(subparsers=wrapped)
        except Exception as err:
            _report(impl.plugin_name, err)
    return parser


class _SubparsersWithCommon:
    """Wraps the sub-parsers action so plugin commands also accept --verbose/--no-progress."""

    def __init__(self, sub: Any, common: argparse.ArgumentParser) -> None:
        self._sub = sub
        self._common = common

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add a sub-command (same signature as argparse's)."""
        parents = list(kwargs.pop("parents", [])) + [self._common]
        kwargs.setdefault("description", kwargs.get("help"))
        return self._sub.add_parser(name, parents=parents, **kwargs)

    def __getattr__(self, item: str) -> Any:
        return getattr(self._sub, item)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dtgan`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv or bool(os.environ.get("DTGAN_VERBOSE"))
    from .graph.executor import tune_allocator

    tune_allocator(default=True)  # our own process: flat memory from the first chunk on
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        verbose = bool(getattr(args, "verbose", False)) or verbose
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        args.progress = not getattr(args, "no_progress", False)
        return int(args.func(args) or 0)
    except DtganError as err:
        if verbose:
            traceback.print_exc()
            if isinstance(err, GraphError):
                print(f"dtgan: error: {err.pretty()}", file=sys.stderr)
                return err.exit_code
        print(f"dtgan: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("dtgan: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our stdout went away (e.g. `| head`): not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except Exception as err:  # a bug: say so in one line, traceback only with --verbose
        if verbose:
            traceback.print_exc()
        first = str(err).splitlines()[0] if str(err) else ""
        print(f"dtgan: internal error: {type(err).__name__}: {first} "
              "(rerun with --verbose for the traceback and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
