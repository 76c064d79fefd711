"""On EKS the pods reach S3 through IRSA roles whose policies Terraform writes. A policy that reads as least privilege
can still refuse a request the software really makes: kserve-storage (the storage-initializer's library, and ours for
the model card) calls HeadBucket before it lists, and HeadBucket is an s3:ListBucket request with no s3:prefix.

Here the real clients run against moto's S3 on loopback, with the overlay's own URIs, every call they make is
recorded, and each is checked against the Terraform policy of the identity that makes it (tests/deploy/iam_policy.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.deploy.iam_policy import Request, allowed, resolve, s3_request
from tests.deploy.tf_parse import parse_dir, typed_blocks

REPO = Path(__file__).resolve().parents[2]
AWS_MODULE = REPO / "terraform" / "modules" / "aws"
AWS_OVERLAYS = sorted((REPO / "kustomize" / "overlays").glob("*-aws"))
MODELS_BUCKET, LAKE_BUCKET, MODEL_VERSION = "acme-models", "acme-lake", "v1"
_SOURCE = re.compile(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}")


def policy(name: str) -> list[dict]:
    """The statements of one aws_iam_policy_document, its source_policy_documents included, resolved for our
    two buckets and the module's locals."""
    parsed = parse_dir(AWS_MODULE)
    documents = typed_blocks(parsed, "data", "aws_iam_policy_document")

    def statements(document: str) -> list[dict]:
        body = documents[document]
        inherited = [
            s
            for source in body.get("source_policy_documents", [])
            for s in statements(_SOURCE.fullmatch(source)[1])
        ]
        return inherited + list(body.get("statement", []))

    names = {
        "aws_s3_bucket.models.arn": f"arn:aws:s3:::{MODELS_BUCKET}",
        "aws_s3_bucket.lake.arn": f"arn:aws:s3:::{LAKE_BUCKET}",
    }
    for block in parsed.get("locals", []):
        names.update({f"local.{key}": value for key, value in block.items() if isinstance(value, str)})
    return resolve(statements(name), names)


def overlay_uri(pattern: str) -> str:
    """The one URI every AWS overlay (and the base) writes for `pattern`, placeholders filled in."""
    found = {
        m
        for path in [
            REPO / "manifests" / "inferenceservice.yaml",
            *(p for o in AWS_OVERLAYS for p in o.glob("*.yaml")),
        ]
        for m in re.findall(pattern, path.read_text())
    }
    assert len(found) == 1, f"the AWS overlays disagree on {pattern}: {sorted(found)}"
    return (
        found.pop()
        .replace("REPLACE_WITH_MODELS_BUCKET", MODELS_BUCKET)
        .replace("REPLACE_WITH_LAKE_BUCKET", LAKE_BUCKET)
        .replace("REPLACE_WITH_MODEL_VERSION", MODEL_VERSION)
    )


@pytest.fixture
def recorded(moto_s3, small_artifact, monkeypatch, tmp_path):
    """Buckets as Terraform makes them and the model folder where the overlay's storageUri points; from then on
    every S3 call any boto3 client makes, in this process or a forked one (kserve-storage downloads in a
    multiprocessing pool, each worker with its own session), appended to a file as (operation, parameters)."""
    import boto3
    from botocore.client import BaseClient

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3.endpoint_url)  # kserve-storage's own variable
    setup = moto_s3.client()
    setup.create_bucket(Bucket=MODELS_BUCKET)
    setup.create_bucket(Bucket=LAKE_BUCKET)
    model_uri = overlay_uri(r"storageUri: (s3://\S+)")
    folder = model_uri.removeprefix(f"s3://{MODELS_BUCKET}/")
    for path in small_artifact.iterdir():
        setup.upload_file(str(path), MODELS_BUCKET, folder + path.name)
    journal = tmp_path / "s3-calls.jsonl"
    call = BaseClient._make_api_call

    def recording(client, operation, params):
        if client.meta.service_model.service_name == "s3":
            kept = {k: v for k, v in params.items() if isinstance(v, str | int) and not isinstance(v, bool)}
            with journal.open("a") as out:  # one short O_APPEND write a call: safe across forked workers
                out.write(json.dumps([operation, kept]) + "\n")
        return call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)

    def calls() -> list[tuple[str, dict]]:
        lines = journal.read_text().splitlines() if journal.exists() else []
        return [tuple(json.loads(line)) for line in lines]

    return model_uri, calls


