"""azurite-blob, Azure's Blob Storage emulator, as a child process on loopback: the real Blob REST API for the tests
and benchmarks that need one. `hack/install-tools.sh` installs it (npm) under .tools/."""

from __future__ import annotations

import contextlib
import shutil
import socket

# subprocess runs the installer script and the emulator with fixed argument lists (bandit B404/B603 reviewed).
import subprocess  # nosec B404
import time
from collections.abc import Iterator
from pathlib import Path

from hack.stack import free_port

REPO = Path(__file__).resolve().parents[1]
AZURITE_BIN = REPO / ".tools" / "node_modules" / ".bin" / "azurite-blob"
# The emulator's published development account (https://learn.microsoft.com/azure/storage/common/storage-use-azurite).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"azurite: {what} within {timeout:g} s")
        time.sleep(0.05)


class Azurite:
    """azurite-blob on 127.0.0.1; its data persists in `location` across stop()/start() (an outage, then a
    recovery, on the same port)."""

    def __init__(self, location: Path, port: int | None = None) -> None:
        self.location = Path(location)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @staticmethod
    def ensure_installed() -> Path:
        if not AZURITE_BIN.exists():
            subprocess.run(["bash", str(REPO / "hack" / "install-tools.sh")], check=True)  # noqa: S603,S607 # nosec
        if not shutil.which("node") and not AZURITE_BIN.exists():
            raise RuntimeError("azurite needs node and `bash hack/install-tools.sh`")
        return AZURITE_BIN

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT};"
        )

    def url(self, container: str, prefix: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}/{container}" + (
            f"/{prefix}" if prefix else ""
        )

    def start(self) -> Azurite:
        self.location.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(  # noqa: S603 # nosec B603
            [
                str(self.ensure_installed()),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--location",
                str(self.location),
                "--silent",
                # azure-storage-blob 12.31 sends an API version azurite 3.35 does not know yet.
                "--skipApiVersionCheck",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: port_open(self.port) or self.process.poll() is not None, 30, "listening")
        if self.process.poll() is not None:
            raise RuntimeError(f"azurite exited with {self.process.returncode}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        _wait(lambda: not port_open(self.port), 10, "port released")


@contextlib.contextmanager
def azurite_container(location: Path, container: str) -> Iterator[Azurite]:
    """An azurite holding an empty `container`, for the length of the block."""
    from azure.storage.blob import BlobServiceClient

    azurite = Azurite(location).start()
    try:
        BlobServiceClient.from_connection_string(azurite.connection_string).create_container(container)
        yield azurite
    finally:
        azurite.stop()
