"""A real Prometheus Pushgateway on a free loopback port (installed by hack/install-tools.sh)."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from tests.sink_servers import wait_for
from tests.support.scrape import free_port


@contextmanager
def running_pushgateway() -> Iterator[str]:
    """Its base URL while it runs."""
    binary = shutil.which("prometheus-pushgateway")
    assert binary, "prometheus-pushgateway missing: run `bash hack/install-tools.sh`"
    url = f"http://127.0.0.1:{free_port()}"
    process = subprocess.Popen(  # noqa: S603 - a fixed binary on loopback
        # Debian's build persists to /var/lib/prometheus/pushgateway.data by default: every run would start with
        # the groups of earlier runs (and of any other test). Memory only.
        [binary, f"--web.listen-address={url.removeprefix('http://')}", "--persistence.file="],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def up() -> bool:
        try:
            urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()  # noqa: S310 - loopback
            return True
        except OSError:
            return False

    try:
        wait_for(up, timeout=20)
        yield url
    finally:
        process.terminate()
        process.wait(10)
