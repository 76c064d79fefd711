"""Reading a request body, answering a refusal and labelling a binary answer, for the pure-ASGI layers that judge a
request before KServe's routes do (serving/binary_guard.py, serving/json_guard.py): the same bytes on the wire as
the app's error handler."""

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


def labelled_binary_answers(send):
    """`send` for KServe's V2 infer route: an answer in the binary tensor extension (it carries
    inference-header-content-length) gets `Content-Type: application/octet-stream`. KServe's route deletes the
    header its JSON response class set and adds none."""

    async def labelled(message):
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            names = {name.lower() for name, _ in headers}
            if b"inference-header-content-length" in names and b"content-type" not in names:
                message = {**message, "headers": [*headers, (b"content-type", b"application/octet-stream")]}
        await send(message)

    return labelled
