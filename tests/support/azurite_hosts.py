"""azurite listening on every address of the machine, reached through an address that is not 127.0.0.1: the
emulator's path-style URLs (http://<host>:<port>/<account>/<container>/…) with an IPv6 literal or the machine's
own IP, as a Kubernetes Service IP or a docker-compose network would give them."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from hack.azurite import AZURITE_ACCOUNT, AZURITE_KEY
from tests.sink_servers import AzuriteServer, wait_for


def outbound_ipv4() -> str | None:
    """The address this machine's default route leaves from (a UDP connect sends nothing), if not loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # TEST-NET-2: never answered, only routed
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address  # noqa: S104


def reachable(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class AzuriteOnAllAddresses(AzuriteServer):
    """azurite-blob bound to `::` (every IPv4 and IPv6 address); URLs and the connection string name `host`."""

    def __init__(self, location: Path, host: str) -> None:
        super().__init__(location)
        self.host = host

    @property
    def _netloc(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://{self._netloc}/{AZURITE_ACCOUNT};"
        )

    def url(self, container: str, prefix: str = "") -> str:
        return f"http://{self._netloc}/{AZURITE_ACCOUNT}/{container}" + (f"/{prefix}" if prefix else "")

    def start(self) -> AzuriteOnAllAddresses:
        self.location.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(  # noqa: S603
            [
                str(self.ensure_installed()),
                "--blobHost",
                "::",
                "--blobPort",
                str(self.port),
                "--location",
                str(self.location),
                "--silent",
                "--skipApiVersionCheck",  # as hack/azurite.py: the SDK's API version is newer than azurite's
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: reachable(self.host, self.port) or self.process.poll() is not None, timeout=30)
        if self.process.poll() is not None:
            raise RuntimeError(f"azurite exited with {self.process.returncode}")
        return self
