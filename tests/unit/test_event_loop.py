"""`--event-loop` names the loop the server's asyncio.run really runs on (transformer/serving/event_loop.py): KServe's
one-worker start would otherwise ignore it."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest
import uvloop

from transformer.cli import build_parser
from transformer.serving.event_loop import use_event_loop


@pytest.fixture(autouse=True)
def asyncio_policy_restored():
    before = asyncio.get_event_loop_policy()
    yield
    current = asyncio.get_event_loop_policy()
    if current is not before:
        loop = current._local._loop  # the loop use_event_loop made current for KServe's start()
        if loop is not None:
            loop.close()
    asyncio.set_event_loop_policy(before)


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_the_default_is_asyncios_own_loop_which_is_what_kserve_runs():
    assert build_parser(environ={}).parse_args([]).event_loop == "asyncio"
    assert use_event_loop("asyncio") == "asyncio"
    assert not isinstance(asyncio.run(_running_loop()), uvloop.Loop)


@pytest.mark.parametrize("choice", ["uvloop", "auto"])
def test_uvloop_and_auto_run_the_next_asyncio_run_on_uvloop(choice):
    assert use_event_loop(choice) == "uvloop"
    # KServe's start() asks for the current loop before its asyncio.run: that must not raise.
    assert isinstance(asyncio.get_event_loop(), uvloop.Loop)
    assert isinstance(asyncio.run(_running_loop()), uvloop.Loop)


def test_the_environment_sets_it_and_a_bad_value_is_refused(capsys):
    assert build_parser(environ={"EVENT_LOOP": "uvloop"}).parse_args([]).event_loop == "uvloop"
    with pytest.raises(SystemExit):
        build_parser(environ={}).parse_args(["--event-loop", "trio"])
    assert "--event-loop: invalid choice: 'trio'" in capsys.readouterr().err


def test_without_uvloop_auto_falls_back_with_a_warning_and_uvloop_refuses_to_start(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed: import raises ImportError
    with caplog.at_level(logging.WARNING, logger="transformer"):
        assert use_event_loop("auto") == "asyncio"
    assert "uvloop is not installed" in caplog.text
    assert not isinstance(asyncio.run(_running_loop()), uvloop.Loop)
    with pytest.raises(SystemExit, match="--event-loop uvloop: uvloop is not installed"):
        use_event_loop("uvloop")
