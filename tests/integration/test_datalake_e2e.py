"""Issue 4 end to end: scored leads reach the data lake through the real transformer process.

Each test starts its own transformer (in-process booster, no predictor) with sink flags, scores real requests over
V1 REST, V2 REST and V2 gRPC, and reads the lake back with pyarrow: file://, moto's S3 server and azurite.
Outages are real (the storage server is stopped and restarted on the same port), crashes are real (SIGKILL).
"""

from __future__ import annotations

import asyncio
import io
import re
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest

from contract.features import FEATURE_NAMES
from hack.stack import start_transformer
from predictor.synthetic import as_records, sample_features
from tests.sink_servers import free_port, wait_for
from tests.support import scrape
from tests.support.leads import filled
from transformer.sink import SCHEMA_VERSION, lake_schema

KEY_NAME = "crm-e2e"
V1 = "/v1/models/lead-scoring:predict"
V2 = "/v2/models/lead-scoring/infer"
OBJECT_KEY = re.compile(
    r"^model=lead-scoring/dt=(\d{4}-\d\d-\d\d)/hour=(\d\d)/\d{8}T\d{6}Z-[\w.-]+-[0-9a-f]{32}\.parquet$"
)
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}
BUCKET, CONTAINER, PREFIX = "lake", "lake", "scores"
DEADLINE = 45.0  # only guards against hanging; every wait polls


# ---- the lake: where it is and how to read it back ---------------------------------------------------------


class Lake:
    """One backend as the transformer sees it (flags + env) and as a reader sees it (objects by key)."""

    def __init__(self, kind: str, tmp_path: Path, server=None) -> None:
        self.kind, self.server = kind, server
        if kind == "file":
            self.root = tmp_path / "lake"
            self.root.mkdir()
            self.args, self.env = ["--sink_uri", self.root.as_uri()], {}
        elif kind == "s3":
            server.client().create_bucket(Bucket=BUCKET)  # the writers never create buckets
            self.args = [
                "--sink_uri",
                f"s3://{BUCKET}/{PREFIX}",
                "--sink_s3_endpoint_url",
                server.endpoint_url,
            ]
            self.env = dict(AWS_ENV)
        else:
            self._container().create_container()
            self.args = ["--sink_uri", server.url(CONTAINER, PREFIX)]
            self.env = {"AZURE_STORAGE_CONNECTION_STRING": server.connection_string}

    @classmethod
    def unreachable_s3(cls) -> Lake:
        lake = cls.__new__(cls)
        lake.kind, lake.server, lake.env = "s3", None, dict(AWS_ENV)
        lake.args = [
            "--sink_uri",
            f"s3://{BUCKET}/{PREFIX}",
            "--sink_s3_endpoint_url",
            f"http://127.0.0.1:{free_port()}",
        ]
        return lake

    def _container(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.server.connection_string).get_container_client(
            CONTAINER
        )

    def objects(self) -> dict[str, bytes]:
        """Every stored object, by its key below the prefix."""
        if self.kind == "file":
            return {
                p.relative_to(self.root).as_posix(): p.read_bytes()
                for p in self.root.rglob("*")
                if p.is_file() and not p.name.startswith(".")
            }
        if self.kind == "s3":
            client = self.server.client()
            listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/").get("Contents", [])
            return {
                o["Key"][len(PREFIX) + 1 :]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
                for o in listed
            }
        container = self._container()
        return {
            b.name[len(PREFIX) + 1 :]: container.download_blob(b.name).readall()
            for b in container.list_blobs(name_starts_with=f"{PREFIX}/")
        }

    def record_count(self) -> int:
        return sum(pq.read_metadata(io.BytesIO(data)).num_rows for data in self.objects().values())

    def read(self, mirror: Path) -> tuple[pa.Table, dict[str, bytes]]:
        """Check every object's key and file metadata, then read them all as one Hive-partitioned dataset."""
        objects = self.objects()
        expected_schema = lake_schema(FEATURE_NAMES)
        for key, data in objects.items():
            match = OBJECT_KEY.match(key)
            assert match, f"object key {key!r} breaks the documented layout"
            table = pq.read_table(io.BytesIO(data))
            assert table.schema.equals(expected_schema), (
                f"{key}: schema differs from version {SCHEMA_VERSION}"
            )
            metadata = table.schema.metadata
            assert metadata[b"lead_scoring.schema_version"] == str(SCHEMA_VERSION).encode()
            assert metadata[b"lead_scoring.features_included"] == b"true"
            for scored_at in table.column("scored_at").to_pylist():
                assert (f"{scored_at:%Y-%m-%d}", f"{scored_at:%H}") == match.groups(), (
                    f"{key}: wrong partition"
                )
            target = mirror / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        partitions = ds.partitioning(
            pa.schema([("model", pa.string()), ("dt", pa.string()), ("hour", pa.string())]), flavor="hive"
        )
        table = ds.dataset(mirror, format="parquet", partitioning=partitions).to_table()
        return table, objects


