"""Azure Blob Storage. Workload identity through DefaultAzureCredential, or a connection string (azurite, dev)."""

from __future__ import annotations

from pathlib import Path

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContentSettings, ExponentialRetry

from .layout import join_key
from .locations import BlobLocation, blob_location

# Our own loop retries forever with backoff; the SDK only smooths over brief blips. Its default policy waits
# 15 s before the first retry, which would hide an outage from the failure metric for half a minute.
_CLIENT_OPTIONS = {
    "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=1),
    "connection_timeout": 5,
    "read_timeout": 30,
}


class AzureBlobWriter:
    def __init__(self, service: BlobServiceClient, container: str, prefix: str = "") -> None:
        self.container = service.get_container_client(container)
        self.prefix = prefix

    @classmethod
    def from_uri(
        cls, uri: str, connection_string: str | None = None, credential: object | None = None
    ) -> AzureBlobWriter:
        return cls.at(blob_location(uri, connection_string), connection_string, credential)

    @classmethod
    def at(
        cls, location: BlobLocation, connection_string: str | None = None, credential: object | None = None
    ) -> AzureBlobWriter:
        if connection_string:
            service = BlobServiceClient.from_connection_string(connection_string, **_CLIENT_OPTIONS)
        else:
            if credential is None:
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential()
            service = BlobServiceClient(location.account_url, credential=credential, **_CLIENT_OPTIONS)
        return cls(service, location.container, location.prefix)

    def put(self, key: str, local_path: Path) -> bool:
        with open(local_path, "rb") as data:
            try:
                self.container.upload_blob(
                    join_key(self.prefix, key),
                    data,
                    overwrite=False,  # never replace an object
                    content_settings=ContentSettings(content_type="application/vnd.apache.parquet"),
                )
            except ResourceExistsError as error:
                # Stored by an earlier attempt of this same spool file. The SDK raises this class for every 409:
                # ContainerBeingDeleted or OperationNotAllowedInCurrentState stored nothing, and must be retried.
                if _error_code(error) == "BlobAlreadyExists":
                    return False
                raise
        return True


def _error_code(error: ResourceExistsError) -> str | None:
    code = getattr(error, "error_code", None)  # set by azure-storage-blob from x-ms-error-code
    if code is None and error.response is not None:
        code = error.response.headers.get("x-ms-error-code")
    return str(code) if code is not None else None
