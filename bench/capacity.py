"""Right-sizing an over-provisioned deployment, and what sampling costs the serving path.

    python bench/capacity.py                    # 3 minutes of load before and after (about 10 minutes)
    python bench/capacity.py --minutes 2        # quicker
    python bench/capacity.py --skip-overhead    # only the right-sizing part

Part 1 starts a control plane (``threadline up``) following a Git repository on the local
runtime, with a small iris model deployed deliberately over-provisioned: 4 replicas of 2 CPUs
and 4 GiB, with a p99 SLO of 50 ms. It replays a load (closed loop, a fixed number of clients
spread over the replicas) for ``--minutes`` while the control plane samples utilization, asks
``threadline recommend --write`` for a change of the spec in a checkout, commits it, waits for
the agent to apply it, and replays the same load. It prints the requested CPU and memory
(replicas x per-replica requests, at the spec's maximum replica count), the measured utilization
(used over requested) and the client-side p99, before and after. Targets (issue 8): requested
resources cut by at least half, p99 within the SLO.

Part 2 measures the sampler's cost on the serving path: one ``threadline serve`` process under
the same closed-loop load for 10 s with nothing scraping it, then 10 s while a sampler reads its
/proc entries and /metrics every second (ten times the default rate). Target: under 1% of
throughput. Eight rounds, the order alternating, and the median of the per-round ratios: this
machine's throughput swings by more than the effect measured.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _plane import COLUMNS, control_plane, iris, wait  # noqa: E402
from _procs import free_port, git  # noqa: E402

SLO_MS = 50.0
CLIENTS = 4
SPEC = """apiVersion: threadline/v1
kind: ModelDeployment
metadata: {{name: iris, environment: production, owner: default}}
spec:
  model: iris
  version: 1
  # sized by guesswork
  replicas: {{min: 4, max: 4}}
  resources: {{cpu: "2", memory: 4Gi}}
  monitoring:
    latency: {{p99Ms: {slo:g}, window: 1m}}
