"""Serving benchmark, MLflow side: turn the benchmark's skops files into MLflow model folders.

Runs inside ``bench/.venv-mlflow`` (same scikit-learn version as the main environment), so
the folder ``mlflow models serve`` loads holds exactly the estimator the other servers load.
The signature is inferred from the request rows (a float64 tensor of shape (-1, 20)), so
``{"inputs": [[...20 floats...]]}`` is accepted, and ``pyfunc_predict_fn="predict_proba"``
makes MLflow compute the same thing as the other servers (its default is ``predict``).

    python _mlflow_save.py --rows rows.npy MODEL.skops:OUT_DIR [MODEL.skops:OUT_DIR ...]
"""

from __future__ import annotations

import argparse
import logging
import warnings


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", required=True)
    parser.add_argument("pairs", nargs="+", metavar="MODEL.skops:OUT_DIR")
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    import mlflow.sklearn
    import numpy as np
    import sklearn
    import skops.io
    from mlflow.models import infer_signature

    rows = np.load(args.rows)
    for pair in args.pairs:
        source, _, out = pair.rpartition(":")
        # The file is the benchmark's own: trust what skops flags (sklearn's tree storage).
        trusted = skops.io.get_untrusted_types(file=source)
        model = skops.io.load(source, trusted=trusted)
        mlflow.sklearn.save_model(
            model,
            out,
            signature=infer_signature(rows, model.predict_proba(rows)),
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            pyfunc_predict_fn="predict_proba",
            skops_trusted_types=trusted,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