def _refused(statements: list[dict], calls: list[tuple[str, dict]]) -> list[str]:
    return [
        str(request) for request in (s3_request(*call) for call in calls) if not allowed(statements, request)
    ]


def test_the_model_download_is_allowed_for_both_identities(recorded, tmp_path):
    from kserve_storage import Storage

    model_uri, recorded_calls = recorded
    folder = Path(Storage.download(model_uri, str(tmp_path / "model")))
    calls = recorded_calls()
    assert sorted(p.name for p in folder.iterdir()) == ["model-card.yaml", "model.ubj"]
    operations = {name for name, _ in calls}
    assert {"HeadBucket", "GetObject"} <= operations, operations  # what the storage-initializer really does
    # The predictor's storage-initializer downloads the booster; the transformer the same folder for the model card,
    # and the batch Job the whole model (its own run is below).
    for identity in ("predictor", "transformer", "batch"):
        assert _refused(policy(identity), calls) == [], f"the {identity} role refuses the model download"


def test_the_lake_writes_are_allowed_for_the_transformer(recorded, tmp_path):
    from transformer.sink.s3 import S3Writer

    _, recorded_calls = recorded
    spooled = tmp_path / "part.parquet"
    spooled.write_bytes(b"PAR1 stand-in bytes: the writer does not read them")
    writer = S3Writer.from_uri(overlay_uri(r"value: (s3://REPLACE_WITH_LAKE_BUCKET/\S+)"))
    writer.put("dt=2026-12-07/hour=05/part-0001.parquet", spooled)
    writer.put("dt=2026-12-07/hour=05/part-0001.parquet", spooled)  # a retry of a stored file: S3 answers 412
    calls = recorded_calls()
    assert [name for name, _ in calls] == ["PutObject", "PutObject"]
    assert _refused(policy("transformer"), calls) == []
    assert _refused(policy("predictor"), calls) != []  # the predictor cannot write the lake


def test_the_evaluator_refuses_what_aws_refuses():
    """HeadBucket under a prefix-conditioned ListBucket is the refusal that stopped the pods; the checker must
    see it, and must not let a prefix outside the grant through."""
    conditioned = [
        {
            "actions": ["s3:ListBucket"],
            "resources": ["arn:aws:s3:::b"],
            "condition": [{"test": "StringLike", "variable": "s3:prefix", "values": ["m/*"]}],
        }
    ]
    head = s3_request("HeadBucket", {"Bucket": "b"})
    assert not allowed(conditioned, head)
    assert allowed(conditioned, s3_request("ListObjectsV2", {"Bucket": "b", "Prefix": "m/v1/"}))
    if_exists = [
        {**conditioned[0], "condition": [{**conditioned[0]["condition"][0], "test": "StringLikeIfExists"}]}
    ]
    assert allowed(if_exists, head)
    assert not allowed(if_exists, s3_request("ListObjectsV2", {"Bucket": "b", "Prefix": "other/"}))
    deny = [*if_exists, {"effect": "Deny", "actions": ["s3:*"], "resources": ["arn:aws:s3:::b"]}]
    assert not allowed(deny, head)
    assert not allowed(if_exists, Request("s3:GetObject", "arn:aws:s3:::b/m/v1/model.ubj"))
    with pytest.raises(KeyError, match="no IAM mapping"):
        s3_request("DeleteObject", {"Bucket": "b", "Key": "k"})


# ---- the batch Job's identity, enforced on the real client ------------------------------------------------------


