"""Backends of the data lake, chosen by URI. A Writer stores one local file under a key, below its prefix.

Contract of `put`: when it returns, the object is durably stored; it never replaces an existing object
(an existing key means an earlier attempt of the same spool file already succeeded); it raises on failure. It
returns True when this call stored the object and False when the key was already there, so a file re-put after a
crash is not counted twice.

The backends are imported only when chosen (boto3 and the Azure SDK are slow to import), and they import nothing
from here: the key helpers they share live in layout.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from .locations import FolderLocation, S3Location, lake_location


class Writer(Protocol):
    def put(self, key: str, local_path: Path) -> bool: ...


def writer_for_uri(
    uri: str,
    *,
    s3_endpoint_url: str | None = None,
    azure_connection_string: str | None = None,
    azure_credential: object | None = None,
) -> Writer:
    """The writer of a lake URI (the forms are in locations.lake_location)."""
    location = lake_location(uri, azure_connection_string=azure_connection_string)
    if isinstance(location, FolderLocation):
        from .local import LocalFolderWriter

        return LocalFolderWriter(location.root)
    if isinstance(location, S3Location):
        from .s3 import S3Writer

        return S3Writer(location.bucket, location.prefix, endpoint_url=s3_endpoint_url)
    from .azure import AzureBlobWriter

    return AzureBlobWriter.at(
        location, connection_string=azure_connection_string, credential=azure_credential
    )
