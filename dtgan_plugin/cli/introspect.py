"""``dtgan plugins``, ``dtgan filters`` and ``dtgan inspect``: what the plugins provide."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import UsageError


def _print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _conflicts(get_registry: Any) -> list[dict[str, Any]]:
    """Names two or more plugins register, as the registry records them."""
    return [{"kind": c.kind, "name": c.name, "plugins": list(c.plugins)}
            for c in get_registry().conflicts]


def _conflict_line(row: dict[str, Any]) -> str:
    what = "stage" if row["kind"] == "filters" else str(row["kind"]).rstrip("s")
    *first, last = row["plugins"] or ["?"]
    plugins = f"both {first[0]} and {last}" if len(first) == 1 else f"{', '.join(first)} and {last}"
    return (f"conflict: {what} '{row['name']}' is registered by {plugins} (a graph that "
            "uses it fails; disable one with DTGAN_DISABLE_PLUGINS)")


def cmd_plugins(args: argparse.Namespace) -> int:
    """List loaded plugins and the hooks each implements."""
    from ..hooks.manager import get_plugin_manager, get_registry, load_failures

    pm = get_plugin_manager()
    rows = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: str(item[0])):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        dist = pm.get_plugin(name)
        rows.append({"name": name, "hooks": hooks,
                     "builtin": name.startswith("dtgan_plugin."),
                     "module": getattr(dist, "__name__", repr(dist))})
    failed = [{"name": n, "error": e} for n, e in load_failures]
    conflicts = _conflicts(get_registry)
    if args.json:
        _print_json({"plugins": rows, "failed": failed, "conflicts": conflicts})
        return 0
    for row in rows:
        tag = " (built-in)" if row["builtin"] else ""
        print(f"{row['name']}{tag}")
        for hook in row["hooks"]:
            print(f"    {hook}")
    for row in failed:
        print(f"{row['name']} (failed to load: {row['error']})")
    for row in conflicts:
        print(_conflict_line(row))
    return 0


def cmd_filters(args: argparse.Namespace) -> int:
    """List registered stages, like ``ffmpeg -filters``."""
    from ..hooks.manager import get_registry

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

    from ..hooks.manager import get_registry

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


def register(subparsers: Any) -> None:
    """Add ``plugins``, ``filters`` and ``inspect``."""
    p = subparsers.add_parser("plugins", help="list loaded plugins and their hooks")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)
    p = subparsers.add_parser("filters", help="list the graph stages")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_filters)
    p = subparsers.add_parser("inspect", help="show a stage's pads, options and documentation")
    p.add_argument("name", help="stage name, e.g. dtgan.resize")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)