@pytest.fixture
def file_lake(tmp_path):
    return Lake("file", tmp_path)


@pytest.fixture
def s3_lake(moto_s3, tmp_path):
    return Lake("s3", tmp_path, moto_s3)


@pytest.fixture
def azure_lake(azurite, tmp_path):
    return Lake("azure", tmp_path, azurite)


# ---- the transformer and its clients -------------------------------------------------------------------------


@pytest.fixture
def launch(artifact, logs_dir, api_key, tmp_path):
    """Start transformers (in-process booster) with sink flags; stop whatever is still running at the end."""
    started = []

    def start(lake: Lake, *args: str, spool: Path | None = None, ready: bool = True):
        spool = spool or tmp_path / "spool"
        extra = [
            *lake.args,
            "--sink_spool_dir",
            str(spool),
            "--sink_flush_seconds",
            "0.2",
            "--drain_seconds",
            "3",
            *args,
        ]
        server = start_transformer(
            artifact, logs_dir, api_keys=f"{KEY_NAME}:{api_key}", extra_args=extra, env=lake.env
        )
        started.append(server)
        server.spool = spool
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop(signal.SIGKILL)  # the tests that need a graceful stop do it themselves


class Sent:
    """What the client sent and what it was answered, to compare with the lake row by row."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], dict] = {}

    def add(
        self, request_id: str, protocol: str, form: str, ids: list[str], features: np.ndarray, scores, tiers
    ) -> None:
        for row, lead_id in enumerate(ids):
            self.rows[(request_id, row)] = {
                "lead_id": lead_id,
                "protocol": protocol,
                "request_form": form,
                "score": np.float32(scores[row]),
                "tier": tiers[row],
                "features": [None if np.isnan(v) else float(v) for v in features[row].astype(np.float32)],
            }

    def __len__(self) -> int:
        return len(self.rows)


def leads(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    x = sample_features(n, seed=seed)
    assert np.isnan(x).any(), "the sample must carry missing features"
    return x, [f"lead-{seed}-{i}" for i in range(n)]


def score_v1(server, key: str, sent: Sent, n: int, seed: int) -> httpx.Response:
    x, ids = leads(n, seed)
    rid = f"v1-{uuid.uuid4().hex}"
    response = httpx.post(
        server.url + V1,
        json={"instances": as_records(x, ids)},
        headers={"x-api-key": key, "x-request-id": rid},
        timeout=20,
    )
    if response.status_code == 200:
        predictions = response.json()["predictions"]
        assert [p["lead_id"] for p in predictions] == ids
        sent.add(
            rid,
            "rest",
            "v1_instances",
            ids,
            x,
            [p["score"] for p in predictions],
            [p["tier"] for p in predictions],
        )
    return response


def score_v2_rest_tensor(server, key: str, sent: Sent, n: int, seed: int) -> httpx.Response:
    x, ids = leads(n, seed)
    x = filled(x)
    rid = f"v2rest-{uuid.uuid4().hex}"
    body = {
        "inputs": [
            {"name": "leads", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()},
            {"name": "lead_id", "datatype": "BYTES", "shape": [n], "data": ids},
        ]
    }
    response = httpx.post(
        server.url + V2, json=body, headers={"x-api-key": key, "x-request-id": rid}, timeout=20
    )
    if response.status_code == 200:
        outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
        assert outputs["lead_id"] == ids
        sent.add(rid, "rest", "v2_tensor", ids, x, outputs["score"], outputs["tier"])
    return response


def score_v2_grpc_tensor(server, key: str, sent: Sent, n: int, seed: int) -> None:
    x, ids = leads(n, seed)  # NaN travels in binary FP32
    rid = f"grpc-{uuid.uuid4().hex}"
    tensor = InferInput("leads", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x.astype(np.float32), binary_data=True)
    id_input = InferInput("lead_id", [n], "BYTES")
    id_input.set_data_from_numpy(np.array([i.encode() for i in ids], dtype=object), binary_data=True)

    async def call():
        client = InferenceGRPCClient(server.grpc_target, retries=0)
        try:
            return await client.infer(
                InferRequest("lead-scoring", [tensor, id_input]),
                headers=[("x-api-key", key), ("x-request-id", rid)],
            )
        finally:
            await client.close()

    outputs = {o.name: o.as_numpy() for o in asyncio.run(call()).outputs}
    decode = lambda values: [v.decode() if isinstance(v, bytes) else str(v) for v in values]  # noqa: E731
    assert decode(outputs["lead_id"]) == ids
    sent.add(rid, "grpc", "v2_tensor", ids, x, outputs["score"].tolist(), decode(outputs["tier"]))


def metric(server, name: str, **labels: str) -> float:
    return scrape.metric(server.url, name, **labels)


def spooled_records(spool: Path) -> int:
    """Records in complete spool files (temp files start with a dot)."""
    return sum(pq.read_metadata(p).num_rows for p in spool.rglob("*.parquet") if not p.name.startswith("."))


# ---- the comparison ------------------------------------------------------------------------------------------


def assert_lake_holds(lake: Lake, sent: Sent, key: str, mirror: Path, card, since: datetime) -> None:
    """Every sent lead exactly once (after dedupe nothing was lost), with the answered scores and what was sent."""
    table, objects = lake.read(mirror)
    for name, data in objects.items():
        assert key.encode() not in data, f"the API key itself leaked into {name}"
    rows = table.to_pylist()
    for row in rows:
        for column, value in row.items():
            assert not (isinstance(value, str) and key in value), f"the API key leaked into column {column}"
    by_key: dict[tuple[str, int], dict] = {}
    for row in rows:
        by_key.setdefault((row["request_id"], row["row"]), row)
    assert set(by_key) == set(sent.rows), "the lake must hold exactly the scored leads"
    # The writers refuse to overwrite and every file has a unique name: no duplicates either.
    assert len(rows) == len(sent), "duplicate (request_id, row) in the lake"
    feature_columns = [f"f_{name}" for name in FEATURE_NAMES]
    now = datetime.now(UTC)
    for dedupe_key, expected in sent.rows.items():
        row = by_key[dedupe_key]
        assert row["lead_id"] == expected["lead_id"]
        assert np.float32(row["score"]) == expected["score"], dedupe_key
        assert row["tier"] == expected["tier"]
        assert row["bucket"] == "EDCBA".index(row["tier"]) + 1
        assert row["api_key_name"] == KEY_NAME
        assert row["protocol"] == expected["protocol"]
        assert row["request_form"] == expected["request_form"]
        assert [row[c] for c in feature_columns] == expected["features"], f"features of {dedupe_key}"
        assert row["model_name"] == "lead-scoring" and row["model"] == "lead-scoring"
        assert row["model_version"] == card.version
        assert row["schema_version"] == SCHEMA_VERSION
        assert since <= row["scored_at"] <= now
        assert (row["dt"], row["hour"]) == (f"{row['scored_at']:%Y-%m-%d}", f"{row['scored_at']:%H}")
        assert row["latency_ms"] > 0


def children(pid: int) -> list[int]:
    """The live child processes of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                found.append(int(entry.name))
    return found


