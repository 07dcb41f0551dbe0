"""CPU time and memory from /proc; GPU figures through NVML only when it and a GPU exist (else None)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from threadline.adapters.process_usage import Gpus, cpu_and_rss

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")


def test_this_process_has_used_cpu_and_holds_memory() -> None:
    usage = cpu_and_rss(os.getpid())
    assert usage is not None
    cpu_seconds, rss_bytes = usage
    assert cpu_seconds > 0
    assert rss_bytes > 1024 * 1024  # a Python process with pytest loaded holds megabytes
    assert isinstance(rss_bytes, int)


def test_cpu_seconds_grow_with_work() -> None:
    before = cpu_and_rss(os.getpid())
    assert before is not None
    deadline = time.monotonic() + 5
    after = before
    while after[0] <= before[0] and time.monotonic() < deadline:
        sum(i * i for i in range(20_000))
        after = cpu_and_rss(os.getpid()) or after
    assert after[0] > before[0]


def test_a_process_that_does_not_exist_has_no_usage() -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert cpu_and_rss(pid_max + 1) is None


def test_a_process_that_has_exited_has_no_usage() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cpu_and_rss(child.pid) is None


def test_a_command_name_with_spaces_and_parentheses_is_read_correctly(tmp_path: Path) -> None:
    odd = tmp_path / "a) b (c"
    odd.symlink_to(sys.executable)
    child = subprocess.Popen([str(odd), "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 5
        while ") b (" not in Path(f"/proc/{child.pid}/stat").read_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ") b (" in Path(f"/proc/{child.pid}/stat").read_text()
        usage = cpu_and_rss(child.pid)
        assert usage is not None
        cpu_seconds, rss_bytes = usage
        assert cpu_seconds >= 0 and rss_bytes > 0
    finally:
        child.kill()
        child.wait()


def test_without_an_nvidia_gpu_there_is_no_gpu_data_rather_than_zero() -> None:
    gpus = Gpus()
    if gpus.present:  # pragma: no cover - only on a machine with an NVIDIA GPU
        pytest.skip("this machine has an NVIDIA GPU")
    assert gpus.present is False
    assert gpus.absent_because.startswith("no GPU data")
    assert gpus.usage(os.getpid()) == (None, None)


def fake_nvml(monkeypatch: pytest.MonkeyPatch, *, init_error: Exception | None = None, devices: int = 1,
              processes: list[Any] | None = None, util: int = 37) -> types.ModuleType:
    module = types.ModuleType("pynvml")

    def init() -> None:
        if init_error is not None:
            raise init_error

    module.nvmlInit = init  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: devices  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda i: f"gpu{i}"  # type: ignore[attr-defined]
    module.nvmlDeviceGetComputeRunningProcesses = (  # type: ignore[attr-defined]
        lambda handle: [p for p in processes or [] if p.handle == handle])
    module.nvmlDeviceGetUtilizationRates = lambda handle: types.SimpleNamespace(gpu=util)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module


def on(handle: str, pid: int, memory: int | None) -> types.SimpleNamespace:
    return types.SimpleNamespace(handle=handle, pid=pid, usedGpuMemory=memory)


def test_without_nvidia_ml_py_gpu_data_is_absent_and_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    gpus = Gpus()
    assert not gpus.present
    assert gpus.absent_because.startswith("no GPU data: nvidia-ml-py is not installed")
    assert gpus.usage(123) == (None, None)


def test_nvml_that_does_not_start_means_no_gpu_data(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, init_error=RuntimeError("Driver Not Loaded"))
    gpus = Gpus()
    assert not gpus.present
    assert gpus.absent_because == "no GPU data: NVML did not start (Driver Not Loaded)"
    assert gpus.usage(123) == (None, None)


def test_nvml_without_devices_means_no_gpu_data(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, devices=0)
    gpus = Gpus()
    assert not gpus.present
    assert gpus.absent_because == "no GPU data: no NVIDIA GPU found"


def test_gpu_usage_is_the_device_utilization_and_the_process_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, devices=2, util=37, processes=[
        on("gpu0", 99, 5_000), on("gpu1", 123, 2_000), on("gpu1", 123, None), on("gpu1", 7, 9_000)])
    gpus = Gpus()
    assert gpus.present and gpus.absent_because == ""
    util, memory = gpus.usage(123)
    assert util == pytest.approx(0.37)
    assert memory == 2_000  # only this process's contexts; unknown memory adds nothing


def test_a_process_not_on_any_gpu_has_no_gpu_data(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, processes=[on("gpu0", 99, 5_000)])
    assert Gpus().usage(123) == (None, None)


def test_a_failing_nvml_query_gives_no_gpu_data_instead_of_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    module = fake_nvml(monkeypatch, devices=2, processes=[on("gpu1", 123, 2_000)])

    def running(handle: str) -> list[Any]:
        if handle == "gpu0":
            raise RuntimeError("GPU is lost")
        return [on("gpu1", 123, 2_000)]

    module.nvmlDeviceGetComputeRunningProcesses = running  # type: ignore[attr-defined]
    gpus = Gpus()
    assert gpus.usage(123) == (pytest.approx(0.37), 2_000)  # the other GPU still answers
    module.nvmlDeviceGetComputeRunningProcesses = lambda handle: (_ for _ in ()).throw(  # type: ignore[attr-defined]
        RuntimeError("GPU is lost"))
    assert gpus.usage(123) == (None, None)


def test_figures_agree_with_what_the_process_reports_about_itself() -> None:
    usage = cpu_and_rss(os.getpid())
    times = os.times()
    status = Path("/proc/self/status").read_text()
    assert usage is not None
    vm_rss = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) * 1024
    assert usage[0] == pytest.approx(times.user + times.system, abs=0.1)
    assert usage[1] == pytest.approx(vm_rss, rel=0.1)
