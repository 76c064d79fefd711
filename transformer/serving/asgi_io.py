"""Reading a request body and answering a refusal, for the pure-ASGI layers that judge a request before KServe's
routes do (serving/binary_guard.py, serving/json_guard.py): the same bytes on the wire as the app's error handler."""

from __future__ import annotations

import orjson

from transformer.errors import ScoringError


async def read_body(receive) -> bytes:
    # BodyLimit (serving/app.py) wraps `receive`: past --max_body_bytes it raises, and answers 413 itself.
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def answer_refusal(send, error: ScoringError, request_id: str) -> None:
    body = orjson.dumps(error.body())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    headers += [(name.encode(), value.encode()) for name, value in error.headers().items()]
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