def wait_until_stored(lake: Lake, count: int) -> None:
    wait_for(lambda: lake.record_count() >= count, timeout=DEADLINE, interval=0.3)


# ---- 1. every protocol and request form, in every backend ----------------------------------------------------


@pytest.mark.parametrize("lake_fixture", ["file_lake", "s3_lake", "azure_lake"])
def test_scored_leads_reach_the_lake_with_the_documented_schema(
    lake_fixture, request, launch, api_key, card, tmp_path
):
    lake = request.getfixturevalue(lake_fixture)
    since = datetime.now(UTC)
    server = launch(lake)
    sent = Sent()
    assert score_v1(server, api_key, sent, 7, seed=101).status_code == 200
    assert score_v2_rest_tensor(server, api_key, sent, 5, seed=102).status_code == 200
    score_v2_grpc_tensor(server, api_key, sent, 6, seed=103)
    assert len(sent) == 18
    wait_until_stored(lake, len(sent))
    assert_lake_holds(lake, sent, api_key, tmp_path / "mirror", card, since)
    assert metric(server, "lead_scoring_sink_records_written_total") == len(sent)


# ---- 2. storage unreachable for a while, then back -----------------------------------------------------------


@pytest.mark.parametrize("lake_fixture", ["s3_lake", "azure_lake"])
def test_an_outage_of_the_storage_loses_nothing_and_scoring_goes_on(
    lake_fixture, request, launch, api_key, card, tmp_path
):
    lake = request.getfixturevalue(lake_fixture)
    since = datetime.now(UTC)
    server = launch(lake, "--sink_flush_records", "5")
    sent = Sent()
    assert score_v1(server, api_key, sent, 3, seed=200).status_code == 200
    wait_until_stored(lake, len(sent))  # the path works before the outage

    lake.server.stop()
    for seed in range(201, 209):
        send = score_v1 if seed % 2 else score_v2_rest_tensor
        response = send(server, api_key, sent, 4, seed=seed)
        assert response.status_code == 200, response.text  # scoring never waits for the lake
    wait_for(lambda: metric(server, "lead_scoring_sink_upload_failures_total") > 0, timeout=DEADLINE)
    wait_for(lambda: spooled_records(server.spool) == len(sent) - 3, timeout=DEADLINE)
    lake.server.start()  # same port, same data

    wait_until_stored(lake, len(sent))
    wait_for(lambda: spooled_records(server.spool) == 0, timeout=DEADLINE)
    assert_lake_holds(lake, sent, api_key, tmp_path / "mirror", card, since)


