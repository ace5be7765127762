"""The ``dtgan`` command: build the parser, run the chosen command, map errors to exit codes.

Exit codes: 0 success, 1 runtime error (bad media, failed encode, bad checkpoint), 2 usage
error (bad arguments, graph or options), 130 interrupted. Errors are one line on stderr;
``--verbose`` adds the traceback (and the graph with a caret for graph errors).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any, Sequence

from .. import __version__
from ..errors import DtganError, GraphError, UsageError


class Parser(argparse.ArgumentParser):
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


class SubparsersWithCommon:
    """Wraps the sub-parsers action so every command also accepts --verbose/--no-progress."""

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


def build_parser() -> argparse.ArgumentParser:
    """The full ``dtgan`` argument parser, including plugin-provided commands."""
    from . import graph, introspect
    from ..hooks.manager import _report, get_plugin_manager

    parser = Parser(prog="dtgan", parents=[_common_flags(suppress=False)],
                    description="Dynamics Transfer GAN for video pipelines: make a still image "
                                "move like a source video.")
    parser.add_argument("--version", action="version", version=f"dtgan-plugin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    wrapped = SubparsersWithCommon(sub, _common_flags(suppress=True))
    # the commands that inspect and run the plugins themselves are always there, even with
    # every plugin disabled
    introspect.register(wrapped)
    graph.register(wrapped)
    # every other command (transfer, train, batch, eval, a third party's) comes through the
    # dtgan_register_commands hook; one plugin's broken command must not take the others down
    for impl in get_plugin_manager().hook.dtgan_register_commands.get_hookimpls():
        try:
            impl.function(subparsers=wrapped)
        except Exception as err:
            _report(impl.plugin_name, err)
    return parser


def _report_error(err: DtganError, verbose: bool) -> int:
    if verbose:
        traceback.print_exc()
        if isinstance(err, GraphError):
            print(f"dtgan: error: {err.pretty()}", file=sys.stderr)
            return err.exit_code
    print(f"dtgan: error: {err}", file=sys.stderr)
    return err.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dtgan`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv or bool(os.environ.get("DTGAN_VERBOSE"))
    from ..atomic import Terminated, install_signal_handlers, raise_if_terminated
    from ..graph.executor import tune_allocator

    install_signal_handlers()  # SIGTERM/SIGHUP unwind like Ctrl-C: temporaries are removed
    tune_allocator(default=True)  # our own process: flat memory from the first chunk on
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        verbose = bool(getattr(args, "verbose", False)) or verbose
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        args.progress = not getattr(args, "no_progress", False)
        code = int(args.func(args) or 0)
        raise_if_terminated()  # a signal some library swallowed still ends the run as one
        return code
    except DtganError as err:
        return _report_error(err, verbose)
    except Terminated as err:
        print(f"dtgan: terminated by signal {err.signum}", file=sys.stderr)
        return 128 + err.signum
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