"""


def _load(endpoints: list[str], token: str, seconds: float, clients: int = CLIENTS) -> tuple[int, list[float]]:
    """Closed-loop clients round-robin over ``endpoints``: (requests answered, latencies in ms)."""
    body = {"inputs": [{"name": c, "datatype": "FP64", "shape": [1], "data": [5.0]} for c in COLUMNS]}
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(offset: int) -> None:
        mine: list[float] = []
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10, trust_env=False) as http:
            i = offset
            while time.monotonic() < stop:
                started = time.perf_counter()
                response = http.post(endpoints[i % len(endpoints)] + "/v2/models/iris/infer", json=body)
                if response.status_code == 200:
                    mine.append((time.perf_counter() - started) * 1000)
                i += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies), latencies


def _p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98] if len(latencies) > 100 else max(latencies, default=0.0)


def right_sizing(minutes: float) -> None:
    from threadline import Client

    model, features, _target = iris()
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as scratch:
        root = Path(scratch)
        repo = root / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        git(repo, "config", "receive.denyCurrentBranch", "updateInstead")  # the checkout pushes back here
        (repo / "iris.yaml").write_text(SPEC.format(slo=SLO_MS))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "iris, over-provisioned")
        settings = {"THREADLINE_GITOPS_REPO": str(repo), "THREADLINE_GITOPS_INTERVAL": "2",
                    "THREADLINE_CAPACITY_INTERVAL": "5",
                    "THREADLINE_CAPACITY_MINIMUM_MINUTES": str(max(1, int(minutes) - 1))}
        with control_plane(root, settings, "--stop-workloads") as plane:
            url, token = plane.url, plane.token
            admin = Client(url, token)
            admin.register_model(model, "iris", owner="default", training_data=features)
            admin.create_user("ann", ["approver"])
            approver = Client(url, admin.create_token("bench", user="ann")["token"])
            admin.transition_version("iris", 1, "validate")
            admin.request_approval("iris", 1, "production")
            approver.decide("iris", 1, "production", "approve")
            admin.sync()
            before = wait(lambda: len((d := admin.deployment("iris"))["endpoints"]) == 4 and d, 120, "4 replicas")
            print(f"deployed: 4 replicas of 2 CPU / 4Gi; replaying {CLIENTS} clients for {minutes:g} min")
            answered, latencies = _load(before["endpoints"], token, minutes * 60)
            time.sleep(70)  # the last minute is rolled up once it is over
            samples = admin.utilization("iris", window="1h")
            used_cpu = statistics.fmean(s["cpu_cores"] for s in samples)
            used_mem = statistics.fmean(s["rss_bytes"] for s in samples)

            checkout = root / "checkout"
            git(root, "clone", "-q", str(repo), str(checkout))
            written = subprocess.run([sys.executable, "-m", "threadline", "recommend", "iris", "--window", "1h",
                                      "--write", "--checkout", str(checkout)], env=plane.env, capture_output=True,
                                     text=True, timeout=120)
            if written.returncode != 0:
                raise RuntimeError(f"threadline recommend failed: {written.stderr}")
            print(written.stdout)
            recommendation = admin.recommendation("iris", window="1h")
            git(checkout, "commit", "-q", "-am", "right-size iris (threadline recommend)")
            git(checkout, "push", "-q", "origin", "HEAD:main")
            admin.sync()
            # New requests change the serving configuration: the agent rolls new replicas blue/green.
            after = wait(lambda: (d := admin.deployment("iris"))["status"] == "Synced" and d["endpoints"]
                          and set(d["endpoints"]).isdisjoint(before["endpoints"]) and d, 300,
                          "the right-sized deployment")
            answered_after, latencies_after = _load(after["endpoints"], token, minutes * 60)

    requested = recommendation["requested"]
    cpu_before = requested["cpu_cores"] * requested["replicas_max"]
    mem_before = requested["memory_bytes"] * requested["replicas_max"]
    cpu_after = recommendation["cpu_cores"] * recommendation["replicas_max"]
    mem_after = recommendation["memory_bytes"] * recommendation["replicas_max"]
    gib = 1024 ** 3
    print(f"{'':28}{'before':>12}{'after':>12}{'ratio':>8}")
    print(f"{'requested CPU (cores)':28}{cpu_before:12.2f}{cpu_after:12.2f}{cpu_after / cpu_before:8.2f}")
    print(f"{'requested memory (GiB)':28}{mem_before / gib:12.2f}{mem_after / gib:12.2f}{mem_after / mem_before:8.2f}")
    print(f"{'CPU utilization':28}{used_cpu / requested['cpu_cores']:12.1%}"
          f"{used_cpu / recommendation['cpu_cores']:12.1%}")
    print(f"{'memory utilization':28}{used_mem / requested['memory_bytes']:12.1%}"
          f"{used_mem / recommendation['memory_bytes']:12.1%}")
    print(f"{'p99 latency (ms, SLO ' + format(SLO_MS, 'g') + ')':28}{_p99(latencies):12.2f}"
          f"{_p99(latencies_after):12.2f}")
    print(f"{'requests answered':28}{answered:12d}{answered_after:12d}")
    print(f"replicas: {requested['replicas_min']}-{requested['replicas_max']} -> "
          f"{recommendation['replicas_min']}-{recommendation['replicas_max']}; saving "
          f"{recommendation['saving_per_month']:.2f}/month; risk: {recommendation['risk']}")
    print(f"target: requested resources at most 0.5 of before and p99 within {SLO_MS:g} ms: "
          f"{'MET' if max(cpu_after / cpu_before, mem_after / mem_before) <= 0.5 and _p99(latencies_after) <= SLO_MS else 'NOT MET'}")


ROUNDS = 8


def sampling_overhead(seconds: float = 10.0) -> None:
    """Throughput of one serving process with and without a 1-second sampler reading it."""
    from threadline import Client
    from threadline.adapters import process_usage, serving_metrics

    model, features, _target = iris()
    with tempfile.TemporaryDirectory(prefix="bench-sampling-") as scratch, \
            control_plane(Path(scratch), {}) as plane:
        token = plane.token
        Client(plane.url, token).register_model(model, "iris", owner="default", training_data=features)
        serve_port = free_port()
        with (Path(scratch) / "serve.log").open("wb") as log:
            serve = subprocess.Popen([sys.executable, "-m", "threadline", "serve", "-m", "iris@1", "--port",
                                      str(serve_port)], env=plane.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            endpoint = f"http://127.0.0.1:{serve_port}"
            wait(lambda: _ready(endpoint), 60, "the serving process")
            _load([endpoint], token, 3)  # warm up
            stop = threading.Event()

            def sampler() -> None:
                with httpx.Client(headers={"Authorization": f"Bearer {token}"}, trust_env=False) as http:
                    while not stop.wait(1.0):
                        process_usage.cpu_and_rss(serve.pid)
                        serving_metrics.replica_counters(http.get(endpoint + "/metrics").text)

            off, on = [], []
            for round_number in range(ROUNDS):
                for sampled in ((False, True) if round_number % 2 == 0 else (True, False)):
                    thread = None
                    if sampled:
                        stop.clear()
                        thread = threading.Thread(target=sampler)
                        thread.start()
                    answered, _ = _load([endpoint], token, seconds)
                    if thread is not None:
                        stop.set()
                        thread.join()
                    (on if sampled else off).append(answered / seconds)
            # The direct figure: CPU time the serving process spends answering the sampler.
            scrapes = 500
            with httpx.Client(headers={"Authorization": f"Bearer {token}"}, trust_env=False) as http:
                before = process_usage.cpu_and_rss(serve.pid)
                for _ in range(scrapes):
                    http.get(endpoint + "/metrics")
                after = process_usage.cpu_and_rss(serve.pid)
            assert before is not None and after is not None
            per_scrape = (after[0] - before[0]) / scrapes
        finally:
            serve.terminate()
            serve.wait(timeout=60)
    # Each round pairs the two runs taken back to back; the median pair resists the machine's swings.
    cost = 1 - statistics.median(b / a for a, b in zip(off, on))
    print(f"throughput without sampling {statistics.median(off):.0f} req/s, with a 1 s sampler "
          f"{statistics.median(on):.0f} req/s (medians): overhead {cost:.2%} by the median pair (target under "
          f"1%; pairs off/on: {', '.join(f'{a:.0f}/{b:.0f}' for a, b in zip(off, on))})")
    print(f"one sample costs the serving process {per_scrape * 1000:.2f} ms of CPU: {per_scrape / 10:.3%} of one core "
          f"at the default 10 s interval, {per_scrape:.3%} at 1 s")


def _ready(endpoint: str) -> bool:
    try:
        return httpx.get(endpoint + "/v2/health/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="load before and after, in minutes")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-right-sizing", action="store_true")
    args = parser.parse_args()
    if not args.skip_right_sizing:
        right_sizing(args.minutes)
    if not args.skip_overhead:
        sampling_overhead()


if __name__ == "__main__":
    main()
