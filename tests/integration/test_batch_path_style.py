"""The emulator's path-style blob URLs (http://<host>:<port>/<account>/<container>/…) on an address that is not
127.0.0.1: batch reads its input and writes its output with one parser (the sink's), so a run through the machine's
own IP works end to end, and an IPv6 literal, which pyarrow's Azure client cannot reach, is one clear line."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest

from hack.azurite import AZURITE_ACCOUNT, AZURITE_KEY
from tests.batch_export import crm_export, run_batch
from tests.sink_servers import free_port
from tests.support.azurite_hosts import AzuriteOnAllAddresses, outbound_ipv4


@pytest.fixture
def azurite_on_host_ip(tmp_path):
    host = outbound_ipv4()
    if host is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    server = AzuriteOnAllAddresses(tmp_path / "azurite", host).start()
    try:
        yield server
    finally:
        server.stop()


def test_a_run_through_the_machines_ip_reads_and_writes_the_same_blobs(azurite_on_host_ip, small_artifact):
    azurite = azurite_on_host_ip
    service = azurite.service_with("crm", "lake")
    sink = io.BytesIO()
    pq.write_table(crm_export(300, seed=71, planted=False)[0], sink, row_group_size=100)
    service.get_container_client("crm").upload_blob("nightly/crm.parquet", sink.getvalue())
    source, out = azurite.url("crm", "nightly"), azurite.url("lake", "run")
    assert source.startswith(f"http://{azurite.host}:")
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    for index in (0, 1):
        result = run_batch(
            "--input", source, "--output", out, "--model", str(small_artifact),
            "--shard-count", "2", "--shard-index", str(index), env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    lake = service.get_container_client("lake")
    names = sorted(b.name for b in lake.list_blobs(name_starts_with="run/"))
    assert "run/_manifest.json" in names and "run/scores/part-00001-of-00002.parquet" in names
    manifest = json.loads(lake.download_blob("run/_manifest.json").readall())
    assert manifest["rows_scored"] == 300 and manifest["input"] == source


def test_an_ipv6_emulator_url_is_one_clear_line(tmp_path, small_artifact):
    """Refused before any connection: pyarrow's Azure client aborts the process while parsing such an endpoint."""
    netloc = f"[::1]:{free_port()}"
    connection = f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint=http://{netloc}/{AZURITE_ACCOUNT};"
    result = run_batch(
        "--input", f"http://{netloc}/{AZURITE_ACCOUNT}/crm/nightly", "--output", str(tmp_path / "out"),
        "--model", str(small_artifact), env={"AZURE_STORAGE_CONNECTION_STRING": connection},
    )  # fmt: skip
    assert result.returncode == 2, (result.returncode, result.stderr)  # not -6 (SIGABRT)
    assert result.stderr == (
        f"batch: the blob endpoint {netloc} is an IPv6 address, which pyarrow's Azure client cannot reach: use a "
        "host name or an IPv4 address\n"
    )
