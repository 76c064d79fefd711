"""Where batch data lives: a local folder, S3 or Azure Blob, addressed by one URI.

Reads (listing, Parquet footers, row groups, CSV streams) go through pyarrow's filesystems, which fetch only the
byte ranges a shard needs. Writes go through the data-lake writers of `transformer/sink/` (the same boto3 /
azure-storage-blob code and credential chains as the online sink): their `put` is atomic and never replaces an
existing object, which is exactly the commit a restartable shard needs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from batch.errors import BatchError
from batch.failures import storage_failure
from batch.redaction import redact_text, redact_uri, strip_query
from transformer.sink.locations import blob_location, is_path_style
from transformer.sink.writers import Writer, writer_for_uri


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


def azure_account_and_root(uri: str, connection_string: str | None) -> tuple[str, str]:
    """(account, container/prefix) of a blob URL, by the sink's parser, which writes the output: reader and writer
    must agree on which URLs carry the account in their path (the emulator's, on any IP address or localhost:
    http://<host>:10000/<account>/<container>/<prefix>)."""
    try:
        blob = blob_location(uri, connection_string)
    except ValueError as error:
        hint = " (AZURE_STORAGE_CONNECTION_STRING)" if "connection string" in str(error) else ""
        raise BatchError(redact_text(str(error)) + hint) from None
    host = urlparse(uri).hostname or ""
    account = blob.account_url.rsplit("/", 1)[-1] if is_path_style(host) else host.split(".")[0]
    return account, "/".join([blob.container, *[p for p in blob.prefix.split("/") if p]])


def _check_azure_credential(uri: str) -> None:
    """A token from the SDK's default chain (workload identity, managed identity, environment, Azure CLI), which
    pyarrow's own chain mirrors: without one, a line to act on and exit 2 instead of pyarrow's abort."""
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import DefaultAzureCredential

    # The chain logs every credential it tried as a WARNING (many lines on stderr); the refusal below says it once.
    chain_log = logging.getLogger("azure.identity")
    level = chain_log.level
    chain_log.setLevel(logging.ERROR)
    try:
        with DefaultAzureCredential() as credential:
            credential.get_token("https://storage.azure.com/.default")
    except ClientAuthenticationError as error:
        first = (
            redact_text(str(error).strip().splitlines()[0]) if str(error).strip() else type(error).__name__
        )
        raise BatchError(
            f"{redact_uri(uri)}: no Azure credential ({first[:200]}); run with workload identity or a managed "
            "identity, or set AZURE_STORAGE_CONNECTION_STRING"
        ) from None
    finally:
        chain_log.setLevel(level)


class Location:
    """One folder-like place: `root` is its path inside `fs`; keys are relative to it, with '/' separators."""

    def __init__(self, uri: str, options: StorageOptions):
        self.uri = uri
        self.options = options
        self.fs, self.root, self._writer_uri = self._resolve(uri, options)

    @staticmethod
    def _resolve(uri: str, options: StorageOptions) -> tuple[pafs.FileSystem, str, str]:
        try:
            parsed = urlparse(uri)
            parsed.port  # noqa: B018 - parses the port: a malformed one raises here, not deep in an SDK
        except ValueError as error:
            raise BatchError(f"cannot parse the URI {redact_uri(uri)!r}: {error}") from None
        if parsed.scheme not in ("", "file") and (parsed.username or parsed.password):
            # Neither pyarrow nor the SDKs read credentials from a URI; and a URI is printed and stored.
            raise BatchError(
                f"{redact_uri(uri)}: credentials do not belong in the URI; the job uses the SDKs' credential "
                "chains (IRSA / Pod Identity, workload identity, AZURE_STORAGE_CONNECTION_STRING)"
            )
        if parsed.scheme in ("", "file"):
            path = Path(unquote(parsed.path) if parsed.scheme else uri).resolve()
            return pafs.LocalFileSystem(), str(path), path.as_uri()
        if parsed.scheme == "s3":
            if not parsed.netloc:
                raise BatchError(f"S3 URI must be s3://bucket/prefix, got {redact_uri(uri)!r}")
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            endpoint = options.s3_endpoint_url
            if endpoint and urlparse(endpoint).scheme not in ("http", "https"):
                # Arrow's complaint ("Invalid S3 connection scheme") came out as an unexpected error, exit 1:
                # retried by the Job, though only the setting can fix it.
                raise BatchError(
                    f"the S3 endpoint {redact_uri(endpoint)!r} (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / "
                    "--s3-endpoint-url) must be http(s)://host[:port]"
                )
            fs = pafs.S3FileSystem(
                endpoint_override=endpoint,
                region=region,
                scheme=urlparse(endpoint).scheme if endpoint else "https",
            )
            return fs, f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/"), uri
        if parsed.scheme in ("https", "http"):
            return Location._azure(uri, parsed, options)
        raise BatchError(
            f"unsupported URI {redact_uri(uri)!r}: use a local path, file://, s3://bucket/prefix or an Azure Blob URL"
        )

    @staticmethod
    def _azure(uri: str, parsed, options: StorageOptions) -> tuple[pafs.FileSystem, str, str]:
        account, root = azure_account_and_root(uri, options.azure_connection_string)
        if options.azure_connection_string:
            conn = _connection_string_parts(options.azure_connection_string)
            endpoint = urlparse(conn.get("BlobEndpoint", f"{parsed.scheme}://{parsed.netloc}"))
            custom = {}
            if not endpoint.netloc.endswith(".blob.core.windows.net"):
                if ":" in (endpoint.hostname or ""):
                    # pyarrow's Azure client parses host:port by the first colon and aborts the process on
                    # "[::1]:10000" (std::stoi): refuse it here, with a line the operator can act on.
                    raise BatchError(
                        f"the blob endpoint {endpoint.netloc} is an IPv6 address, which pyarrow's Azure client "
                        "cannot reach: use a host name or an IPv4 address"
                    )
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
            # It builds <account>.blob.core.windows.net from the account alone, and when it finds no credential it
            # aborts the whole process from C++ (exit 134, no message of ours): both are checked here first.
            if not (parsed.hostname or "").endswith(".blob.core.windows.net"):
                raise BatchError(
                    f"{redact_uri(uri)} is not an Azure Blob URL: expected "
                    "https://<account>.blob.core.windows.net/<container>/<prefix> (S3 is s3://bucket/prefix; an "
                    "emulator or another blob endpoint needs AZURE_STORAGE_CONNECTION_STRING with its BlobEndpoint)"
                )
            _check_azure_credential(uri)
            fs = pafs.AzureFileSystem(account_name=account)
        return fs, root, uri

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
        """Atomic, never replacing: when the key exists, `put` keeps it and returns (callers check whose it is).
        A failure a retry may cure is a StorageUnavailable (exit 1), any other a BatchError (exit 2)."""
        try:
            self.writer.put(key, local_path)
        except Exception as error:  # noqa: BLE001 - boto3, azure-core and OS errors alike end the shard cleanly
            raise storage_failure(f"cannot write {self.describe(key)}", error) from None

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
        """The stored bytes as they are (never decompressed here: the stream's metadata is the object's)."""
        return self.fs.open_input_stream(self.path(key), compression=None)

    def identity(self, key: str, handle: pa.NativeFile) -> str:
        """What changes whenever the file is rewritten, even with the same size: the object's ETag on S3 and Azure
        (pyarrow reads it with the object's properties), a local file's modification time and size."""
        etag = None
        if not isinstance(self.fs, pafs.LocalFileSystem):
            # pyarrow's keys are text (its docs show bytes); read either, or every object fell back to mtime+size,
            # which cannot tell apart two same-size exports written within one second.
            metadata = handle.metadata()
            etag = metadata.get("ETag") or metadata.get(b"ETag")
        if etag:
            return f"etag:{etag.decode(errors='replace') if isinstance(etag, bytes) else etag}"
        info = self.info(key)
        return f"mtime_ns:{info.mtime_ns}|size:{info.size}"

    @property
    def shown(self) -> str:
        """The URI as the job prints and stores it: no userinfo, no query string (presigned or SAS tokens)."""
        return redact_uri(self.uri)

    def describe(self, key: str) -> str:
        # Not join_key: it strips the leading "/" of a local path (/tmp/out/x named as tmp/out/x).
        return f"{strip_query(self.uri).rstrip('/')}/{key}" if key else self.shown