# ---- 3. a crash (SIGKILL) with files on the spool ------------------------------------------------------------


def test_spool_left_by_a_killed_transformer_is_uploaded_by_the_next(s3_lake, launch, api_key, card, tmp_path):
    lake = s3_lake
    since = datetime.now(UTC)
    lake.server.stop()  # storage down: whatever is scored stays on the spool
    first = launch(lake, "--sink_flush_records", "4")
    sent = Sent()
    for seed in range(300, 306):
        assert score_v1(first, api_key, sent, 3, seed=seed).status_code == 200
    score_v2_grpc_tensor(first, api_key, sent, 5, seed=306)
    wait_for(lambda: spooled_records(first.spool) == len(sent), timeout=DEADLINE)

    first.process.send_signal(signal.SIGKILL)
    first.process.wait(20)
    assert first.process.returncode == -signal.SIGKILL
    assert spooled_records(first.spool) == len(sent)

    lake.server.start()
    assert lake.record_count() == 0, "nothing could be uploaded before the crash"
    second = launch(lake, "--sink_flush_records", "4", spool=first.spool)
    wait_until_stored(lake, len(sent))
    wait_for(lambda: spooled_records(second.spool) == 0, timeout=DEADLINE)
    assert_lake_holds(lake, sent, api_key, tmp_path / "mirror", card, since)


