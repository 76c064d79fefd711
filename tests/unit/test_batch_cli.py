"""batch's arguments: each has an environment variable (the Job sets them), the command line wins, and nonsense is
refused with a usage error before anything is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch.cli import parse_args

RUN = ["--input", "in/", "--output", "out/", "--model", "model/"]


def test_an_indexed_job_pod_needs_no_arguments():
    env = {
        "BATCH_INPUT": "s3://crm/x/",
        "BATCH_OUTPUT": "s3://lake/y/",
        "BATCH_MODEL_URI": "s3://m/v1/",
        "JOB_COMPLETION_INDEX": "5",
        "BATCH_SHARD_COUNT": "16",
        "BATCH_REASONS": "3",
        "BATCH_WORK_DIR": "/var/tmp/b",
        "BATCH_PUSHGATEWAY_URL": "http://pushgateway:9091",
    }
    args = parse_args([], env)
    assert (args.input, args.output, args.model) == ("s3://crm/x/", "s3://lake/y/", "s3://m/v1/")
    assert (args.shard_index, args.shard_count, args.reasons) == (5, 16, 3)
    assert args.work_dir == Path("/var/tmp/b") and args.pushgateway_url == "http://pushgateway:9091"


def test_command_line_wins_over_the_environment():
    args = parse_args(
        [*RUN, "--shard-index", "1", "--shard-count", "2"],
        {"JOB_COMPLETION_INDEX": "7", "BATCH_SHARD_COUNT": "8", "BATCH_INPUT": "elsewhere"},
    )
    assert (args.input, args.shard_index, args.shard_count) == ("in/", 1, 2)


def test_defaults_are_one_local_shard():
    args = parse_args(RUN, {})
    assert (args.shard_index, args.shard_count, args.reasons, args.pushgateway_url) == (0, 1, 0, None)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--shard-index", "2", "--shard-count", "2"], "--shard-index must be in 0..1"),
        (["--shard-count", "0"], "--shard-count must be at least 1"),
        (["--reasons", "51"], "--reasons must be 0..50"),
        (["--window-rows", "0"], "--window-rows must be positive"),
    ],
)
def test_nonsense_is_a_usage_error(capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        parse_args([*RUN, *extra], {})
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err
    assert err.startswith("batch: ") and err.count("\n") == 1  # one line, like every failure of the job


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://pushgateway.monitoring:9091", None),
        ("pushgateway:9091", None),  # prometheus_client adds http:// itself
        ("http://[bad", "Invalid IPv6 URL"),
        ("http://pushgateway:port", "Port could not be cast to integer value"),
        ("ftp://pushgateway:9091", "expected http(s)://host[:port]"),
    ],
)
def test_the_pushgateway_url_is_checked_before_anything_runs(capsys, url, problem):
    if problem is None:
        assert parse_args([*RUN, "--pushgateway-url", url], {}).pushgateway_url == url
        return
    with pytest.raises(SystemExit) as exit_info:
        parse_args(RUN, {"BATCH_PUSHGATEWAY_URL": url})
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and problem in err and err.count("\n") == 1


def test_missing_input_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--output", "o", "--model", "m"], {})
    assert "--input" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name", ["JOB_COMPLETION_INDEX", "BATCH_SHARD_COUNT", "BATCH_REASONS", "BATCH_WINDOW_ROWS"]
)
def test_a_bad_number_from_the_environment_is_named_and_a_usage_error(capsys, name):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(RUN, {name: "x"})
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"batch: environment variable {name} must be a whole number, got 'x'\n"


def test_batch_imports_no_serving_framework():
    """Batch is domain code: it shares the contract, booster and sink writers, not KServe or the API server."""
    import subprocess
    import sys

    code = (
        "import sys, batch.cli, batch.run; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'kserve', 'fastapi', 'starlette', 'grpc', 'uvicorn'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
