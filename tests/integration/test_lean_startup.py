"""The split-mode transformer carries no more than it needs (issue 17): a real process, started as `make serve`
starts it, scores a request; the modules it imported are read back when it stops, the shared libraries it mapped
while it ran. pandas (imported by kserve, never used by us), pyarrow, xgboost and the cloud SDKs are ~15–150 MB of RSS
each: if one of them creeps back into the
start-up path, the RSS target (stock KServe transformer + 25 MB, docs/performance.md) is lost without anyone noticing.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import httpx
import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest

from hack.stack import start_predictor, start_transformer

# Written into a folder on PYTHONPATH, so the interpreter imports it at start-up: at exit it writes sys.modules out,
# one file per process (the server's children inherit PYTHONPATH and write their own).
_SITECUSTOMIZE = """
import atexit, os, sys

def _write_modules():
    with open(f"{os.environ['LEAD_SCORING_MODULES_OUT']}.{os.getpid()}", "w") as out:
        out.write("\\n".join(sorted(sys.modules)))

atexit.register(_write_modules)
"""

# Never needed by a split-mode transformer without a data lake and without reason codes.
HEAVY = (
    "pandas",
    "pyarrow",
    "xgboost",
    "scipy",
    "boto3",
    "botocore",
    "azure",
    "google.auth",
    "kubernetes_validate",
    "kubernetes",  # kserve.KServeClient's, built by no model server (lean_kserve.py)
    "kserve_storage",
    "pygments",  # with rich: httpx's command-line client, when dev tools installed them (lean_kserve.py)
    "rich",
)
HEAVY_LIBRARIES = ("libarrow", "libparquet", "libxgboost")


@pytest.fixture(scope="module")
def predictor(small_artifact, tmp_path_factory):
    server = start_predictor(small_artifact, tmp_path_factory.mktemp("predictor"))
    server.wait_ready()
    yield server
    server.stop()


def run_transformer(
    artifact: Path,
    predictor,
    tmp_path: Path,
    extra_args: list[str],
    env: dict[str, str] | None = None,
    reasons: bool = False,
) -> tuple[set[str], str]:
    """Start the transformer (split mode; in-process when `predictor` is None), score over REST (and ask for reason
    codes if `reasons`) and gRPC, stop it: (modules imported, /proc/<pid>/maps while serving), of the server process itself."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    modules_out = tmp_path / "modules.txt"
    key = secrets.token_hex(8)
    server = start_transformer(
        artifact,
        tmp_path,
        api_keys=f"lean:{key}",
        predictor=predictor.grpc_target if predictor is not None else None,
        protocol="grpc-v2",
        extra_args=extra_args + ["--drain_delay_seconds", "0"],
        env={**(env or {}), "PYTHONPATH": str(site), "LEAD_SCORING_MODULES_OUT": str(modules_out)},
    )
    try:
        server.wait_ready(path="/v2/models/lead-scoring/ready")
        body = {
            "inputs": [
                {"name": "leads", "datatype": "FP32", "shape": [1, 50], "data": np.full(50, 1.0).tolist()}
            ]
        }
        body["inputs"][0]["data"][0] = 120.0  # employee_count ≥ 1; every other feature accepts 1
        answer = httpx.post(
            f"{server.url}/v2/models/lead-scoring/infer",
            content=orjson.dumps(body),
            timeout=10,
            headers={"x-api-key": key, "content-type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
        if reasons:  # TreeSHAP: in split mode its first use loads xgboost
            explained = httpx.post(
                f"{server.url}/v2/models/lead-scoring/infer",
                content=orjson.dumps({**body, "parameters": {"reasons": 3}}),
                timeout=30,
                headers={"x-api-key": key, "content-type": "application/json"},
            )
            assert explained.status_code == 200, explained.text
            assert any(output["name"].startswith("reason") for output in explained.json()["outputs"])
        # KServe's own gRPC route (binary tensor, two leads: the lake repeats per-request values) takes its own path.
        leads = InferInput("leads", [2, 50], "FP32")
        leads.set_data_from_numpy(
            np.tile(np.array(body["inputs"][0]["data"], np.float32), (2, 1)), binary_data=True
        )
        assert len(grpc_infer(server.grpc_target, leads, key).outputs) >= 3
        maps = Path(f"/proc/{server.process.pid}/maps").read_text()
    finally:
        assert server.stop() == 0, server.log_tail()
    return modules_of(modules_out, server.process.pid), maps


def modules_of(modules_out: Path, pid: int) -> set[str]:
    return set(Path(f"{modules_out}.{pid}").read_text().split())


def grpc_infer(target: str, leads: InferInput, key: str):
    async def call():
        client = InferenceGRPCClient(target, retries=0, timeout=20)
        try:
            return await client.infer(InferRequest("lead-scoring", [leads]), headers=[("x-api-key", key)])
        finally:
            await client.close()

    return asyncio.run(call())


def lake_args(lake: Path, tmp_path: Path, encoder: str) -> list[str]:
    """A file:// data lake that cuts a file every 0.2 s, encoded in a thread of the server or in a child process."""
    return [
        "--sink_uri",
        lake.as_uri(),
        "--sink_spool_dir",
        str(tmp_path / "spool"),
        "--sink_flush_seconds",
        "0.2",
        "--sink_encoder",
        encoder,
    ]


def top_level(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def test_split_mode_without_a_data_lake_loads_no_pandas_pyarrow_xgboost_or_cloud_sdk(
    small_artifact, predictor, tmp_path
):
    modules, maps = run_transformer(small_artifact, predictor, tmp_path, [])
    assert "kserve" in modules and "transformer.serving.fast_path" in modules  # it is the real server
    assert [name for name in HEAVY if top_level(modules, name)] == []
    # The default loop is asyncio's own (transformer/serving/event_loop.py), logged from inside it.
    assert not top_level(modules, "uvloop")
    assert [line["event_loop"] for line in _log_lines(tmp_path) if line.get("msg") == "event loop"] == [
        "asyncio"
    ]
    assert [lib for lib in HEAVY_LIBRARIES if lib in maps] == []


def test_reason_codes_load_xgboosts_library_but_not_its_python_package(small_artifact, predictor, tmp_path):
    # The package would bring scipy, and pandas when it can (transformer/native_xgboost.py).
    modules, maps = run_transformer(small_artifact, predictor, tmp_path, [], reasons=True)
    assert "transformer.native_xgboost" in modules and "libxgboost" in maps
    assert [name for name in ("xgboost", "scipy", "pandas", "pyarrow") if top_level(modules, name)] == []


def test_in_process_mode_loads_xgboosts_library_alone_and_its_lake_child_keeps_pyarrow_out(
    small_artifact, tmp_path
):
    lake = tmp_path / "lake"
    modules, maps = run_transformer(
        small_artifact,
        None,
        tmp_path,
        lake_args(lake, tmp_path, "process"),
        reasons=True,
    )
    assert "transformer.predictors.inprocess" in modules and "libxgboost" in maps
    assert [name for name in ("xgboost", "scipy", "pandas", "pyarrow") if top_level(modules, name)] == []
    assert [lib for lib in ("libarrow", "libparquet") if lib in maps] == []
    assert len(list(lake.rglob("*.parquet"))) >= 1, "the requests were not recorded in the lake"


def test_a_file_data_lake_loads_pyarrow_but_no_pandas_cloud_sdk_or_xgboost(
    small_artifact, predictor, tmp_path
):
    lake = tmp_path / "lake"
    modules, maps = run_transformer(
        small_artifact,
        predictor,
        tmp_path,
        lake_args(lake, tmp_path, "thread"),
    )
    assert (
        top_level(modules, "pyarrow") and "libparquet" in maps
    )  # the lake writes Parquet: the check sees it
    assert [
        name for name in ("pandas", "xgboost", "boto3", "botocore", "azure") if top_level(modules, name)
    ] == []
    assert "pyarrow.compute" not in modules  # every kernel registered: ~9 MB (transformer/sink/columns.py)
    assert "libxgboost" not in maps
    assert list(lake.rglob("*.parquet")), "the request was not recorded in the lake"


def test_a_lake_encoded_in_a_child_process_keeps_pyarrow_out_of_the_server(
    small_artifact, predictor, tmp_path
):
    # --sink_encoder process: the child builds and encodes the files; the server only checks, partitions, commits and
    # uploads them, none of which needs pyarrow (~30 MB of RSS, docs/performance.md, eighth pass).
    lake = tmp_path / "lake"
    modules, maps = run_transformer(
        small_artifact,
        predictor,
        tmp_path,
        lake_args(lake, tmp_path, "process"),
    )
    assert "transformer.sink.sink" in modules  # the server ran the sink
    assert [name for name in HEAVY if top_level(modules, name)] == []
    assert [lib for lib in HEAVY_LIBRARIES if lib in maps] == []
    assert len(list(lake.rglob("*.parquet"))) >= 1, "the requests were not recorded in the lake"
    others = [set(path.read_text().split()) for path in tmp_path.glob("modules.txt.*")]
    children = [found for found in others if "kserve" not in found and "transformer.sink.transport" in found]
    assert len(children) == 1 and top_level(children[0], "pyarrow")  # the encoder child did the encoding


def test_a_card_from_s3_leaves_no_storage_sdk_in_the_server(small_artifact, predictor, moto_s3, tmp_path):
    # As deployed: the card comes from the predictor's storageUri. kserve-storage downloads it in a child process
    # (contract/artifact_fetch.py), so the server itself never holds kserve-storage, boto3 or botocore (~30 MB).
    s3 = moto_s3.client()
    s3.create_bucket(Bucket="models")
    for path in small_artifact.iterdir():
        s3.upload_file(str(path), "models", f"lead-scoring/v1/{path.name}")
    modules, maps = run_transformer(
        small_artifact,
        predictor,
        tmp_path,
        ["--model_card_uri", "s3://models/lead-scoring/v1/"],
        env={"AWS_ENDPOINT_URL": moto_s3.endpoint_url},
    )
    assert "transformer.serving.fast_path" in modules
    assert [name for name in HEAVY if top_level(modules, name)] == []
    assert [lib for lib in HEAVY_LIBRARIES if lib in maps] == []


def test_a_lake_encoded_and_uploaded_by_children_keeps_pyarrow_and_boto3_out_of_the_server(
    small_artifact, predictor, moto_s3, tmp_path
):
    # --sink_encoder process --sink_uploader process: the server's lake work is checks, partitions, commits and the
    # two conversations; pyarrow lives in the encoder child, boto3 in the upload child (docs/performance.md, ninth
    # pass).
    moto_s3.client().create_bucket(Bucket="lake")
    args = lake_args(tmp_path / "unused", tmp_path, "process")
    args[args.index("--sink_uri") + 1] = "s3://lake/scores"
    modules, maps = run_transformer(
        small_artifact,
        predictor,
        tmp_path,
        args + ["--sink_uploader", "process", "--sink_s3_endpoint_url", moto_s3.endpoint_url],
    )
    assert "transformer.sink.writer_process" in modules  # the server ran the upload child's parent side
    assert [name for name in HEAVY if top_level(modules, name)] == []
    assert [lib for lib in HEAVY_LIBRARIES if lib in maps] == []
    stored = moto_s3.client().list_objects_v2(Bucket="lake").get("Contents", [])
    assert stored, "the requests were not recorded in the lake"
    others = [set(path.read_text().split()) for path in tmp_path.glob("modules.txt.*")]
    # Run with -m, a child's own module is __main__: it is told by what it imported.
    uploaders = [found for found in others if top_level(found, "boto3")]
    assert (
        len(uploaders) == 1 and "transformer.sink.writers" in uploaders[0]
    )  # the upload child made the puts
    # It needs nothing of the scoring side: no pyarrow, no numpy (~12 MB), no KServe.
    assert [name for name in ("pyarrow", "numpy", "kserve") if top_level(uploaders[0], name)] == []


def test_event_loop_uvloop_serves_rest_grpc_and_the_grpc_hop_on_uvloop(small_artifact, predictor, tmp_path):
    # KServe's one-worker start ignores its own --event-loop; ours installs the loop before it (REST, then KServe's
    # gRPC server, both through the gRPC hop to the predictor, inside run_transformer).
    lake = tmp_path / "lake"
    modules, maps = run_transformer(
        small_artifact, predictor, tmp_path, ["--event-loop", "uvloop", *lake_args(lake, tmp_path, "thread")]
    )
    assert "uvloop.loop" in modules and "uvloop/loop." in maps
    # SIGTERM on uvloop still drains: the server exited 0 (run_transformer) with every scored lead in the lake.
    assert sum(pq.read_table(path).num_rows for path in lake.rglob("*.parquet")) == 3
    # Logged from inside the running loop, at start-up: the loop that ran, not the one asked for.
    assert [line["event_loop"] for line in _log_lines(tmp_path) if line.get("msg") == "event loop"] == [
        "uvloop"
    ]


def _log_lines(log_dir: Path) -> list[dict]:
    lines = []
    for path in log_dir.glob("transformer-*.log"):
        for raw in path.read_bytes().splitlines():
            if raw.startswith(b"{"):
                lines.append(orjson.loads(raw))
    return lines
