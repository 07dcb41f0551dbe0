"""Artifact upload (streamed, size-limited, content-addressed) and verified download."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from threadline.api.auth import needs
from threadline.api.responses import JSON
from threadline.bootstrap import Services
from threadline.domain import errors, names
from threadline.domain.access import Permission

router = APIRouter(prefix="/api/v1/artifacts", tags=["artifacts"])

DIGEST_HEADER = "x-content-sha256"


@router.post("", status_code=201)
async def upload(request: Request, actor: needs(Permission.WRITE_MODELS)) -> JSON:
    """Stream the raw body into the store; the response names its digest.

    Send ``X-Content-SHA256`` to have the server refuse bytes that arrive altered.
    """
    services: Services = request.app.state.services
    limit = services.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.PayloadTooLarge(f"upload of {declared} bytes is over the limit of {limit} bytes")
    expected = request.headers.get(DIGEST_HEADER)
    if expected is not None:
        expected = names.sha256_digest(expected, field=DIGEST_HEADER)
    writer = services.artifacts.writer(max_bytes=limit, expected_digest=expected)
    try:
        async for chunk in request.stream():
            if chunk:
                writer.write(chunk)
        stored = await run_in_threadpool(writer.commit)
    except BaseException:
        # A client that vanished mid-upload lands here too: nothing of it is kept.
        writer.abort()
        raise
    return JSON({"digest": "sha256:" + stored.digest, "size": stored.size}, status_code=201)


@router.get("/{digest}")
def download(request: Request, actor: needs(Permission.READ_SENSITIVE), digest: str) -> StreamingResponse:
    """Stream a stored artifact; the stream breaks off if the stored bytes fail their digest.

    Artifacts include training-data samples, so every download is an audit entry.
    """
    services: Services = request.app.state.services
    digest = names.sha256_digest(digest)
    size = services.artifacts.size(digest)
    with services.store.writing() as tx:
        services.audit.record(tx, actor.name, "artifact.read", f"artifact/sha256:{digest}", {"size": size})
    return StreamingResponse(services.artifacts.read(digest), media_type="application/octet-stream",
                             headers={"content-length": str(size), DIGEST_HEADER: "sha256:" + digest})
