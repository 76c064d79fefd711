"""A model artifact folder from its storage URI, downloaded by kserve-storage in a child process.

kserve-storage is the library KServe's own storage initializer runs, so a card is found with the same URIs,
credentials and env vars as the predictor's booster. It imports the cloud SDKs of every scheme it knows (~30 MB of
RSS) and Python never gives that memory back: downloading in a child process keeps it out of a server that runs for
weeks. The child costs one interpreter start (~20 ms) on top of the same imports.

    python -m contract.artifact_fetch <uri> <target folder>   # prints the folder holding the files

A failure exits 1 with one line on stderr — the error's type and message, never a traceback.
"""

from __future__ import annotations

import os

# subprocess runs this module with our own interpreter and an argument list (bandit B404/B603 reviewed).
import subprocess  # nosec B404
import sys
import tempfile
from pathlib import Path

# The whole download: a booster is a few MB. A stuck download must not hold a pod in start-up forever.
DOWNLOAD_TIMEOUT_SECONDS = 600.0
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ArtifactFetchError(RuntimeError):
    """The download failed; the message is the child's one-line account of why."""


def fetch_artifact(uri: str, into: Path | None = None, timeout: float = DOWNLOAD_TIMEOUT_SECONDS) -> Path:
    """Local folder holding the artifact at `uri` (local path, file://, s3://, gs://, Azure Blob https://…).

    A local folder is used where it is; anything else is downloaded into `into` (a new temporary folder by default).
    """
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    if Path(uri).is_dir():
        return Path(uri)
    target = into or Path(tempfile.mkdtemp(prefix="lead-scoring-card-"))
    # The child must find this package however the parent found it (installed, or run from a checkout).
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(_PROJECT_ROOT), path) if p)}
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and module, an argument list  # nosec B603
            [sys.executable, "-m", "contract.artifact_fetch", uri, str(target)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ArtifactFetchError(f"cannot fetch {uri}: no answer within {timeout:g} s") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise ArtifactFetchError(f"cannot fetch {uri}: {lines[-1] if lines else f'exit {done.returncode}'}")
    return Path(done.stdout.strip().splitlines()[-1])


def _download(uri: str, target: str) -> str:
    from kserve_storage import Storage

    return Storage.download(uri, target)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m contract.artifact_fetch <uri> <target folder>", file=sys.stderr)
        return 2
    try:
        folder = _download(*argv)
    except Exception as exc:  # noqa: BLE001 - one line for the parent, whatever the SDK raised
        message = " ".join(str(exc).split()) or "no message"
        print(f"{type(exc).__name__}: {message[:500]}", file=sys.stderr)
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization (~0.1 s with the cloud SDKs loaded): the files are closed and nothing is left to
    # clean up, and the parent waits for this exit before it starts serving.
    os._exit(code)
