"""Errors that end a batch run with a clear message and a non-zero exit, never a traceback."""

from __future__ import annotations


class BatchError(Exception):
    """Something the operator must fix (input, output, model or arguments); the run stops before committing."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InputError(BatchError):
    """The input cannot be read as a CRM export: unreadable, empty, wrong columns or column types."""


class OutputConflict(BatchError):
    """The output location holds a different run (another model version, plan or shard count)."""
