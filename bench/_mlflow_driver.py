"""MLflow half of the registry benchmark. Runs inside ``bench/.venv-mlflow``, never in the
main environment; ``bench/registry.py`` starts it as a subprocess against an MLflow tracking
server it started itself on 127.0.0.1.

For each of N registrations (timed as one unit, like one ``Client.register_model`` call on
the Threadline side): start a run, log the accuracy metric, log the training frame as a
dataset input (``mlflow.log_input(mlflow.data.from_pandas(...))``, MLflow's closest analogue
of a reference data profile: schema, row count and digest), and ``mlflow.sklearn.log_model``
with ``registered_model_name``, explicit ``pip_requirements`` (so nothing is inferred) and a
signature inferred from the training data. Then alias ``champion`` is set on the last
version and M sequential ``get_model_version_by_alias`` calls are timed one by one.

Prints one line ``BENCH_RESULT {json}`` on stdout with the raw per-call latencies (ms).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings

import _workload as w


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="tracking server, e.g. http://127.0.0.1:5000")
    parser.add_argument("--registrations", type=int, default=200)
    parser.add_argument("--reads", type=int, default=1_000)
    parser.add_argument("--read-clients", type=int, default=8)
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    import mlflow
    import mlflow.data
    import mlflow.sklearn
    import sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(args.url)
    mlflow.set_experiment("threadline-bench")
    client = MlflowClient(args.url)

    features, labels = w.make_training_data()
    model, accuracy = w.train(features, labels)
    # Computed once, outside the timed loop: this favours MLflow slightly.
    signature = infer_signature(features, model.predict(features))
    pip_requirements = [f"scikit-learn=={sklearn.__version__}"]

    def register(model_name: str, run_name: str):
        with mlflow.start_run(run_name=run_name):
            mlflow.log_metric("accuracy", accuracy)
            dataset = mlflow.data.from_pandas(features, name="training")
            mlflow.log_input(dataset, context="training")
            return mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=model_name,
                pip_requirements=pip_requirements,
                signature=signature,
            )

    register(w.WARMUP_MODEL_NAME, "warmup")  # untimed, as on the Threadline side

    register_ms: list[float] = []
    version = None
    for i in range(args.registrations):
        t0 = time.perf_counter()
        info = register(w.MODEL_NAME, f"bench-{i}")
        register_ms.append((time.perf_counter() - t0) * 1e3)
        version = int(info.registered_model_version)

    if version is None:
        raise SystemExit("nothing was registered (--registrations 0?)")
    if version != args.registrations:
        raise SystemExit(f"expected {args.registrations} versions, the last one is {version}")

    client.set_registered_model_alias(w.MODEL_NAME, w.ALIAS, str(version))
    # One untimed read that checks the alias resolves to the right version (same on both sides).
    got = client.get_model_version_by_alias(w.MODEL_NAME, w.ALIAS)
    if int(got.version) != version:
        raise SystemExit(f"alias {w.ALIAS} resolved to {got.version}, expected {version}")

    read_ms = w.timed_reads(lambda: client.get_model_version_by_alias(w.MODEL_NAME, w.ALIAS), args.reads)

    def make_reader():
        reader = MlflowClient(args.url)
        return lambda: reader.get_model_version_by_alias(w.MODEL_NAME, w.ALIAS)

    concurrent_s, concurrent_ms = w.concurrent_reads(make_reader, args.reads, args.read_clients)

    result = {
        "system": "mlflow",
        "mlflow_version": mlflow.__version__,
        "sklearn_version": sklearn.__version__,
        "python": sys.version.split()[0],
        "accuracy": accuracy,
        "last_version": version,
        "register_ms": register_ms,
        "read_ms": read_ms,
        "concurrent_s": concurrent_s,
        "concurrent_ms": concurrent_ms,
    }
    sys.stdout.write(w.RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
