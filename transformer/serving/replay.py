"""An ASGI `receive` that hands over a body already read, once: for layers that read a request to judge it and
then pass it on unchanged (the fast path, the binary-extension guard)."""

from __future__ import annotations


def replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive
