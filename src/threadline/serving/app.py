"""The Open Inference Protocol v2 application (KServe v2 / Triton HTTP, JSON).

This is the hot path, so the framework's per-request cost is kept off it: ``infer`` runs as a
plain ASGI app (``asgi``) and every other route on Starlette. Order of work for ``infer``:
token, rate limit, trace context, choose the version (explicit, sticky key or the exact
traffic split), body size, decode and validate against the signature, micro-batched predict
on the version's model thread, confidence and escalation, response, then the prediction log
and metrics, which never wait on disk and run while the response travels.

Escalation is the one exception to "no disk in the request path": an escalated prediction's
context bundle is spooled durably before the response says "escalated" (``bundle_spool``),
off the event loop, and escalations are the rare case by design.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from threadline import __version__
from threadline.domain import errors, escalation_rules, models, prediction_ids
from threadline.serving import metrics as metrics_module
from threadline.serving import _binary, asgi, escalation, tensors, tracing
from threadline.serving.auth import TokenVerifier
from threadline.serving.bundle_spool import BundleShipper, BundleSpool
from threadline.serving.batching import MicroBatcher
from threadline.serving.loading import LoadedVersion, platform_of
from threadline.serving.predlog import PredictionLog, PredictionRecord
from threadline.serving.ratelimit import RateLimiter, retry_after_header
from threadline.serving.segment_upload import SegmentUploader
from threadline.serving.traffic import TrafficSplit

log = logging.getLogger("threadline.serving")

STICKY_HEADER = "x-threadline-route-key"
_STATUS = ((errors.PayloadTooLarge, 413), (errors.InvalidInput, 400), (errors.Unauthorized, 401),
           (errors.PolicyViolation, 403), (errors.NotFound, 404), (errors.Conflict, 409),
           (errors.ConfigurationError, 503))


@dataclass(frozen=True)
class ServedVersion:
    loaded: LoadedVersion
    batcher: MicroBatcher
    metrics: metrics_module.VersionMetrics


@dataclass
class ServedModel:
    name: str
    versions: dict[int, ServedVersion]
    split: TrafficSplit


@dataclass
class ServingState:
    """Everything the routes need; built by ``serving.server`` before the app starts."""

    deployment: str
    models: dict[str, ServedModel]
    tokens: TokenVerifier | None
    limiter: RateLimiter
    predictions: PredictionLog
    metrics: metrics_module.ServingMetrics
    tracer: tracing.Tracer = field(default_factory=tracing.W3CTracer)
    max_body_bytes: int = 8 << 20
    escalate_below: float | None = None
    escalate_rules: tuple[escalation_rules.Rule, ...] = ()
    escalation_queue: str | None = None
    bundles: BundleSpool | None = None
    shipper: BundleShipper | None = None
    uploader: SegmentUploader | None = None  # a log in S3: sealed segments go there
    ready: bool = False


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


def _error(exc: Exception) -> Response:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return _json({"error": str(exc)}, status, headers)
    log.exception("inference failed")
    return _json({"error": f"the model failed on this request ({type(exc).__name__}); see the server log"}, 500)


Handler = Callable[[Request], Awaitable[Response]]
_HEADER_LENGTH = _binary.HEADER.lower()


class ServingApp:
    """The ASGI app: a POST to an infer route goes straight to ``Inference``; everything else
    (other routes, other methods, lifespan) goes through ``starlette``, whose route table lists
    every endpoint, infer included."""

    def __init__(self, state: ServingState) -> None:
        self.inference = Inference(state)
        self.starlette = Starlette(routes=_routes(state, self.inference))

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            params = _infer_params(scope["path"])
            if params is not None:
                scope["path_params"] = params
                await self.inference(scope, receive, send)
                return
        await self.starlette(scope, receive, send)


def create_app(state: ServingState) -> ServingApp:
    return ServingApp(state)


def _infer_params(path: str) -> dict[str, str] | None:
    """The path parameters of ``/v2/models/{name}[/versions/{version}]/infer``, else None."""
    if not path.startswith("/v2/models/") or not path.endswith("/infer"):
        return None
    parts = path[len("/v2/models/"):-len("/infer")].split("/")
    if len(parts) == 1 and parts[0]:
        return {"name": parts[0]}
    if len(parts) == 3 and parts[0] and parts[1] == "versions" and parts[2]:
        return {"name": parts[0], "version": parts[2]}
    return None


async def _admit(state: ServingState, header: str | None) -> Response | None:
    """None when the caller may go on; the 429 answer when its rate limit is spent."""
    caller: str | None = "anonymous"
    if state.tokens is not None:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise errors.Unauthorized("send 'Authorization: Bearer <token>'")
        caller = await state.tokens.verify(token.strip())
    if caller is None:
        raise errors.Unauthorized("invalid, expired or revoked token")
    wait = state.limiter.take(caller)
    if wait <= 0:
        return None
    state.metrics.rate_limited.inc()
    return _json({"error": f"rate limit exceeded; retry in {wait:.2f} s"}, 429,
                 {"Retry-After": retry_after_header(wait)})


def _model(state: ServingState, name: str) -> ServedModel:
    found = state.models.get(name)
    if found is None:
        raise errors.NotFound(f"model {name!r} is not served here; served: {', '.join(state.models)}")
    return found


def _version(served: ServedModel, text: str | None, sticky: str | None) -> ServedVersion:
    if text is None:
        return served.versions[served.split.choose(sticky)]
    if not text.isdigit() or int(text) not in served.versions:
        raise errors.NotFound(f"model {served.name!r} has no served version {text!r}; "
                              f"served: {', '.join(map(str, served.versions))}")
    return served.versions[int(text)]


class Inference:
    """``POST /v2/models/{name}[/versions/{version}]/infer`` as a plain ASGI app."""

    def __init__(self, state: ServingState) -> None:
        self.state = state

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        headers = asgi.headers(scope)
        try:
            refused = await _admit(self.state, headers.get("authorization"))
            if refused is None:
                await self._infer(scope["path_params"], headers, receive, send)
                return
        except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON answer
            refused = _error(exc)
        await refused(scope, receive, send)

    async def _infer(self, params: dict[str, str], headers: dict[str, str], receive: asgi.Receive,
                     send: asgi.Send) -> None:
        """Answer one request; raises (before anything is sent) for ``_error`` to answer."""
        state = self.state
        started = time.perf_counter()
        span = state.tracer.start(headers.get("traceparent"), "infer")
        try:
            served = _model(state, params["name"])
            chosen = _version(served, params.get("version"), headers.get(STICKY_HEADER))
        except Exception as exc:
            span.end(str(exc))
            raise
        loaded, counts = chosen.loaded, chosen.metrics
        if span.recording:
            span.attributes.update({"threadline.model": served.name, "threadline.version": loaded.version,
                                    "threadline.deployment": state.deployment})
        try:
            body = await asgi.body(receive, headers.get("content-length"), state.max_body_bytes)
            decoded = tensors.decode_request(body, loaded.signature.inputs,
                                             header_length=headers.get(_HEADER_LENGTH))
            wanted = tensors.select_outputs(loaded.signature.outputs, decoded.requested_outputs)
            outputs = await chosen.batcher.submit(decoded.tensors, decoded.rows)
        except Exception as exc:
            counts.failed()
            span.end(str(exc))
            if not isinstance(exc, _CLIENT_ERRORS):  # the model failed: it counts against the error rate
                _log_failure(state, loaded, span.trace_id, (time.perf_counter() - started) * 1000)
            raise
        # Prediction ids are always ours, so labels attach to exactly one prediction even when
        # clients reuse request ids; the response's "id" echoes the client's id. They carry
        # their time, so feedback finds them without scanning the whole log.
        now = datetime.now(timezone.utc)
        base = prediction_ids.new(now)
        request_id = decoded.id or base
        requested = decoded.parameters.get("escalate") is True
        ids = [base] if decoded.rows == 1 else [f"{base}-{i}" for i in range(decoded.rows)]
        watched = requested or state.escalate_below is not None or bool(state.escalate_rules)
        escalated = await _escalate(state, loaded, ids, span.trace_id, decoded, outputs, requested) \
            if watched else [False] * decoded.rows
        parameters: dict[str, Any] = {"prediction_ids": ids}
        if watched:
            parameters["escalated"] = escalated
        payload, header_length = tensors.encode_response(served.name, str(loaded.version), request_id, outputs,
                                                         wanted, parameters, decoded.binary_outputs)
        elapsed = time.perf_counter() - started
        extra = [(b"traceparent", span.traceparent.encode()), (b"x-trace-id", span.trace_id.encode())]
        if header_length is None:
            await asgi.respond(send, 200, payload, asgi.JSON, extra)
        else:
            extra.append((_HEADER_LENGTH.encode(), b"%d" % header_length))
            await asgi.respond(send, 200, payload, asgi.BINARY, extra)
        # The rest waits for nobody: with one connection it runs while the answer travels.
        try:
            for record in _records(state, loaded, ids, span.trace_id, now, decoded.tensors, outputs,
                                   escalated, elapsed * 1000):
                state.predictions.record(record)
        except Exception:  # noqa: BLE001 - answered already; a bug here must not hide the rest
            log.exception("could not log prediction %s", base)
        counts.answered(elapsed, sum(escalated))
        if span.recording:
            span.attributes.update({"threadline.rows": decoded.rows, "threadline.prediction_id": ids[0]})
        span.end()


def _routes(state: ServingState, inference: Inference) -> list[Route]:
    def guarded(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                refused = await _admit(state, request.headers.get("authorization"))
                return refused or await handler(request)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON answer
                return _error(exc)
        return run

    def version(request: Request, served: ServedModel) -> ServedVersion:
        return _version(served, request.path_params.get("version"), request.headers.get(STICKY_HEADER))

    async def server_metadata(request: Request) -> Response:
        return _json({"name": "threadline", "version": __version__, "extensions": ["binary_tensor_data"]})

    async def live(request: Request) -> Response:
        return _json({"live": True})

    async def ready(request: Request) -> Response:
        return _json({"ready": state.ready}, 200 if state.ready else 503)

    async def model_metadata(request: Request) -> Response:
        served = _model(state, request.path_params["name"])
        chosen = version(request, served) if "version" in request.path_params else \
            served.versions[max(served.versions)]
        loaded = chosen.loaded
        versions = [str(v) for v in served.versions] if "version" not in request.path_params \
            else [str(loaded.version)]
        return _json(tensors.model_metadata(served.name, versions, platform_of(loaded.flavor),
                                            loaded.signature.inputs, loaded.signature.outputs))

    async def model_ready(request: Request) -> Response:
        served = _model(state, request.path_params["name"])
        if "version" in request.path_params:
            version(request, served)
        return _json({"name": served.name, "ready": state.ready}, 200 if state.ready else 503)

    async def prometheus(request: Request) -> Response:
        for served in state.models.values():
            for number, chosen in served.versions.items():
                state.metrics.queue_depth.labels(served.name, str(number)).set(chosen.batcher.queue_depth)
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return [
        Route("/v2", server_metadata),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2/models/{name}", guarded(model_metadata)),
        Route("/v2/models/{name}/ready", guarded(model_ready)),
        Route("/v2/models/{name}/infer", inference, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}", guarded(model_metadata)),
        Route("/v2/models/{name}/versions/{version}/ready", guarded(model_ready)),
        Route("/v2/models/{name}/versions/{version}/infer", inference, methods=["POST"]),
        Route("/metrics", guarded(prometheus)),
    ]


def _confidence(outputs: dict[str, np.ndarray]) -> np.ndarray | None:
    """The top class probability per row, for classifiers."""
    probabilities = outputs.get("probabilities")
    if probabilities is None or probabilities.ndim != 2:
        return None
    return probabilities.max(axis=1)


def _escalated(confidence: np.ndarray | None, threshold: float | None, rows: int, requested: bool) -> np.ndarray:
    if requested:
        return np.ones(rows, dtype=bool)
    if confidence is None or threshold is None:
        return np.zeros(rows, dtype=bool)
    return confidence < threshold


_CLIENT_ERRORS = (errors.InvalidInput, errors.PayloadTooLarge, errors.NotFound, errors.Unauthorized)


async def _escalate(state: ServingState, loaded: LoadedVersion, ids: list[str], trace_id: str,
                    decoded: tensors.Request, outputs: dict[str, np.ndarray], requested: bool) -> list[bool]:
    """Per row, whether a person must look (asked for, low confidence or a rule), counting only
    rows whose bundle was kept. Only called when escalation is on: it costs array work."""
    confidence = _confidence(outputs)
    escalated = _escalated(confidence, state.escalate_below, decoded.rows, requested)
    ruled: list[str | None] = [None] * decoded.rows
    if state.escalate_rules:
        hit, ruled = escalation.matches(state.escalate_rules, decoded.tensors, outputs, confidence, decoded.rows)
        escalated = escalated | hit
    if escalated.any():
        escalated = await _spool_bundles(state, loaded, ids, trace_id, decoded, outputs, confidence, escalated,
                                         requested, ruled)
    return escalated.tolist()  # type: ignore[no-any-return]


async def _spool_bundles(state: ServingState, loaded: LoadedVersion, ids: list[str], trace_id: str,
                         decoded: tensors.Request, outputs: dict[str, np.ndarray], confidence: np.ndarray | None,
                         escalated: np.ndarray, requested: bool, ruled: list[str | None]) -> np.ndarray:
    """Spool a context bundle per escalated row; rows whose bundle was not kept are not escalated."""
    if state.bundles is None:
        return np.zeros_like(escalated)
    loop = asyncio.get_running_loop()
    kept = escalated.copy()
    for row in np.flatnonzero(escalated):
        reason = _reason(state, confidence, int(row), requested, ruled[row])
        if not await loop.run_in_executor(None, _keep_bundle, state, loaded, ids[row], trace_id, decoded, outputs,
                                          confidence, int(row), reason):
            kept[row] = False
            state.metrics.bundles_refused.inc()
    if kept.any() and state.shipper is not None:
        state.shipper.nudge()
    return kept


def _keep_bundle(state: ServingState, loaded: LoadedVersion, prediction_id: str, trace_id: str,
                 decoded: tensors.Request, outputs: dict[str, np.ndarray], confidence: np.ndarray | None, row: int,
                 reason: str) -> bool:
    """Build and spool one bundle; False (logged) when it could not be kept, so the answer says
    "not escalated" rather than promising a review that will never happen."""
    assert state.bundles is not None
    try:
        draft = _draft(state, loaded, prediction_id, trace_id, decoded, outputs, confidence, row, reason)
        return state.bundles.put(prediction_id, draft)
    except Exception:
        log.exception("could not keep the context bundle of prediction %s; answered as not escalated",
                      prediction_id)
        return False


def _draft(state: ServingState, loaded: LoadedVersion, prediction_id: str, trace_id: str, decoded: tensors.Request,
           outputs: dict[str, np.ndarray], confidence: np.ndarray | None, row: int, reason: str) -> dict[str, Any]:
    """A bundle as the serving process knows it; the control plane completes and signs it.

    The decision chain is computed for the one row, alone, because a replay runs it alone: a
    batch of another size may round differently in the last bit.
    """
    inputs = {name: value[row:row + 1] for name, value in decoded.tensors.items()}
    score = None if confidence is None else float(confidence[row])
    return {
        "id": prediction_id, "created": datetime.now(timezone.utc).isoformat(), "deployment": state.deployment,
        "queue": state.escalation_queue, "reason": reason, "trace_id": trace_id, "model": loaded.model,
        "version": loaded.version, "artifact_digest": loaded.digest, "artifact_format": loaded.artifact_format,
        "signature": models.signature_to_json(loaded.signature), "lineage": loaded.lineage,
        "request": {"id": decoded.id, "parameters": decoded.parameters, "rows": decoded.rows, "row": row,
                    "outputs": list(decoded.requested_outputs) if decoded.requested_outputs else None},
        # Slices, not items: an item of an object array (text) is a plain str without tolist().
        "inputs": {name: value.tolist()[0] for name, value in inputs.items()},
        "steps": loaded.predictor.chain(inputs)[0],
        "outputs": {name: value[row:row + 1].tolist()[0] for name, value in outputs.items()},
        "confidence": score,
    }


def _reason(state: ServingState, confidence: np.ndarray | None, row: int, requested: bool, rule: str | None) -> str:
    """Why a person must look: the client asked, the confidence is low, or a rule holds."""
    if requested:
        return "requested by the client (parameters.escalate)"
    if confidence is not None and state.escalate_below is not None and confidence[row] < state.escalate_below:
        return f"confidence {float(confidence[row]):.4f} below {state.escalate_below:g}"
    return rule or "escalated"


def _log_failure(state: ServingState, loaded: LoadedVersion, trace_id: str, latency_ms: float) -> None:
    now = datetime.now(timezone.utc)
    state.predictions.record(PredictionRecord(
        prediction_id=prediction_ids.new(now), trace_id=trace_id, time=now,
        deployment=state.deployment, model=loaded.model, version=loaded.version, inputs={}, outputs={},
        confidence=None, latency_ms=latency_ms, escalated=False, status="error"))


def _records(state: ServingState, loaded: LoadedVersion, ids: list[str], trace_id: str, now: datetime,
             inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray], escalated: list[bool],
             latency_ms: float) -> list[PredictionRecord]:
    """One log record per row."""
    in_rows = {name: value.tolist() for name, value in inputs.items()}
    out_rows = {name: value.tolist() for name, value in outputs.items()}
    confidence = _confidence(outputs)
    conf = confidence.tolist() if confidence is not None else None
    return [PredictionRecord(
        prediction_id=prediction_id, trace_id=trace_id, time=now, deployment=state.deployment,
        model=loaded.model, version=loaded.version,
        inputs={name: rows[i] for name, rows in in_rows.items()},
        outputs={name: rows[i] for name, rows in out_rows.items()},
        confidence=None if conf is None else float(conf[i]), latency_ms=latency_ms,
        escalated=escalated[i]) for i, prediction_id in enumerate(ids)]
