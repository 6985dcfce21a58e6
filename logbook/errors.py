"""The errors logbook raises. The CLI turns each into one line on stderr and exit 1."""

from __future__ import annotations


class LogbookError(Exception):
    """Something the user can fix; `hint` says how."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class NoSuchRun(LogbookError):
    """A run name that the store does not hold."""


class BadQuery(LogbookError):
    """SQL that DuckDB refused."""


class ReadOnlyQuery(LogbookError):
    """SQL that would write or reach a file, or change a setting: queries only read the store."""


class StoreCorrupt(LogbookError):
    """A store that cannot be read."""


class ConfigError(LogbookError):
    """A malformed logbook.toml, flag or name."""
