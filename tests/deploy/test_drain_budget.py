"""Each component's revision `timeout` covers its whole shutdown, so nothing accepted is lost when a pod stops.

Knative sets a revision pod's terminationGracePeriodSeconds to the revision timeoutSeconds
(pkg/reconciler/revision/resources/deploy.go at knative-v1.21.1), which KServe fills from the component's `timeout`.
The grace period runs from the pod's deletion: first the user container's preStop waits for the queue-proxy's drain
(drainSleepDuration, 30 s, pkg/queue/sharedmain/main.go), only then does the server get SIGTERM. After that:

- transformer (transformer/serving/drain.py, __main__.py, app.py): `--drain_delay_seconds` of serving with readiness
  off, the gRPC and HTTP servers' graceful stop of in-flight calls within one `--drain_seconds` deadline
  (tests/integration/test_drain.py holds them to it), then the data-lake flush (recorder.close(grace_seconds =
  `--drain_seconds`));
- predictor (KServe's xgbserver): KServe's ModelServer graceful stop, `grace_period` (its default, read from the
  pinned package: the runtime does not set it).

The flags come from the transformer's own parser applied to the manifest's args (defaults included).
"""

from __future__ import annotations

import inspect

import pytest
from kserve.model_server import ModelServer

from tests.deploy.rendering import OVERLAYS, isvc_of, parse_transformer_args, transformer_container

QUEUE_PROXY_DRAIN_SECONDS = 30
# SIGKILL lands exactly at the end of the grace period; keep room for the last spool write and process exit.
MARGIN_SECONDS = 10
# Knative's default max-revision-timeout-seconds: a larger timeout is refused by its webhook.
KNATIVE_MAX_REVISION_TIMEOUT = 600


def transformer_budget(isvc: dict) -> float:
    args = parse_transformer_args(transformer_container(isvc))
    return QUEUE_PROXY_DRAIN_SECONDS + args.drain_delay_seconds + args.drain_seconds + args.drain_seconds


def predictor_budget() -> float:
    grace = inspect.signature(ModelServer.__init__).parameters["grace_period"].default
    return QUEUE_PROXY_DRAIN_SECONDS + grace


def budget_problems(isvc: dict) -> list[str]:
    found = []
    for component, budget in (("transformer", transformer_budget(isvc)), ("predictor", predictor_budget())):
        timeout = isvc["spec"][component].get("timeout")
        if timeout is None or timeout < budget + MARGIN_SECONDS:
            found.append(
                f"{component}: timeout {timeout} < drain budget {budget:g} s + {MARGIN_SECONDS} s margin"
            )
        elif timeout > KNATIVE_MAX_REVISION_TIMEOUT:
            found.append(f"{component}: timeout {timeout} > Knative's max-revision-timeout-seconds")
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_revision_timeouts_cover_the_drain(overlay):
    assert budget_problems(isvc_of(overlay)) == []


def test_budget_reads_the_transformers_own_defaults():
    # Without the flags in the args, the parser's defaults count (5 s delay, 20 s drain).
    isvc = {
        "spec": {
            "transformer": {"timeout": 30, "containers": [{"name": "kserve-container", "args": []}]},
            "predictor": {"timeout": 10},
        }
    }
    assert transformer_budget(isvc) == 30 + 5 + 20 + 20
    assert budget_problems(isvc) == [
        "transformer: timeout 30 < drain budget 75 s + 10 s margin",
        "predictor: timeout 10 < drain budget 60 s + 10 s margin",
    ]


def test_a_longer_drain_flag_raises_the_budget():
    isvc = isvc_of("prod-aws")
    longer = {
        "spec": {
            **isvc["spec"],
            "transformer": {
                **isvc["spec"]["transformer"],
                "containers": [
                    {
                        **transformer_container(isvc),
                        "args": [*transformer_container(isvc)["args"], "--drain_seconds=60"],
                    }
                ],
            },
        }
    }
    assert budget_problems(longer)[0].startswith("transformer: timeout 90 < drain budget 155 s")
