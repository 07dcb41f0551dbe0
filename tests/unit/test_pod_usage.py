"""Pod usage from the Kubernetes metrics API, turned into cumulative CPU seconds."""

from __future__ import annotations

import pytest

from threadline.adapters import pod_usage


@pytest.mark.parametrize(("quantity", "expected"), [("250m", 0.25), ("123456789n", 0.123456789), ("1500u", 0.0015),
                                                    ("2", 2.0), ("0.5", 0.5)])
def test_cpu_quantities_of_the_metrics_api(quantity: str, expected: float) -> None:
    assert pod_usage.cores(quantity) == pytest.approx(expected)


def test_a_bad_cpu_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="not a CPU quantity"):
        pod_usage.cores("lots")


def test_containers_of_a_pod_add_up() -> None:
    metrics = {"metadata": {"name": "p"}, "containers": [{"usage": {"cpu": "100m", "memory": "64Mi"}},
                                                         {"usage": {"cpu": "50000000n", "memory": "1024Ki"}}]}
    assert pod_usage.pod_usage(metrics) == (pytest.approx(0.15), 65 * 1024 * 1024)


def test_rates_integrate_into_cpu_seconds_and_gone_pods_are_forgotten() -> None:
    usage = pod_usage.PodUsage()
    assert usage.update("a", 100.0, 0.5) == 0.0  # the first reading is the baseline
    assert usage.update("a", 110.0, 0.5) == pytest.approx(5.0)
    assert usage.update("a", 120.0, 1.0) == pytest.approx(15.0)
    usage.update("b", 120.0, 2.0)
    usage.forget_others({"b"})
    assert usage.update("a", 130.0, 1.0) == 0.0  # a pod seen again starts over
