"""Where a lake URI points, parsed without the storage SDKs.

The writers build their clients from these; a server that uploads through a child process
(`--sink_uploader process`) checks its URI here at start-up, so a malformed one still stops the server, while
boto3 or the Azure SDK is only ever imported by the child.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse


@dataclass(frozen=True)
class FolderLocation:
    root: Path


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str


@dataclass(frozen=True)
class BlobLocation:
    account_url: str  # scheme://host[:port][/account] (the emulator's path-style URLs carry the account)
    container: str
    prefix: str


Location = FolderLocation | S3Location | BlobLocation


def folder_location(uri: str) -> FolderLocation:
    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        raise ValueError(f"file URI must be file:///absolute/path, got {uri!r}")
    return FolderLocation(Path(unquote(parsed.path)))


def s3_location(uri: str) -> S3Location:
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise ValueError(f"S3 URI must be s3://bucket/prefix, got {uri!r}")
    return S3Location(parsed.netloc, parsed.path.strip("/"))


def is_path_style(host: str) -> bool:
    """The emulator (and IP endpoints) put the account in the path: http://127.0.0.1:10000/devstoreaccount1/...
    `host` as urlparse's `hostname` gives it (an IPv6 address without its brackets). Batch reads with this rule too."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def blob_location(uri: str, connection_string: str | None = None) -> BlobLocation:
    parsed = urlparse(uri)
    parts = [p for p in parsed.path.split("/") if p]
    if is_path_style(parsed.hostname or ""):
        if not connection_string:
            raise ValueError(f"path-style blob URL {uri!r} (emulator) needs a connection string")
        account_path, parts = parts[:1], parts[1:]
    else:
        account_path = []
    if not parts:
        raise ValueError(f"blob URL must name a container: {uri!r}")
    account_url = f"{parsed.scheme}://{parsed.netloc}" + "".join(f"/{p}" for p in account_path)
    return BlobLocation(account_url, parts[0], "/".join(parts[1:]))


def lake_location(uri: str, *, azure_connection_string: str | None = None) -> Location:
    """`file:///path` | `s3://bucket/prefix` | `https://<account>.blob.core.windows.net/<container>/<prefix>`
    (or the emulator's path-style `http://host:port/<account>/<container>/<prefix>` with a connection string)."""
    scheme = urlparse(uri).scheme
    if scheme == "file":
        return folder_location(uri)
    if scheme == "s3":
        return s3_location(uri)
    if scheme in ("https", "http"):
        return blob_location(uri, azure_connection_string)
    raise ValueError(
        f"unsupported sink URI {uri!r}: use file:///path, s3://bucket/prefix or an Azure Blob https URL"
    )