def s3_call(method: str, raw_path: str) -> tuple[str, dict]:
    """The S3 API operation and parameters of one path-style REST request (what pyarrow's and boto3's clients send
    to an endpoint override), for the IAM evaluator."""
    parts = urlsplit(raw_path)
    query = parse_qs(parts.query, keep_blank_values=True)
    bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
    if not key:
        if method == "HEAD":
            return "HeadBucket", {"Bucket": bucket}
        if "location" in query:
            return "GetBucketLocation", {"Bucket": bucket}
        params = {"Bucket": bucket}
        for name, param in (("prefix", "Prefix"), ("delimiter", "Delimiter"), ("max-keys", "MaxKeys")):
            if name in query:
                params[param] = query[name][0]
        return ("ListObjectsV2" if "list-type" in query else "ListObjects"), params
    params = {"Bucket": bucket, "Key": key}
    operation = {
        "GET": "GetObject",
        "HEAD": "HeadObject",
        "PUT": "UploadPart" if "partNumber" in query else "PutObject",
        "POST": "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload",
        "DELETE": "AbortMultipartUpload" if "uploadId" in query else "DeleteObject",
    }[method]
    return operation, params


@pytest.mark.parametrize("identity", ["batch", "transformer"])
def test_a_batch_run_as_the_readme_shows_it_works_with_the_batch_role_only(
    identity, moto_s3, small_artifact, tmp_path
):
    """The batch Job ran as the transformer's account, whose role reads neither exports nor a run's output: the
    README's `hack/batch run --input s3://<lake>/exports/… --output s3://<lake>/batch/…` got 403s. Here the real
    batch CLI talks to moto through a proxy that answers 403 to every request the Terraform policy of `identity`
    refuses, as S3 would."""
    import pyarrow.parquet as pq

    from tests.batch_export import crm_export, run_batch
    from tests.support.fault_proxy import FaultProxy

    setup = moto_s3.client()
    for bucket in (MODELS_BUCKET, LAKE_BUCKET):
        setup.create_bucket(Bucket=bucket)
    model_uri = overlay_uri(r"storageUri: (s3://\S+)")
    for path in small_artifact.iterdir():
        setup.upload_file(
            str(path), MODELS_BUCKET, model_uri.removeprefix(f"s3://{MODELS_BUCKET}/") + path.name
        )
    export = tmp_path / "crm.parquet"
    pq.write_table(crm_export(300, seed=71, planted=False)[0], export)
    setup.upload_file(str(export), LAKE_BUCKET, "exports/2026-12-04/crm.parquet")
    statements = policy(identity)
    refused: list[str] = []

    def enforce(method: str, raw_path: str) -> int | None:
        request = s3_request(*s3_call(method, raw_path))
        if allowed(statements, request):
            return None
        refused.append(str(request))
        return 403

    with FaultProxy(moto_s3.endpoint_url) as proxy:
        proxy.fault = enforce
        result = run_batch(
            "--input",
            f"s3://{LAKE_BUCKET}/exports/2026-12-04/",
            "--output",
            f"s3://{LAKE_BUCKET}/batch/2026-12-04/",
            "--model",
            model_uri,
            env={"AWS_ENDPOINT_URL": proxy.endpoint_url, "AWS_ENDPOINT_URL_S3": proxy.endpoint_url},
        )
        operations = {s3_call(method, path)[0] for method, path in proxy.seen}
    if identity == "batch":
        assert result.returncode == 0 and refused == [], (result.stderr, refused)
        assert {"ListObjectsV2", "GetObject", "PutObject"} <= operations, operations
        stored = [o["Key"] for o in setup.list_objects_v2(Bucket=LAKE_BUCKET, Prefix="batch/")["Contents"]]
        assert "batch/2026-12-04/_manifest.json" in stored
    else:
        assert result.returncode == 2 and refused, result.stderr
    # Neither role may touch the online lake's scores/.
    scores = s3_request("PutObject", {"Bucket": LAKE_BUCKET, "Key": "scores/dt=2026-12-04/x.parquet"})
    assert allowed(statements, scores) == (identity == "transformer")
