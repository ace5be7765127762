"""Make errors raised below a command speak of that command's flags.

``dtgan transfer`` runs a graph it builds itself, so an error from the graph or the writer
would otherwise name things the user never wrote ("input [tgt] at column 74", "pass codec=").
A command lists (pattern, replacement) rules; :func:`speaking_flags` rewrites the message and
hint of any :class:`DtganError` passing through, in place, so ``--verbose`` keeps the
original traceback.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence

from ..errors import DtganError, GraphError

Rule = tuple[str, str]


def reword(text: str, rules: Sequence[Rule]) -> str:
    """``text`` with every rule's regular expression replaced, in order."""
    for pattern, replacement in rules:
        text = re.sub(pattern, replacement, text)
    return text


@contextlib.contextmanager
def speaking_flags(rules: Sequence[Rule]) -> Iterator[None]:
    """Reword any DtganError raised in the block with ``rules``; graph columns are dropped."""
    try:
        yield
    except DtganError as err:
        err.message = reword(err.message, rules)
        if err.hint is not None:
            err.hint = reword(err.hint, rules) or None
        if isinstance(err, GraphError):
            # the column points into a graph the user never wrote
            err.column = None
            err.text = ""
        err.args = (err.message,)
        raise


def prefix_flag(flag: str) -> list[Rule]:
    """A rule that names ``flag`` at the start of a message that does not name it yet."""
    return [(rf"^(?!{re.escape(flag)}\b)", f"{flag}: ")]
