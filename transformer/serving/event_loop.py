"""`--event-loop`: the loop the one-worker server runs on, as the flag says.

KServe documents its `--event-loop auto` as "use uvloop if available" and hands the choice to uvicorn's
`Config(loop=…)`. uvicorn applies it only in `Server.run()`, which creates the loop. A one-worker
`kserve.ModelServer.start()` instead awaits uvicorn's `Server.serve()` inside its own `asyncio.run(...)`, which takes
its loop from asyncio's policy: the flag is never read, and every one-worker KServe server (the stock transformer
and kserve-xgbserver included) runs on asyncio's own selector loop (kserve 0.21.0, uvicorn 0.54.0).

This transformer's parser therefore defaults the flag to what really runs, `asyncio`, and makes `uvloop` and `auto`
true by setting asyncio's policy before `start()`: Python 3.11's `asyncio.run` takes no loop factory, and KServe's
`start()` is what calls it. The REST server, the gRPC server and the gRPC hop to the predictor (grpc.aio runs on any
asyncio loop) then all run on uvloop. Measured on 2 cores (docs/performance.md, thirteenth pass), uvloop did not make
the in-process transformer faster — its send and receive system calls, not the loop's Python, are the loop's cost —
and made split mode's gRPC hop slower, so it stays an option.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("transformer")


def use_event_loop(choice: str) -> str:
    """Install the loop `--event-loop` names for the next `asyncio.run`; returns the one that will run."""
    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit("--event-loop uvloop: uvloop is not installed (pip install uvloop)") from None
        log.warning("--event-loop auto: uvloop is not installed, the server runs on asyncio's own event loop")
        return "asyncio"
    policy = uvloop.EventLoopPolicy()
    asyncio.set_event_loop_policy(policy)
    # KServe's start() asks for the current loop before its asyncio.run (to give it an exception handler and an
    # executor, which asyncio.run's new loop never sees): asyncio's policy makes one on that call, uvloop's raises.
    asyncio.set_event_loop(policy.new_event_loop())
    return "uvloop"


def running_loop_name() -> str:
    """The package of the loop this coroutine runs on ("asyncio", "uvloop"): what ran, not what was asked for."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]
