"""Telemetry sampled in the worker while frames run: a thread that sleeps between samples.

GPU through NVML (nvidia-ml-py): temperature, power, energy counter, SM and memory clocks,
utilisation, memory used, clock-throttle reasons and violation time. Host through psutil: CPU
utilisation and frequency, temperature sensors where the OS exposes them, the worker's RSS.
A source that is not there is recorded as unavailable with the reason, never as zeros.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

import psutil

from harness.contract.wire import THROTTLE_BITS, TelemetrySeries
from harness.worker.pipeline.cpu_clock import HELPER_THREADS


class _Nvml:
    """One GPU's NVML handle, or the reason there is none."""

    def __init__(self, device_index: Optional[int]) -> None:
        self.handle = None
        self.reason = ""
        self.nvml = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
        except Exception as exc:  # noqa: BLE001 - any NVML failure is the reason
            self.reason = f"NVML not available: {exc}"
        if device_index is None:
            self.reason = "the run is on the CPU" + (f"; {self.reason}" if self.reason else " (no GPU to read)")
            return
        if self.nvml is not None:
            try:
                self.handle = self.nvml.nvmlDeviceGetHandleByIndex(device_index)
            except Exception as exc:  # noqa: BLE001
                self.reason = f"NVML has no device {device_index}: {exc}"

    def read(self, name: str, call: Callable[[], float]) -> Optional[float]:
        try:
            return float(call())
        except Exception:  # noqa: BLE001 - a counter this GPU lacks reads as missing, not zero
            return None

    def close(self) -> None:
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001
                pass


def _cpu_temperature() -> tuple[Optional[float], str]:
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is None:
        return None, "psutil cannot read temperature sensors on this OS"
    try:
        sensors = reader()
    except Exception as exc:  # noqa: BLE001
        return None, f"temperature sensors unreadable: {exc}"
    for key in ("coretemp", "k10temp", "zenpower", "cpu_thermal", "acpitz"):
        if sensors.get(key):
            return max(s.current for s in sensors[key]), ""
    if sensors:
        first = next(iter(sensors.values()))
        if first:
            return max(s.current for s in first), ""
    return None, "the OS exposes no temperature sensors (common in VMs)"


class TelemetrySampler:
    """Start before the frames, stop after; `series` then holds the samples and the sources' status."""

    def __init__(self, hz: float, gpu_index: Optional[int]) -> None:
        self.interval = 1.0 / hz
        self.series = TelemetrySeries(hz=hz)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="harness-telemetry", daemon=True)
        self._process = psutil.Process()
        self._gpu = _Nvml(gpu_index)
        self._origin = time.perf_counter()
        self.series.sources["gpu"] = "available" if self._gpu.handle is not None else f"unavailable: {self._gpu.reason}"
        temperature, why = _cpu_temperature()
        self.series.sources["host_temperature"] = "available" if temperature is not None else f"unavailable: {why}"
        freq = psutil.cpu_freq() if hasattr(psutil, "cpu_freq") else None
        self.series.sources["host_frequency"] = ("available" if freq is not None
                                                 else "unavailable: the OS does not report CPU frequency")

    @property
    def origin(self) -> float:
        return self._origin

    def __enter__(self) -> "TelemetrySampler":
        psutil.cpu_percent(interval=None)  # first call primes the counter
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._gpu.close()

    def _loop(self) -> None:
        HELPER_THREADS.add(threading.get_native_id())  # its waits for a CPU never hold a frame up
        cpu_start, wall_start = time.thread_time(), time.perf_counter()
        next_at = wall_start
        while not self._stop.is_set():
            self._sample()
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.perf_counter()))  # sleeps; never spins
        self.series.sampler_cpu_s = time.thread_time() - cpu_start
        self.series.sampler_wall_s = time.perf_counter() - wall_start

    def _sample(self) -> None:
        s = self.series
        s.t_s.append(time.perf_counter() - self._origin)
        s.cpu_percent.append(psutil.cpu_percent(interval=None))
        freq = psutil.cpu_freq() if s.sources["host_frequency"] == "available" else None
        s.cpu_mhz.append(float(freq.current) if freq else None)
        s.cpu_temp_c.append(_cpu_temperature()[0] if s.sources["host_temperature"] == "available" else None)
        s.rss_bytes.append(float(self._process.memory_info().rss))
        gpu = self._gpu
        if gpu.handle is None:
            return
        nv, h = gpu.nvml, gpu.handle
        s.gpu_temp_c.append(gpu.read("temp", lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)))
        s.gpu_power_w.append(gpu.read("power", lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000.0))
        s.gpu_energy_j.append(gpu.read("energy", lambda: nv.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0))
        s.sm_clock_mhz.append(gpu.read("sm", lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)))
        s.mem_clock_mhz.append(gpu.read("mem", lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM)))
        s.gpu_util_percent.append(gpu.read("util", lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu))
        s.gpu_mem_used_bytes.append(gpu.read("used", lambda: nv.nvmlDeviceGetMemoryInfo(h).used))
        s.throttle_reasons.append(gpu.read("reasons", lambda: nv.nvmlDeviceGetCurrentClocksThrottleReasons(h)))
        s.power_violation_ns.append(gpu.read("violation", lambda: nv.nvmlDeviceGetViolationStatus(
            h, nv.NVML_PERF_POLICY_POWER).violationTime))
        s.thermal_violation_ns.append(gpu.read("violation", lambda: nv.nvmlDeviceGetViolationStatus(
            h, nv.NVML_PERF_POLICY_THERMAL).violationTime))


__all__ = ["TelemetrySampler", "THROTTLE_BITS"]
