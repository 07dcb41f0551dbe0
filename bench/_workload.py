"""The workload both systems get: the same data, the same fitted model, the same counts.

Imported by ``bench/registry.py`` (main environment, Threadline side) and by
``bench/_mlflow_driver.py`` (MLflow's venv). It needs only numpy, pandas and scikit-learn,
which both environments have at the same scikit-learn version, so the two sides train
byte-for-byte the same estimator on the same frame.
"""

from __future__ import annotations

import math

MODEL_NAME = "bench-model"
# One untimed registration under this name warms imports and connections on both sides,
# without touching the measured model's versions.
WARMUP_MODEL_NAME = "bench-warmup"
ALIAS = "champion"
N_ROWS = 1_000
N_FEATURES = 20
SEED = 0

# The result line a driver prints on stdout, so log noise on stdout cannot break parsing.
RESULT_PREFIX = "BENCH_RESULT "


def make_training_data():
    """1,000 rows x 20 numeric features (``f00``..``f19``) and a binary label."""
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=N_ROWS,
        n_features=N_FEATURES,
        n_informative=10,
        n_redundant=4,
        random_state=SEED,
    )
    features = pd.DataFrame(x, columns=[f"f{i:02d}" for i in range(N_FEATURES)])
    labels = pd.Series(y, name="label")
    return features, labels


def train(features, labels):
    """Fit the small model; returns (model, training accuracy)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1_000, random_state=SEED).fit(features, labels)
    accuracy = float(model.score(features, labels))
    return model, accuracy


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 1,000 samples is the 990th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def timed_reads(read, count: int) -> list[float]:
    """Call ``read()`` ``count`` times in a row; latencies in ms."""
    import time

    latencies = []
    for _ in range(count):
        t0 = time.perf_counter()
        read()
        latencies.append((time.perf_counter() - t0) * 1e3)
    return latencies


def concurrent_reads(make_reader, count: int, clients: int) -> tuple[float, list[float]]:
    """``count`` reads shared by ``clients`` threads, each with its own client from
    ``make_reader()``; returns (wall-clock seconds, latencies in ms). This is the server's
    throughput when several agents read aliases at once, as a fleet of deployments does."""
    import threading
    import time

    readers = [make_reader() for _ in range(clients)]
    shares = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
    results: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)

    def work(i: int) -> None:
        start.wait()
        results[i] = timed_reads(readers[i], shares[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - t0, [ms for part in results for ms in part]