def test_answered_requests_in_memory_survive_a_sigkill(file_lake, launch, api_key, card, tmp_path):
    """No flush has happened when the process is killed: every answered request is only in memory and in the
    journal. The next start on the same spool spools the journal, so the lake holds each of them once."""
    since = datetime.now(UTC)
    first = launch(file_lake, "--sink_flush_seconds", "3600")
    sent = Sent()
    for seed in range(320, 326):
        assert score_v1(first, api_key, sent, 3, seed=seed).status_code == 200
    assert score_v2_rest_tensor(first, api_key, sent, 4, seed=326).status_code == 200
    score_v2_grpc_tensor(first, api_key, sent, 5, seed=327)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(20)
    assert spooled_records(first.spool) == 0 and file_lake.record_count() == 0, "nothing was flushed"

    second = launch(file_lake, spool=first.spool)
    wait_until_stored(file_lake, len(sent))
    assert "journaled by an earlier process" in second.log_tail(200)
    assert second.stop() == 0
    assert file_lake.record_count() == len(sent), "each answered lead once"
    assert_lake_holds(file_lake, sent, api_key, tmp_path / "mirror", card, since)


# ---- 4. SIGTERM flushes what is still in memory ----------------------------------------------------------------


@pytest.mark.parametrize("encoder", ["thread", "process"])
def test_sigterm_flushes_buffered_records_to_the_lake(encoder, file_lake, launch, api_key, card, tmp_path):
    since = datetime.now(UTC)
    server = launch(
        file_lake,
        "--sink_flush_seconds",
        "60",
        "--sink_flush_records",
        "100000",
        "--drain_seconds",
        "10",
        "--sink_encoder",
        encoder,
    )
    helpers = children(server.process.pid)
    assert len(helpers) == (encoder == "process")  # the lake's encoder process, started with the sink
    sent = Sent()
    for seed in range(400, 404):
        assert score_v1(server, api_key, sent, 5, seed=seed).status_code == 200
    score_v2_grpc_tensor(server, api_key, sent, 4, seed=404)
    # Neither a size nor an age flush is due: the records are only in memory.
    wait_for(lambda: metric(server, "lead_scoring_sink_queue_depth") == len(sent), timeout=DEADLINE)
    assert file_lake.objects() == {} and spooled_records(server.spool) == 0

    server.process.send_signal(signal.SIGTERM)
    server.process.wait(40)  # exits on its own; the fixture would SIGKILL only after this failed
    wait_for(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in helpers), timeout=10
    )  # none left behind
    assert file_lake.record_count() == len(sent)
    assert spooled_records(server.spool) == 0
    assert_lake_holds(file_lake, sent, api_key, tmp_path / "mirror", card, since)


# ---- 5. a full spool drops visibly, scoring goes on ----------------------------------------------------------


SPOOL_BUDGET = 50_000


def test_a_full_spool_drops_visibly_and_scoring_keeps_answering(launch, api_key, tmp_path):
    # S3 at a port where nothing listens: storage down for the whole test. A 5-record file with 50 features is
    # ~20 KB (mostly footer), so the budget holds two files and then the spool is full.
    dead = Lake.unreachable_s3()
    server = launch(dead, "--sink_flush_records", "5", "--sink_spool_max_bytes", str(SPOOL_BUDGET))
    sent = Sent()
    statuses = []
    for seed in range(500, 540):
        statuses.append(score_v1(server, api_key, sent, 5, seed=seed).status_code)
        if (
            seed % 5 == 4
            and metric(server, "lead_scoring_sink_dropped_records_total", reason="spool_full") > 0
        ):
            break
    wait_for(
        lambda: metric(server, "lead_scoring_sink_dropped_records_total", reason="spool_full") > 0,
        timeout=DEADLINE,
    )
    assert statuses and set(statuses) == {200}, statuses
    # Still answering after the drops began.
    assert score_v2_rest_tensor(server, api_key, sent, 5, seed=599).status_code == 200
    assert 0 < metric(server, "lead_scoring_sink_spool_bytes") <= SPOOL_BUDGET  # kept what fits, no more
    dropped = metric(server, "lead_scoring_sink_dropped_records_total", reason="spool_full")
    assert dropped % 5 == 0 and 0 < dropped < len(sent)  # whole requests, and not all of them
    # Every scored lead is accounted for: kept on the spool or counted as dropped.
    wait_for(
        lambda: (
            spooled_records(server.spool)
            + metric(server, "lead_scoring_sink_dropped_records_total", reason="spool_full")
            == len(sent)
        ),
        timeout=DEADLINE,
    )
    wait_for(lambda: "sink dropped" in server.log_path.read_text(errors="replace"), timeout=DEADLINE)
    log_line = next(line for line in server.log_path.read_text().splitlines() if "sink dropped" in line)
    assert "spool full" in log_line and api_key not in log_line


