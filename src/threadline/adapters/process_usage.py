"""CPU time and resident memory of a process, from /proc (Linux), and GPU use through NVML.

Reading /proc costs microseconds and nothing in the measured process, so sampling never
slows serving down. NVML (``nvidia-ml-py``, the ``gpu`` extra) is optional: without it, or
without an NVIDIA GPU, GPU figures are None, which reports say as "no GPU data", never zero.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("threadline.capacity")

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_and_rss(pid: int) -> tuple[float, int] | None:
    """(CPU seconds used so far, resident bytes now), or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS, int(statm.split()[1]) * _PAGE


class Gpus:
    """Per-process GPU memory and device utilization, when NVML and a GPU are present."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self.absent_because = ""
        try:
            import pynvml  # type: ignore[import-not-found,import-untyped]
        except ImportError:
            self.absent_because = "no GPU data: nvidia-ml-py is not installed (pip install 'threadline[gpu]')"
            return
        try:
            pynvml.nvmlInit()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception as exc:  # NVMLError: no driver, no device
            self.absent_because = f"no GPU data: NVML did not start ({exc})"
            return
        if not self._handles:
            self.absent_because = "no GPU data: no NVIDIA GPU found"
            return
        self._nvml = pynvml

    @property
    def present(self) -> bool:
        return self._nvml is not None

    def usage(self, pid: int) -> tuple[float | None, int | None]:
        """(device utilization 0-1, this process's GPU memory) on the GPU the process uses."""
        if self._nvml is None:
            return None, None
        for handle in self._handles:
            try:
                running = self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)
                mine = [p for p in running if p.pid == pid]
                if mine:
                    util = self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0
                    return util, sum(int(p.usedGpuMemory or 0) for p in mine)
            except Exception as exc:
                log.debug("NVML query failed: %s", exc)
        return None, None
