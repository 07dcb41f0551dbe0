"""Micro-batching merges concurrent requests and gives each the exact one-by-one result."""

from __future__ import annotations

import asyncio
import threading
from typing import Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from threadline.domain import errors
from threadline.domain.models import Signature, TensorSpec
from threadline.serving.batching import BatchPolicy, MicroBatcher
from threadline.serving.predictors import SklearnPredictor

X, Y = make_classification(n_samples=300, n_features=5, random_state=0)
FOREST = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, Y)
# Computed from its coefficients (``serving.linear``), where a batch through scikit-learn would
# differ from its rows one by one in the last bit.
SCALED_LOGISTIC = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
SIGNATURE = Signature(inputs=(TensorSpec("input-0", "FP64", (-1, 5)),),
                      outputs=(TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP64", (-1, 2))))
PREDICTOR = SklearnPredictor(FOREST, SIGNATURE)
PREDICTORS = {"forest": (FOREST, PREDICTOR),
              "scaled logistic": (SCALED_LOGISTIC, SklearnPredictor(SCALED_LOGISTIC, SIGNATURE))}


async def _run_all(requests: list[np.ndarray], policy: BatchPolicy, calls: list[int],
                   predictor: SklearnPredictor = PREDICTOR) -> list[dict[str, np.ndarray]]:
    def predict(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append(len(inputs["input-0"]))
        return predictor.predict(inputs)

    batcher = MicroBatcher(predict, policy)
    try:
        return await asyncio.gather(*(batcher.submit({"input-0": r}, len(r)) for r in requests))
    finally:
        await batcher.close()


@pytest.mark.parametrize("model", PREDICTORS)
@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=30),
       st.integers(min_value=1, max_value=40))
def test_batched_results_equal_one_by_one(model: str, sizes: list[int], max_rows: int) -> None:
    estimator, predictor = PREDICTORS[model]
    rng = np.random.default_rng(sum(sizes))
    requests = [rng.normal(size=(n, 5)) for n in sizes]
    calls: list[int] = []
    batched = asyncio.run(_run_all(requests, BatchPolicy(max_batch_rows=max_rows), calls, predictor))
    for request, result in zip(requests, batched):
        alone = predictor.predict({"input-0": request})
        assert np.array_equal(result["label"], alone["label"])
        assert np.array_equal(result["probabilities"], alone["probabilities"])
        assert np.array_equal(result["label"], estimator.predict(request))
    assert sum(calls) == sum(sizes)
    assert all(c <= max(max_rows, max(sizes)) for c in calls)


def test_concurrent_requests_share_calls() -> None:
    requests = [np.zeros((1, 5)) + i for i in range(50)]
    calls: list[int] = []
    asyncio.run(_run_all(requests, BatchPolicy(max_batch_rows=64), calls))
    assert len(calls) < 50 and max(calls) > 1


def test_a_failing_request_fails_alone() -> None:
    def predict(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if np.isnan(inputs["x"]).any():
            raise ValueError("NaN in input")
        return {"y": inputs["x"] * 2}

    async def main() -> list[object]:
        batcher = MicroBatcher(predict)
        values = [np.array([1.0]), np.array([np.nan]), np.array([3.0])]
        try:
            return await asyncio.gather(*(batcher.submit({"x": v}, 1) for v in values),
                                        return_exceptions=True)
        finally:
            await batcher.close()

    good, bad, other = asyncio.run(main())
    assert isinstance(bad, ValueError)
    assert good["y"].tolist() == [2.0] and other["y"].tolist() == [6.0]  # type: ignore[index]


def test_the_model_runs_on_its_own_thread_never_the_event_loop() -> None:
    threads: list[int] = []

    def predict(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        threads.append(threading.get_ident())
        return {"y": inputs["x"]}

    async def main() -> None:
        batcher = MicroBatcher(predict)
        try:
            for i in range(20):  # one at a time: the thread sleeps and is woken every time
                assert (await batcher.submit({"x": np.array([float(i)])}, 1))["y"].tolist() == [float(i)]
        finally:
            await batcher.close()

    asyncio.run(main())
    assert len(threads) == 20 and len(set(threads)) == 1 and threads[0] != threading.get_ident()


def test_close_answers_the_running_batch_and_fails_the_waiting_ones() -> None:
    started, release = threading.Event(), threading.Event()

    def predict(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        started.set()
        release.wait()
        return {"y": inputs["x"]}

    async def main() -> list[object]:
        batcher = MicroBatcher(predict)
        running = asyncio.ensure_future(batcher.submit({"x": np.array([1.0])}, 1))
        await asyncio.to_thread(started.wait)
        waiting = asyncio.ensure_future(batcher.submit({"x": np.array([2.0])}, 1))
        await asyncio.sleep(0)  # queued behind the running call
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0)  # close has begun: the thread stops after the running call
        release.set()
        await closing
        return await asyncio.gather(running, waiting, return_exceptions=True)

    done, refused = asyncio.run(main())
    assert done["y"].tolist() == [1.0]  # type: ignore[index]
    assert isinstance(refused, errors.ConfigurationError)


def test_idle_batcher_adds_no_wait() -> None:
    async def main() -> float:
        batcher = MicroBatcher(lambda i: {"y": i["x"]}, BatchPolicy(max_wait_ms=60_000))
        loop = asyncio.get_running_loop()
        start = loop.time()
        await batcher.submit({"x": np.array([1.0])}, 1)
        elapsed = loop.time() - start
        await batcher.close()
        return elapsed

    # A 60 s wait would show; it only applies once a queue has formed, so a lone request is immediate.
    assert asyncio.run(main()) < 30


@pytest.mark.parametrize("names", [True, False])
def test_predictor_on_named_columns_matches_sklearn(names: bool) -> None:
    import pandas as pd

    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    model = LogisticRegression().fit(frame if names else X, Y)
    expected_proba = model.predict_proba(frame if names else X)
    expected_label = model.predict(frame if names else X)
    signature = Signature(inputs=tuple(TensorSpec(f"f{i}", "FP64", (-1,)) for i in range(5)),
                          outputs=(TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP64", (-1, 2))))
    predictor = SklearnPredictor(model, signature)
    out = predictor.predict({f"f{i}": X[:, i] for i in range(5)})
    assert np.array_equal(out["label"], expected_label)
    assert np.allclose(out["probabilities"], expected_proba, rtol=0, atol=1e-15)