# ---- 5. the server owns the scoring id (schema v2) -----------------------------------------------------------


def test_requests_that_reuse_a_client_id_stay_apart_by_the_servers_scoring_id(
    launch, file_lake, api_key, tmp_path
):
    """A client with a fixed x-request-id: under v1's (request_id, row) dedupe its requests collapsed into one."""
    server = launch(file_lake)
    headers = {"x-api-key": api_key, "x-request-id": "fixed-client-id"}
    answered = []
    for seed in (501, 502):
        x, ids = leads(3, seed)
        response = httpx.post(
            server.url + V1, json={"instances": as_records(x, ids)}, headers=headers, timeout=20
        )
        assert response.status_code == 200
        body = response.json()
        assert body["scoring_id"] == response.headers["x-scoring-id"]
        assert uuid.UUID(body["scoring_id"]).version == 7
        assert response.headers["x-request-id"] == "fixed-client-id"
        answered.append((body["scoring_id"], ids))
    x, ids = leads(2, 503)
    v2 = httpx.post(
        server.url + V2,
        headers=headers,
        timeout=20,
        json={
            "inputs": [
                {
                    "name": "leads",
                    "datatype": "FP32",
                    "shape": list(x.shape),
                    "data": filled(x).ravel().tolist(),
                },
                {"name": "lead_id", "datatype": "BYTES", "shape": [2], "data": ids},
            ]
        },
    )
    assert v2.status_code == 200 and v2.json()["parameters"]["scoring_id"] == v2.headers["x-scoring-id"]
    answered.append((v2.headers["x-scoring-id"], ids))
    x, ids = leads(2, 504)
    tensor = InferInput("leads", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x.astype(np.float32), binary_data=True)
    id_input = InferInput("lead_id", [2], "BYTES")
    id_input.set_data_from_numpy(np.array([i.encode() for i in ids], dtype=object), binary_data=True)

    async def grpc_call():
        client = InferenceGRPCClient(server.grpc_target, retries=0)
        try:
            return await client.infer(
                InferRequest("lead-scoring", [tensor, id_input]),
                headers=[("x-api-key", api_key), ("x-request-id", "fixed-client-id")],
            )
        finally:
            await client.close()

    parameters = asyncio.run(grpc_call()).parameters
    grpc_id = parameters["scoring_id"]
    grpc_id = getattr(grpc_id, "string_param", grpc_id)  # an InferParameter over gRPC
    answered.append((grpc_id, ids))
    assert len({sid for sid, _ in answered}) == 4
    assert [sid for sid, _ in answered] == sorted(sid for sid, _ in answered), "UUIDv7 ids sort in time order"

    wait_until_stored(file_lake, 10)
    table, _ = file_lake.read(tmp_path / "mirror")
    rows = table.to_pylist()
    by_scoring = {(r["scoring_id"], r["row"]): r["lead_id"] for r in rows}
    assert by_scoring == {(sid, i): lead for sid, ids in answered for i, lead in enumerate(ids)}
    assert {r["request_id"] for r in rows} == {"fixed-client-id"}
    assert (
        len({(r["request_id"], r["row"]) for r in rows}) == 3 < len(rows) == 10
    )  # what the old key would keep
