"""The data lake as the quality job sees it: list objects under a prefix, read Parquet columns, store a file.

One small interface over file://, s3:// and Azure Blob (the same URI forms and credentials as the transformer's
--sink_uri). Writing reuses the sink's writers (never overwrite, conditional puts).
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from transformer.sink.layout import join_key
from transformer.sink.writers import writer_for_uri

OUTCOMES_PREFIX = "_outcomes"  # '_' : engines that skip such folders (pyarrow, Spark, Hive) keep tables apart
QUALITY_PREFIX = "_quality"


def child_uri(uri: str, name: str) -> str:
    return uri.rstrip("/") + "/" + name


class Lake:
    def __init__(
        self, uri: str, *, s3_endpoint_url: str | None = None, azure_connection_string: str | None = None
    ):
        self.uri = uri.rstrip("/")
        self.s3_endpoint_url = s3_endpoint_url
        self.azure_connection_string = azure_connection_string or os.environ.get(
            "AZURE_STORAGE_CONNECTION_STRING"
        )
        parsed = urlparse(self.uri)
        self.scheme = parsed.scheme
        if self.scheme == "file":
            self.root = Path(unquote(parsed.path))
        elif self.scheme == "s3":
            import boto3

            self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
            self.client = boto3.client("s3", endpoint_url=s3_endpoint_url)
        elif self.scheme in ("http", "https"):
            from transformer.sink.azure import AzureBlobWriter

            writer = AzureBlobWriter.from_uri(self.uri, connection_string=self.azure_connection_string)
            self.container, self.prefix = writer.container, writer.prefix
        else:
            raise ValueError(
                f"unsupported lake URI {uri!r}: use file:///path, s3://bucket/prefix or an Azure Blob URL"
            )

    def require_exists(self) -> None:
        """A lake to read must be there: a mistyped file:// path would otherwise measure nothing and succeed."""
        if self.scheme == "file" and not self.root.is_dir():
            raise ValueError(
                f"lake {self.uri}: no such folder ({self.root}); give the transformer's --sink_uri"
            )
        if self.scheme == "s3":
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", ""))
                if code in ("404", "NoSuchBucket", "NotFound"):
                    raise ValueError(
                        f"lake {self.uri}: bucket {self.bucket} does not exist; give the transformer's --sink_uri"
                    ) from None
                raise ValueError(
                    f"lake {self.uri}: cannot read bucket {self.bucket} ({code}): check the credentials"
                ) from None
            except BotoCoreError as error:
                raise ValueError(f"lake {self.uri}: cannot reach the store: {error}") from None
        elif self.scheme in ("http", "https"):
            from azure.core.exceptions import AzureError

            try:
                exists = self.container.exists()
            except AzureError as error:
                raise ValueError(
                    f"lake {self.uri}: cannot read container {self.container.container_name}: "
                    f"{type(error).__name__}"
                ) from None
            if not exists:
                raise ValueError(
                    f"lake {self.uri}: container {self.container.container_name} does not exist; give the "
                    "transformer's --sink_uri"
                )

    def child(self, name: str) -> Lake:
        return Lake(
            child_uri(self.uri, name),
            s3_endpoint_url=self.s3_endpoint_url,
            azure_connection_string=self.azure_connection_string,
        )

    def list(self, under: str = "") -> list[str]:
        """Keys of the Parquet objects below `under` (relative to this lake's URI), sorted."""
        if self.scheme == "file":
            base = self.root / under if under else self.root
            if not base.exists():
                return []
            return sorted(
                p.relative_to(self.root).as_posix()
                for p in base.rglob("*.parquet")
                if not any(part.startswith(".") for part in p.relative_to(self.root).parts)
            )
        full = join_key(self.prefix, under)
        if full and not full.endswith("/"):
            full += "/"
        cut = len(self.prefix.strip("/")) + 1 if self.prefix.strip("/") else 0
        if self.scheme == "s3":
            keys = []
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            ):
                keys += [o["Key"][cut:] for o in page.get("Contents", []) if o["Key"].endswith(".parquet")]
            return sorted(keys)
        return sorted(
            b.name[cut:]
            for b in self.container.list_blobs(name_starts_with=full)
            if b.name.endswith(".parquet")
        )

    def folders(self, under: str = "") -> list[str]:
        """Names of the folders directly below `under` (one listing call with a delimiter on object stores)."""
        if self.scheme == "file":
            base = self.root / under if under else self.root
            return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        full = join_key(self.prefix, under)
        full = full + "/" if full and not full.endswith("/") else full
        if self.scheme == "s3":
            names = []
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full, Delimiter="/"
            ):
                names += [p["Prefix"][len(full) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
            return sorted(names)
        return sorted(
            item.name[len(full) :].rstrip("/")
            for item in self.container.walk_blobs(name_starts_with=full)
            if item.name.endswith("/")
        )

    def read(
        self, keys: list[str], columns: list[str] | None = None, filter=None, schema: pa.Schema | None = None
    ) -> pa.Table:
        """The objects as one table (only `columns`, rows passing `filter`); a column missing in older files is null."""
        if not keys:
            return schema.empty_table() if schema is not None else pa.table({})
        if self.scheme == "file":
            dataset = ds.dataset([str(self.root / k) for k in keys], format="parquet", schema=schema)
            return dataset.to_table(columns=columns, filter=filter)

        def fetch(key: str) -> pa.Table:
            table = (
                pq.read_table(io.BytesIO(self._get(key)), schema=schema)
                if schema is not None
                else pq.read_table(io.BytesIO(self._get(key)))
            )
            table = table.select(columns) if columns else table
            return table.filter(filter) if filter is not None else table

        with ThreadPoolExecutor(max_workers=8) as pool:  # object stores: latency-bound, overlap the GETs
            tables = list(pool.map(fetch, keys))
        return pa.concat_tables(tables, promote_options="default")

    def _get(self, key: str) -> bytes:
        if self.scheme == "s3":
            return self.client.get_object(Bucket=self.bucket, Key=join_key(self.prefix, key))["Body"].read()
        return self.container.download_blob(join_key(self.prefix, key)).readall()

    def put(self, key: str, local_path: Path) -> None:
        writer_for_uri(
            self.uri,
            s3_endpoint_url=self.s3_endpoint_url,
            azure_connection_string=self.azure_connection_string,
        ).put(key, local_path)
