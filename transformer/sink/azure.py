"""Azure Blob Storage. Workload identity through DefaultAzureCredential, or a connection string (azurite, dev)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlparse

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContentSettings, ExponentialRetry

from .layout import join_key

# Our own loop retries forever with backoff; the SDK only smooths over brief blips. Its default policy waits
# 15 s before the first retry, which would hide an outage from the failure metric for half a minute.
_CLIENT_OPTIONS = {
    "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=1),
    "connection_timeout": 5,
    "read_timeout": 30,
}


def _is_path_style(host: str) -> bool:
    """The emulator (and IP endpoints) put the account in the path: http://127.0.0.1:10000/devstoreaccount1/..."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class AzureBlobWriter:
    def __init__(self, service: BlobServiceClient, container: str, prefix: str = "") -> None:
        self.container = service.get_container_client(container)
        self.prefix = prefix

    @classmethod
    def from_uri(
        cls, uri: str, connection_string: str | None = None, credential: object | None = None
    ) -> AzureBlobWriter:
        parsed = urlparse(uri)
        parts = [p for p in parsed.path.split("/") if p]
        host = parsed.hostname or ""
        if _is_path_style(host):
            if not connection_string:
                raise ValueError(f"path-style blob URL {uri!r} (emulator) needs a connection string")
            account_path, parts = parts[:1], parts[1:]
        else:
            account_path = []
        if not parts:
            raise ValueError(f"blob URL must name a container: {uri!r}")
        container, prefix = parts[0], "/".join(parts[1:])
        if connection_string:
            service = BlobServiceClient.from_connection_string(connection_string, **_CLIENT_OPTIONS)
        else:
            if credential is None:
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential()
            account_url = f"{parsed.scheme}://{parsed.netloc}" + "".join(f"/{p}" for p in account_path)
            service = BlobServiceClient(account_url, credential=credential, **_CLIENT_OPTIONS)
        return cls(service, container, prefix)

    def put(self, key: str, local_path: Path) -> None:
        with open(local_path, "rb") as data:
            try:
                self.container.upload_blob(
                    join_key(self.prefix, key),
                    data,
                    overwrite=False,  # never replace an object
                    content_settings=ContentSettings(content_type="application/vnd.apache.parquet"),
                )
            except ResourceExistsError:
                return  # stored by an earlier attempt of this same spool file
