"""Sampling a benchmark's process tree: peak memory (RSS and PSS) and CPU, split into the main
process, the sandbox (templates, their sessions, bubblewrap) and the rest. Used by eval.py."""

from __future__ import annotations

import itertools
import threading
import time


def is_sandbox_template(process) -> bool:
    """A sandbox template (zygote): the process whose reaped children are the sessions."""
    try:
        return any(part.endswith("zygote.py") for part in process.cmdline())
    except Exception:  # noqa: BLE001 -- a process that vanished is simply not one
        return False


class TreeSampler:
    """Samples a process tree every 50 ms: peak memory (RSS and PSS sums, split into the main
    process, the sandbox and the rest) and cumulative CPU, as a (monotonic time, seconds) series.

    CPU of the tree at an instant = for each live process, its own time plus that of the
    children it has reaped: a sandbox session that lived between two samples is counted in full
    once its template reaps it. Sandbox sessions count as the harness's cost, in memory and CPU:
    they are processes the harness starts to do its work (the pool runs the same code in its
    own processes, unsandboxed).
    """

    def __init__(self, root) -> None:
        self.root = root
        self.peaks: dict = {}
        self.cpu_series: dict[str, list[tuple[float, float]]] = {"main": [], "sandbox": [], "other": []}
        self.template_cpu: dict[int, float] = {}  # last seen, self + reaped sessions
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        templates: dict[int, bool] = {}
        while not self.stop.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            memory = {"main": [0, 0], "sandbox": [0, 0], "other": [0, 0]}
            cpu = dict.fromkeys(memory, 0.0)
            now = time.monotonic()
            for process in processes:
                try:
                    info = process.memory_full_info()
                    times = process.cpu_times()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                if process.pid not in templates:
                    templates[process.pid] = is_sandbox_template(process)
                total = times.user + times.system + times.children_user + times.children_system
                if templates[process.pid]:
                    self.template_cpu[process.pid] = total
                parent = "main" if process is self.root else "other"
                kind = "sandbox" if templates[process.pid] or _in_sandbox(process, templates) else parent
                cpu[kind] += total
                memory[kind][0] += info.rss
                memory[kind][1] += info.pss
            for kind, seconds in cpu.items():
                self.cpu_series[kind].append((now, seconds))
            self._keep_peaks(memory, len(processes))
            self.stop.wait(0.05)

    def _keep_peaks(self, memory: dict, processes: int) -> None:
        rss = sum(rss for rss, _ in memory.values())
        pss = sum(pss for _, pss in memory.values())
        for name, value in [("rss_mib", rss), ("pss_mib", pss), *(
            (f"{kind}_{what}_mib", values[index])
            for kind, values in memory.items()
            for index, what in enumerate(("rss", "pss"))
        )]:
            self.peaks[name] = max(self.peaks.get(name, 0), value / 2**20)
        self.peaks["processes"] = max(self.peaks.get("processes", 0), processes)

    def cpu_between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds each part of the tree spent between two monotonic instants."""
        return {
            kind: _interpolate(series, end) - _interpolate(series, start)
            for kind, series in self.cpu_series.items()
        }


def _in_sandbox(process, templates: dict[int, bool]) -> bool:
    """A session (a template's child) or the bubblewrap processes around a template."""
    try:
        if templates.get(process.ppid()):
            return True
        return process.name() == "bwrap"
    except Exception:  # noqa: BLE001
        return False


def _interpolate(series: list[tuple[float, float]], at: float) -> float:
    if not series:
        return 0.0
    for (t0, v0), (t1, v1) in itertools.pairwise(series):
        if t0 <= at <= t1:
            return v0 + (v1 - v0) * (at - t0) / max(t1 - t0, 1e-9)
    return series[0][1] if at < series[0][0] else series[-1][1]
