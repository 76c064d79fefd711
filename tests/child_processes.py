"""What the tests of the sink's child processes (encoder, uploader) do to and ask of a real child."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from tests.sink_servers import wait_for


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def child_running(pid: int | None, module: str) -> int:
    """`pid`, after checking it is a live process running `python -m <module>`."""
    assert pid is not None, f"no {module} process is running"
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert module.encode() in cmdline and os.getpid() != pid
    return pid


def work_with_a_stuck_child(pid: int, caplog, work: Callable[[], None]) -> None:
    """Stop the child (alive, never answers), then `work`: its owner must give up after its 1 s deadline, say so,
    and kill the child rather than leave it stopped."""
    os.kill(pid, signal.SIGSTOP)
    try:
        with caplog.at_level(logging.WARNING, logger="transformer.sink"):
            work()
        assert any("no answer in 1 s" in r.getMessage() for r in caplog.records)
        wait_for(lambda: not alive(pid), timeout=10)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
