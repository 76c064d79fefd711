"""Backends of the data lake, chosen by URI. A Writer stores one local file under a key, below its prefix.

Contract of `put`: when it returns, the object is durably stored; it never replaces an existing object
(an existing key means an earlier attempt of the same spool file already succeeded); it raises on failure.

The backends are imported only when chosen (boto3 and the Azure SDK are slow to import), and they import nothing
from here: the key helpers they share live in layout.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse


class Writer(Protocol):
    def put(self, key: str, local_path: Path) -> None: ...


def writer_for_uri(
    uri: str,
    *,
    s3_endpoint_url: str | None = None,
    azure_connection_string: str | None = None,
    azure_credential: object | None = None,
) -> Writer:
    """`file:///path` | `s3://bucket/prefix` | `https://<account>.blob.core.windows.net/<container>/<prefix>`
    (or the emulator's path-style `http://host:port/<account>/<container>/<prefix>` with a connection string)."""
    scheme = urlparse(uri).scheme
    if scheme == "file":
        from .local import LocalFolderWriter

        return LocalFolderWriter.from_uri(uri)
    if scheme == "s3":
        from .s3 import S3Writer

        return S3Writer.from_uri(uri, endpoint_url=s3_endpoint_url)
    if scheme in ("https", "http"):
        from .azure import AzureBlobWriter

        return AzureBlobWriter.from_uri(
            uri, connection_string=azure_connection_string, credential=azure_credential
        )
    raise ValueError(
        f"unsupported sink URI {uri!r}: use file:///path, s3://bucket/prefix or an Azure Blob https URL"
    )
