"""User-facing errors: raised where bad input enters, printed as one line by the CLI."""

from __future__ import annotations

from pathlib import Path


class DenseMTLError(Exception):
    """An error the user can act on (bad file, bad config, bad argument); the CLI prints it as one line."""


class DataError(DenseMTLError):
    """A data file is missing, corrupt, of the wrong size or holds out-of-range values."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(DenseMTLError):
    """A configuration key or value is invalid."""
