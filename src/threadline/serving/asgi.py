"""Raw ASGI for the inference route: headers, body and response without Starlette's objects.

Every prediction pays for whatever sits between the server and the model. Starlette's
routing, middleware stack, ``Request`` and ``Response`` cost about as much per request as
all of the platform's own work on it (token, validation, log, metrics), so the inference
route reads the ASGI messages directly and every other route stays on Starlette.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, MutableMapping

from threadline.domain import errors

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = b"application/json"
BINARY = b"application/octet-stream"


def headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name; the first of repeated ones, as Starlette's
    ``Headers.get`` (ASGI servers already lower-case the names)."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(scope["headers"])}


async def body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The whole request body, refused as soon as it is known to be over ``limit`` bytes."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise errors.InvalidInput("the client closed the connection before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond(send: Send, status: int, payload: bytes, content_type: bytes,
                  extra: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(payload)),
                            *extra]})
    await send({"type": "http.response.body", "body": payload})
