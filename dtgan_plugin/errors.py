"""One exception hierarchy: every failure a user can cause is a :class:`DtganError`.

The CLI prints ``str(err)`` as one line on stderr and exits with ``err.exit_code``; nothing
else is caught silently, so a bug still shows its traceback.
"""

from __future__ import annotations


class DtganError(Exception):
    """Base of every user-facing failure; carries an exit code and an optional hint."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(DtganError):
    """Wrong command-line usage, options or arguments (exit code 2)."""

    exit_code = 2


class MissingExtraError(UsageError):
    """A feature needs an optional extra that is not installed; the hint names the install."""


class GraphError(UsageError):
    """A filter-graph string that does not parse or does not validate.

    ``text`` and ``column`` (0-based) locate the problem; ``str()`` stays one line, and
    :meth:`pretty` adds the graph with a caret under the column.
    """

    def __init__(self, message: str, *, text: str = "", column: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.text = text
        self.column = column

    def __str__(self) -> str:
        where = f" at column {self.column + 1}" if self.column is not None else ""
        base = f"{self.message}{where}"
        return f"{base} ({self.hint})" if self.hint else base

    def pretty(self) -> str:
        """The one-line message followed by the graph text and a caret under the column."""
        if self.column is None or not self.text:
            return str(self)
        line = self.text.replace("\n", " ")
        return f"{self}\n  {line}\n  {' ' * self.column}^"


class OptionError(UsageError):
    """An unknown, missing or ill-typed option of a stage or command."""


class PluginError(DtganError):
    """A plugin that breaks the rules (duplicate stage name, bad registration)."""


class MediaError(DtganError):
    """A media file that is missing, unreadable, empty, or in a format we refuse."""


class EncodeError(DtganError):
    """ffmpeg failed while writing an output."""


class CheckpointError(DtganError):
    """A checkpoint that is missing, corrupt, or does not match the expected format."""


class ConfigError(UsageError):
    """A training or evaluation config that is invalid."""
