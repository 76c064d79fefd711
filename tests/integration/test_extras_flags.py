"""Flags of shadow scoring, the legacy endpoint and drift that the transformer cannot use are refused by the parser:
`python -m transformer` exits 2 with one line naming the flag and the rule, no traceback, before anything starts.

Each case runs beside a configuration that would otherwise start (shadow mode, a card, keys), so a value that slips
through the parser shows up as a traceback, a start, or an unrelated message, not as a pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.scrape import free_port

ROOT = Path(__file__).resolve().parents[2]

BAD_FLAGS = [
    ("--shadow_fraction", "1.5", "must be a number from 0 to 1"),
    ("--shadow_fraction", "nan", "must be a number from 0 to 1"),
    ("--shadow_fraction", "-0.1", "must be a number from 0 to 1"),
    ("--shadow_max_in_flight", "0", "must be >= 1"),
    ("--legacy_timeout_seconds", "-1", "must be a finite number > 0"),
    ("--legacy_timeout_seconds", "0", "must be a finite number > 0"),
    ("--legacy_timeout_seconds", "nan", "must be a finite number > 0"),
    ("--legacy_timeout_seconds", "inf", "must be a finite number > 0"),
    ("--drift_window", "100", "must be >= 500 (PSI is published once the window holds 500 leads)"),
    ("--drift_publish_seconds", "inf", "must be a finite number > 0"),
    ("--drift_publish_seconds", "nan", "must be a finite number > 0"),
    ("--drift_publish_seconds", "0", "must be a finite number > 0"),
]


@pytest.fixture(scope="module")
def refusals(small_artifact):
    """Every bad flag's process, started together (each pays Python's and the parser's start-up)."""
    base = [
        sys.executable,
        "-m",
        "transformer",
        "--model_card_uri",
        str(small_artifact),
        "--http_port",
        str(free_port()),
        "--grpc_port",
        str(free_port()),
        "--legacy_mode",
        "shadow",
        "--legacy_backend",
        "azureml",
        "--azureml_scoring_uri",
        "http://127.0.0.1:9/score",
    ]
    env = {**os.environ, "API_KEYS": "tests:k-1234567890", "AZUREML_KEY": "azure-key-f00d"}
    running = {
        (flag, value): subprocess.Popen(
            [*base, flag, value],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag, value, _ in BAD_FLAGS
    }
    results = {}
    for case, process in running.items():
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # it started serving: the flag got through
            process.kill()
            out, err = process.communicate()
        results[case] = (process.returncode, err)
    return results


@pytest.mark.parametrize(("flag", "value", "rule"), BAD_FLAGS)
def test_a_flag_the_transformer_cannot_use_is_a_one_line_usage_error(refusals, flag, value, rule):
    returncode, stderr = refusals[(flag, value)]
    assert returncode == 2, stderr
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("python -m transformer: error: ")
    assert f"argument {flag}: {rule}" in last, last


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [
        ("SHADOW_FRACTION", "1.5", "must be a number from 0 to 1"),
        ("DRIFT_WINDOW", "100", "must be >= 500"),
        ("MAX_LEADS", "0", "must be"),
        ("MAX_LEADS", "many", "invalid literal"),
    ],
)
def test_a_bad_value_in_the_environment_is_a_one_line_usage_error(small_artifact, variable, value, rule):
    """Every flag is read from its environment variable too (the manifests set most of them that way); a bad value
    there died in apply_environment with a Python traceback."""
    env = {**os.environ, "API_KEYS": "tests:k-1234567890", variable: value}
    result = subprocess.run(
        [sys.executable, "-m", "transformer", "--model_card_uri", str(small_artifact)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m transformer: error: environment variable ")
    assert f"{variable}={value!r}" in last and rule in last, last
