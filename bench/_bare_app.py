"""The serving benchmark's baselines: what one model costs with no platform around it.

* ``create_app()`` (server (b)): a minimal hand-written Starlette endpoint, run by
  ``bench/serving.py`` as ``uvicorn --factory --loop uvloop --http httptools _bare_app:create_app``.
  It loads the same skops file the benchmark registered with Threadline, parses the same OIP
  v2 JSON body with orjson, calls ``predict_proba`` inline on the event loop and answers with
  the label and the probabilities. No auth, no metrics, no log, no batching, no validation
  beyond what numpy does: the floor any Python server pays.
* ``python _bare_app.py raw ...`` (measurement (a)): ``predict_proba`` called in a loop in one
  process, no HTTP at all; prints one ``BENCH_RESULT {json}`` line.
"""

from __future__ import annotations

import os
from pathlib import Path

MODEL_ENV = "BENCH_MODEL_PATH"
NAME_ENV = "BENCH_MODEL_NAME"
RESULT_PREFIX = "BENCH_RESULT "


def load_model(path: str | Path):
    import skops.io

    return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))


def create_app():
    import numpy as np
    import orjson
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    model = load_model(os.environ[MODEL_ENV])
    name = os.environ.get(NAME_ENV, "model")
    classes = model.classes_

    async def infer(request):
        document = orjson.loads(await request.body())
        tensor = document["inputs"][0]
        features = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        probabilities = model.predict_proba(features)
        label = classes[probabilities.argmax(axis=1)]
        body = {
            "model_name": name,
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [len(label)],
                 "data": label.tolist()},
                {"name": "probabilities", "datatype": "FP64", "shape": list(probabilities.shape),
                 "data": probabilities.ravel().tolist()},
            ],
        }
        return Response(orjson.dumps(body), media_type="application/json")

    async def health(request):
        return Response(b'{"ready":true}', media_type="application/json")

    return Starlette(routes=[
        Route("/health", health),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
    ])


def raw(model_path: str, rows_path: str, duration: float, warmup: float, batch: int) -> dict:
    """``predict_proba`` on ``batch`` rows at a time, back to back, for ``duration`` seconds."""
    import math
    import time

    import numpy as np

    model = load_model(model_path)
    rows = np.load(rows_path)
    chunks = [rows[i : i + batch] for i in range(0, len(rows) - batch + 1, batch)] or [rows[:batch]]
    clock = time.perf_counter
    end = clock() + warmup
    i = 0
    while clock() < end:
        model.predict_proba(chunks[i % len(chunks)])
        i += 1
    latencies: list[float] = []
    started = clock()
    end = started + duration
    i = 0
    while True:
        t0 = clock()
        if t0 >= end:
            break
        model.predict_proba(chunks[i % len(chunks)])
        latencies.append(clock() - t0)
        i += 1
    elapsed = clock() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[max(0, math.ceil(len(latencies) * p / 100) - 1)] * 1e3 if latencies else math.nan

    return {"calls": len(latencies), "seconds": elapsed, "batch": batch,
            "calls_per_s": len(latencies) / elapsed, "rows_per_s": len(latencies) * batch / elapsed,
            "p50_ms": pct(50), "p99_ms": pct(99)}


def main() -> int:
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(description="in-process predict_proba rate")
    parser.add_argument("mode", choices=["raw"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--rows", required=True, help=".npy of request rows")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--batch", type=int, action="append", help="rows per call (repeatable)")
    args = parser.parse_args()
    results = [raw(args.model, args.rows, args.duration, args.warmup, b) for b in args.batch or [1]]
    sys.stdout.write(RESULT_PREFIX + json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
