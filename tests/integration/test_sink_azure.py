"""The sink against a real Azure Blob API (azurite on a free port): layout, contents, outage and recovery."""

import base64
import http.server
import io
import re
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
from prometheus_client import REGISTRY

from tests.sink_servers import FEATURE_NAMES, expected_rows, sample_batch, sorted_rows, wait_for
from transformer.sink import SCHEMA_VERSION, ScoreSink, SinkConfig, lake_schema
from transformer.sink.azure import AzureBlobWriter

NAME = re.compile(
    r"^scores/model=lead-scoring/dt=\d{4}-\d\d-\d\d/hour=\d\d/\d{8}T\d{6}Z-[\w.-]+-[0-9a-f]{32}\.parquet$"
)


def container(server):
    client = BlobServiceClient.from_connection_string(server.connection_string).get_container_client("lake")
    if not client.exists():
        client.create_container()
    return client


def sink_config(server, tmp_path, **overrides) -> SinkConfig:
    values = dict(
        uri=server.url("lake", "scores"),
        spool_dir=tmp_path / "spool",
        azure_connection_string=server.connection_string,
        feature_names=FEATURE_NAMES,
        upload_retry_initial_seconds=0.05,
        upload_retry_max_seconds=0.5,
    )
    values.update(overrides)
    return SinkConfig(**values)


def read_lake(server) -> tuple[list[str], pa.Table]:
    client = container(server)
    names = [b.name for b in client.list_blobs(name_starts_with="scores/")]
    tables = []
    for name in names:
        body = client.download_blob(name).readall()
        metadata = pq.read_metadata(io.BytesIO(body)).metadata
        assert metadata[b"lead_scoring.schema_version"] == str(SCHEMA_VERSION).encode()
        tables.append(pq.read_table(io.BytesIO(body)))
    return names, pa.concat_tables(tables) if tables else lake_schema(FEATURE_NAMES).empty_table()


def test_records_arrive_with_schema_and_partitions(azurite, tmp_path):
    container(azurite)
    sink = ScoreSink(sink_config(azurite, tmp_path, flush_records=25))
    sink.start()
    batches = [sample_batch(10, seed=s) for s in range(6)] + [sample_batch(1, seed=7)]
    for batch in batches:
        assert sink.submit(batch)
    sink.close()
    names, table = read_lake(azurite)
    assert len(names) >= 2 and all(NAME.match(n) for n in names)
    assert table.schema.equals(lake_schema(FEATURE_NAMES), check_metadata=False)
    assert sorted_rows(table) == expected_rows(batches)


def test_every_record_arrives_after_an_outage(azurite, tmp_path):
    container(azurite)
    azurite.stop()
    sink = ScoreSink(sink_config(azurite, tmp_path))
    sink.start()
    before = REGISTRY.get_sample_value("lead_scoring_sink_upload_failures_total")
    batches = [sample_batch(5, seed=s) for s in range(4)]
    for batch in batches[:2]:
        sink.submit(batch)
    sink.flush()
    wait_for(lambda: REGISTRY.get_sample_value("lead_scoring_sink_upload_failures_total") > before)
    for batch in batches[2:]:
        assert sink.submit(batch)
    sink.flush()
    azurite.start()  # same port, same data folder
    wait_for(lambda: not sink.spool.pending())
    sink.close()
    _, table = read_lake(azurite)
    assert sorted_rows(table) == expected_rows(batches)


def test_an_existing_blob_is_never_overwritten(azurite, tmp_path):
    container(azurite)
    writer = AzureBlobWriter.from_uri(
        azurite.url("lake", "scores"), connection_string=azurite.connection_string
    )
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    writer.put("model=m/dt=2025-01-01/hour=00/a.parquet", first)
    writer.put("model=m/dt=2025-01-01/hour=00/a.parquet", second)  # the retry of an upload that had succeeded
    assert (
        container(azurite).download_blob("scores/model=m/dt=2025-01-01/hour=00/a.parquet").readall()
        == b"first"
    )


def test_path_style_url_needs_a_connection_string():
    with pytest.raises(ValueError, match="connection string"):
        AzureBlobWriter.from_uri("http://127.0.0.1:10000/devstoreaccount1/lake/scores")


class _BeingDeleted(http.server.BaseHTTPRequestHandler):
    """Blob storage while the container is being deleted: every write is a 409 that stored nothing."""

    def do_PUT(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = (
            b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ContainerBeingDeleted</Code>'
            b"<Message>The specified container is being deleted.</Message></Error>"
        )
        self.send_response(409)
        self.send_header("x-ms-error-code", "ContainerBeingDeleted")
        self.send_header("content-type", "application/xml")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_409_other_than_blob_already_exists_is_a_failure_not_a_stored_file(tmp_path):
    """The SDK raises ResourceExistsError for every 409; put() took each one for "stored by an earlier attempt", so the
    sink counted the records written and deleted the spool file while the container was being deleted."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BeingDeleted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        account = "devstoreaccount1"
        connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={base64.b64encode(b'k' * 32).decode()};"
            f"BlobEndpoint=http://127.0.0.1:{server.server_port}/{account};"
        )
        writer = AzureBlobWriter.from_uri(
            f"http://127.0.0.1:{server.server_port}/{account}/lake/scores",
            connection_string=connection_string,
        )
        source = tmp_path / "part.parquet"
        source.write_bytes(b"PAR1 stand-in")
        with pytest.raises(ResourceExistsError) as error:
            writer.put("model=m/dt=2026-12-07/hour=13/a.parquet", source)
        assert "ContainerBeingDeleted" in str(error.value)
    finally:
        server.shutdown()
