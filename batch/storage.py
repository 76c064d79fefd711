"""Where batch data lives: a local folder, S3 or Azure Blob, addressed by one URI.

Reads (listing, Parquet footers, row groups, CSV streams) go through pyarrow's filesystems, which fetch only the
byte ranges a shard needs. Writes go through the data-lake writers of `transformer/sink/` (the same boto3 /
azure-storage-blob code and credential chains as the online sink): their `put` is atomic and never replaces an
existing object, which is exactly the commit a restartable shard needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from batch.errors import BatchError
from transformer.sink.writers import Writer, writer_for_uri

# The emulator's blob endpoint: http://127.0.0.1:10000/<account>/<container>/<prefix> (path style).
_PATH_STYLE_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class StorageOptions:
    s3_endpoint_url: str | None = None
    azure_connection_string: str | None = None

    @classmethod
    def from_env(
        cls, s3_endpoint_url: str | None = None, azure_connection_string: str | None = None
    ) -> StorageOptions:
        # The same variables boto3 and the Azure SDK read: one setting serves both the reader and the writer.
        return cls(
            s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
            azure_connection_string or os.environ.get("AZURE_STORAGE_CONNECTION_STRING"),
        )


def _connection_string_parts(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(";") if "=" in part)


class Location:
    """One folder-like place: `root` is its path inside `fs`; keys are relative to it, with '/' separators."""

    def __init__(self, uri: str, options: StorageOptions):
        self.uri = uri
        self.options = options
        self.fs, self.root, self._writer_uri = self._resolve(uri, options)

    @staticmethod
    def _resolve(uri: str, options: StorageOptions) -> tuple[pafs.FileSystem, str, str]:
        parsed = urlparse(uri)
        if parsed.scheme in ("", "file"):
            path = Path(unquote(parsed.path) if parsed.scheme else uri).resolve()
            return pafs.LocalFileSystem(), str(path), path.as_uri()
        if parsed.scheme == "s3":
            if not parsed.netloc:
                raise BatchError(f"S3 URI must be s3://bucket/prefix, got {uri!r}")
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            endpoint = options.s3_endpoint_url
            fs = pafs.S3FileSystem(
                endpoint_override=endpoint,
                region=region,
                scheme=urlparse(endpoint).scheme if endpoint else "https",
            )
            return fs, f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/"), uri
        if parsed.scheme in ("https", "http"):
            return Location._azure(uri, parsed, options)
        raise BatchError(
            f"unsupported URI {uri!r}: use a local path, file://, s3://bucket/prefix or an Azure Blob URL"
        )

    @staticmethod
    def _azure(uri: str, parsed, options: StorageOptions) -> tuple[pafs.FileSystem, str, str]:
        parts = [p for p in parsed.path.split("/") if p]
        if parsed.hostname in _PATH_STYLE_HOSTS:
            if not options.azure_connection_string:
                raise BatchError(
                    f"path-style blob URL {uri!r} (emulator) needs AZURE_STORAGE_CONNECTION_STRING"
                )
            account, parts = (parts[0] if parts else ""), parts[1:]
        else:
            account = (parsed.hostname or "").split(".")[0]
        if not parts:
            raise BatchError(f"blob URL must name a container: {uri!r}")
        if options.azure_connection_string:
            conn = _connection_string_parts(options.azure_connection_string)
            endpoint = urlparse(conn.get("BlobEndpoint", f"{parsed.scheme}://{parsed.netloc}"))
            custom = {}
            if not endpoint.netloc.endswith(".blob.core.windows.net"):
                # An emulator serves blob and DFS (hierarchical namespace probe) APIs on one endpoint.
                custom = {
                    "blob_storage_authority": endpoint.netloc,
                    "blob_storage_scheme": endpoint.scheme,
                    "dfs_storage_authority": endpoint.netloc,
                    "dfs_storage_scheme": endpoint.scheme,
                }
            fs = pafs.AzureFileSystem(
                account_name=conn.get("AccountName", account), account_key=conn.get("AccountKey"), **custom
            )
        else:
            # No key: arrow's default credential chain (workload identity on AKS, like the sink's DefaultAzureCredential).
            fs = pafs.AzureFileSystem(account_name=account)
        return fs, "/".join(parts), uri

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    @cached_property
    def writer(self) -> Writer:
        return writer_for_uri(
            self._writer_uri,
            s3_endpoint_url=self.options.s3_endpoint_url,
            azure_connection_string=self.options.azure_connection_string,
        )

    def put(self, key: str, local_path: Path) -> None:
        """Atomic, never replacing: an existing key means an earlier attempt already committed it."""
        try:
            self.writer.put(key, local_path)
        except Exception as error:  # noqa: BLE001 - boto3, azure-core and OS errors alike end the shard cleanly
            text = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise BatchError(f"cannot write {self.describe(key)}: {text}") from None

    def info(self, key: str = "") -> pafs.FileInfo:
        return self.fs.get_file_info(self.path(key))

    def exists(self, key: str) -> bool:
        return self.info(key).type == pafs.FileType.File

    def list_files(self, key: str = "") -> list[tuple[str, int]]:
        """(key, size) of every file below `key`, recursively, sorted; a missing folder is empty."""
        base = self.path(key)
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        found = []
        for item in self.fs.get_file_info(selector):
            if item.type == pafs.FileType.File:
                relative = item.path[len(self.root) :].lstrip("/")
                found.append((relative, item.size or 0))
        return sorted(found)

    def read_bytes(self, key: str) -> bytes:
        with self.fs.open_input_stream(self.path(key)) as stream:
            return stream.read()

    def open_input_file(self, key: str) -> pa.NativeFile:
        return self.fs.open_input_file(self.path(key))

    def open_input_stream(self, key: str) -> pa.NativeFile:
        return self.fs.open_input_stream(self.path(key))

    def describe(self, key: str) -> str:
        # Not join_key: it strips the leading "/" of a local path (/tmp/out/x named as tmp/out/x).
        return f"{self.uri.rstrip('/')}/{key}" if key else self.uri
