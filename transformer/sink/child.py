"""One long-lived helper process of the sink, spoken to over an inherited socket.

The sink moves GIL-heavy work out of the server (encoding lake files: encoder.py; uploading them:
writer_process.py) into children that share nothing with the event loop. What they have in common lives here:
starting the child so it finds this package, one conversation at a time, a deadline on every answer, and what
happens when the child fails — it is killed (a stuck child gets no second chance to answer), the caller does the
work in the server instead, and a new child is tried only after a pause, so one that cannot live does not cost a
start per call. Answers are plain values, so the server never unpickles an exception class.

A child runs in its own process group: a Ctrl-C in a terminal, or a signal to the server's group, must not end it
while the server still flushes through it. It ends when the server closes (or loses) the socket.
"""

from __future__ import annotations

import os
import pickle
import socket

# subprocess runs our own modules with our own interpreter and an argument list (bandit B404/B603 reviewed).
import subprocess  # nosec B404
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

from .throttle import ThrottledLog

_PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ChildFailed(Exception):
    """The child did not answer (dead, stuck, never started): the caller does the work itself."""


class ChildProcess:
    def __init__(
        self,
        module: str,
        hello: object,
        name: str,
        instead: str,
        log,
        timeout: float,
        restart_after: float,
    ) -> None:
        self.module = module
        self.hello = hello  # the first message the child receives: what it needs to do its work
        self.name = name  # "sink encoder process", in the logs
        self.instead = instead  # what the caller does while there is no child, in the logs
        self.timeout = timeout
        self.restart_after = restart_after
        self.process: subprocess.Popen | None = None
        self._connection: Connection | None = None
        self._not_before = 0.0  # monotonic: no new child before this
        self._closed = False
        self._talking = threading.Lock()  # one conversation at a time; close() waits for it
        self._log = ThrottledLog(log)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> bool:
        """A child is running (started now if needed and allowed). False when the caller must do the work."""
        if self._connection is None and not self._closed and time.monotonic() >= self._not_before:
            try:
                self._start()
            except Exception as error:  # noqa: BLE001 - no child (fork refused, …): the caller does the work
                self._failed(f"cannot start: {error!r}")
        return self._connection is not None

    def ask(self, send: Callable[[Connection], None], timeout: float | None = None) -> tuple:
        """`send` writes one request; the child's answer. Raises ChildFailed (the child is gone then)."""
        with self._talking:
            if not self.start():
                raise ChildFailed("no child")
            connection = self._connection
            limit = self.timeout if timeout is None else timeout
            try:
                send(connection)
                if not connection.poll(limit):
                    raise TimeoutError(f"no answer in {limit:g} s")
                return connection.recv()
            except (OSError, EOFError, TimeoutError, pickle.PickleError) as error:
                self._failed(repr(error))
                raise ChildFailed(repr(error)) from error

    def close(self, wait: float = 1.0) -> None:
        """Ends the child: it exits when its socket closes. A conversation still running after `wait` seconds is
        cut short (the child is killed; its caller sees the failure)."""
        self._closed = True
        if not self._talking.acquire(timeout=wait):
            process = self.process
            if process is not None:
                process.kill()
            self._talking.acquire()
        try:
            self._stop()
        finally:
            self._talking.release()

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        # The child must find this package however the parent found it (installed, or run from a checkout).
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(_PROJECT_ROOT), path) if p)}
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module  # nosec B603
                [sys.executable, "-m", self.module, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
                process_group=0,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._connection = Connection(ours.detach())
        self._connection.send(self.hello)

    def _stop(self) -> None:
        connection, process = self._connection, self.process
        self._connection = self.process = None
        if connection is not None:
            connection.close()
        if process is not None:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _failed(self, why: str) -> None:
        self._log.warning(
            "%s failed (%s): %s, a new process in %g s", self.name, why, self.instead, self.restart_after
        )
        if self.process is not None:
            self.process.kill()  # stuck or half-dead: it gets no second chance to answer
        self._stop()
        self._not_before = time.monotonic() + self.restart_after


def error_answer(error: BaseException) -> tuple:
    """A failure as plain values (see raise_answer)."""
    if isinstance(error, OSError):
        if error.errno is None:
            return ("os_error", None, str(error), None)
        return ("os_error", error.errno, error.strerror, error.filename)
    return ("error", f"{type(error).__name__}: {error}")


def answered_error(answer: tuple) -> Exception:
    """The exception an `error_answer` stands for: OSError keeps its errno (the sink tells a full disk by it)."""
    kind, *values = answer
    if kind == "os_error":
        code, message, filename = values
        return OSError(code, message, filename) if code is not None else OSError(message)
    return RuntimeError(values[0])


def serve(connection: Connection, answer: Callable[[object], tuple], receive: Callable[[Connection], object]):
    """The child's loop: receive a request, send its answer, until the server closes the socket."""
    try:
        while True:
            connection.send(answer(receive(connection)))
    except (EOFError, OSError):
        return 0
