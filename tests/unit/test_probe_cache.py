"""The probe cache (harness/probe/cache.py): a reply is reused only for the same job, machine and software, only
where HARNESS_PROBE_CACHE names a folder, never after a failure and never for another interpreter. The worker is
replaced here by a recorder (the real probe runs in tests/test_probe_plan.py, marked real_probe)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest

from harness.contract.wire import ProbeJob, ProbeReply, TorchFacts, WorkerError
from harness.probe import machine
from harness.probe.cache import PROBE_CACHE_ENV, probe_key


class _Worker:
    """Stands in for the probe worker: counts its runs, answers a fabricated reply (or a failed one)."""

    def __init__(self) -> None:
        self.runs = 0
        self.fail = False

    def __call__(self, job: ProbeJob, work_dir: Path, python: Optional[str]) -> ProbeReply:
        self.runs += 1
        if self.fail:
            return ProbeReply(facts=TorchFacts(import_error=WorkerError(type="ProbeWorkerFailed", message="timed out",
                                                                        traceback="", phase="probe")))
        return ProbeReply(facts=TorchFacts(torch_version="9.9.9", python="3.x"), baseline_rss_bytes=123 + self.runs,
                          cpu_matmul_gflops={"float32": 1.5})


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> _Worker:
    fake = _Worker()
    monkeypatch.setattr(machine, "_run_probe_worker", fake)
    monkeypatch.setenv(PROBE_CACHE_ENV, str(tmp_path / "cache"))
    return fake


def _probe(tmp_path: Path, **kwargs: object) -> ProbeReply:
    return machine._probe_worker(tmp_path / "work", ["personaplex-tiny"], False, **kwargs)  # type: ignore[arg-type]


def test_the_same_probe_is_answered_from_the_cache(worker: _Worker, tmp_path: Path) -> None:
    first = _probe(tmp_path)
    again = _probe(tmp_path)
    assert worker.runs == 1 and again == first and again.baseline_rss_bytes == 124
    assert len(list((tmp_path / "cache").glob("probe-*.json"))) == 1


def test_another_job_or_environment_probes_again(worker: _Worker, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _probe(tmp_path)
    _probe(tmp_path, cpu_stages=True)
    assert worker.runs == 2, "CPU stage timing is another probe"
    _probe(tmp_path, cpu_stages=True, cpu_threads=1)
    assert worker.runs == 3, "another thread count is another probe"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    _probe(tmp_path)
    assert worker.runs == 4, "an environment variable torch reads is part of the key"
    _probe(tmp_path)
    assert worker.runs == 4


def test_a_failed_probe_is_never_replayed(worker: _Worker, tmp_path: Path) -> None:
    worker.fail = True
    assert _probe(tmp_path).facts.import_error is not None
    worker.fail = False
    assert _probe(tmp_path).facts.import_error is None and worker.runs == 2
    assert _probe(tmp_path).facts.import_error is None and worker.runs == 2


def test_no_cache_without_the_variable_or_for_another_interpreter(worker: _Worker, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _probe(tmp_path, python="/some/venv/bin/python")
    _probe(tmp_path, python="/some/venv/bin/python")
    assert worker.runs == 2 and not (tmp_path / "cache").exists()
    monkeypatch.setenv(PROBE_CACHE_ENV, "")
    _probe(tmp_path)
    _probe(tmp_path)
    assert worker.runs == 4 and not (tmp_path / "cache").exists()


def test_an_unreadable_cache_file_means_a_real_probe(worker: _Worker, tmp_path: Path) -> None:
    _probe(tmp_path)
    (kept,) = (tmp_path / "cache").glob("probe-*.json")
    kept.write_text('{"facts": {"torch_version": 3}')
    assert _probe(tmp_path).baseline_rss_bytes == 125 and worker.runs == 2


def test_the_key_follows_the_worker_code(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.probe import cache

    job = ProbeJob(reply_path="x", presets=["personaplex-tiny"])
    before = probe_key(job)
    assert probe_key(ProbeJob(reply_path="elsewhere", presets=["personaplex-tiny"])) == before, "not the reply path"
    monkeypatch.setattr(cache, "_worker_code_digest", lambda: "edited")
    assert probe_key(job) != before
