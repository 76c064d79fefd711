"""Errors that end a batch run with a clear message and a non-zero exit, never a traceback.

The exit code tells the Job what to do (kustomize/components/batch-job, docs/batch.md "Exit codes"): 2 is something
the operator must fix, which its podFailurePolicy does not retry; 1 is a failure a retry may not meet (a store or
the network down, throttled, a 5xx), which it retries.
"""

from __future__ import annotations


class BatchError(Exception):
    """Something the operator must fix (input, output, model or arguments); the shard stops without committing."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InputError(BatchError):
    """The input cannot be read as a CRM export: unreadable, empty, wrong columns or column types."""


class OutputConflict(BatchError):
    """The output location holds a different run (another model, plan, shard count or --reasons)."""


class StorageUnavailable(BatchError):
    """A store or the network failed in a way a retry may not meet: connection refused or reset, a timeout, a 5xx
    answer, throttling."""

    exit_code = 1


class Terminated(BaseException):
    """SIGTERM (pod deletion, the Job's deadline). A BaseException, like KeyboardInterrupt: the `except Exception` of
    the storage SDKs and of `Location.put` must not turn it into a storage error on the way out."""

    exit_code = 143  # 128 + SIGTERM, what the pod would report had the signal killed it

    def __init__(self) -> None:
        super().__init__("terminated")
        self.stored: list[str] = []  # objects of this shard already put when the signal came
        self.committed = False  # the shard's marker was written (or the shard was already done)

    @property
    def message(self) -> str:
        """What a retry will find, by how far the commit got."""
        if self.committed:
            return (
                "terminated (SIGTERM) after this shard committed: its scores are complete; the manifest is written "
                "by the last shard to finish or by a re-run"
            )
        if self.stored:
            return (
                f"terminated (SIGTERM) during the commit: {', '.join(self.stored)} stored, the marker not; a re-run "
                "keeps them (they carry this run's stamp) and completes the shard"
            )
        return "terminated (SIGTERM) before the commit: nothing of this shard was written; a re-run scores it again"
