"""Platform knowledge: WSL and unified memory in the probe, the hazards in plan and diagnose (issue 30)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.diagnosis.engine import diagnose_text
from harness.knowledge.gpus import find_gpu
from harness.knowledge.platforms import WSL_BLACKWELL_GRAPHS, target_hazards, wsl_hazards
from harness.plan.calibrate import calibration
from harness.plan.steptime import Params
from harness.probe import host

CORPUS = Path(__file__).resolve().parents[1] / "data" / "diagnosis"


def test_wsl_is_read_from_proc_version_and_absent_on_plain_linux(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("WSL_DISTRO_NAME", raising=False)
    version = tmp_path / "version"
    version.write_text("Linux version 6.6.87.2-microsoft-standard-WSL2 (root@439a258ad544) (gcc (GCC) 11.2.0)")
    facts = host.wsl_facts(str(version), str(tmp_path / "no-interop"))
    assert facts is not None and facts["wsl"] == "WSL2" and facts["interop"] == "no" and facts["release"] is None
    version.write_text("Linux version 6.8.0-45-generic (buildd@lcy02-amd64-115) (x86_64-linux-gnu-gcc-13)")
    assert host.wsl_facts(str(version), str(tmp_path / "no-interop")) is None
    monkeypatch.setenv("WSL_DISTRO_NAME", "Ubuntu")  # the distribution's variable alone says WSL
    assert host.wsl_facts(str(version), str(tmp_path / "no-interop"))["distro"] == "Ubuntu"  # type: ignore[index]


def test_wsl_graph_hazard_depends_on_the_release_and_the_gpu() -> None:
    assert WSL_BLACKWELL_GRAPHS in wsl_hazards("2.6.3.0", "12.0")
    assert WSL_BLACKWELL_GRAPHS in wsl_hazards(None, "12.0")  # release unknown: warn
    assert WSL_BLACKWELL_GRAPHS not in wsl_hazards("2.7.0.0", "12.0")
    assert WSL_BLACKWELL_GRAPHS not in wsl_hazards("2.6.3.0", "8.9")  # Ada is not the Blackwell case
    spark = find_gpu("dgx-spark")
    assert spark is not None
    assert [h.key for h in target_hazards(os="linux", memory_kind=spark.memory, cc="12.1")] == ["unified-memory"]
    assert target_hazards(os="linux", memory_kind="discrete", cc="9.0") == []


def test_field_logs_diagnose_to_their_hazard() -> None:
    wsl = diagnose_text((CORPUS / "074-vllm-37242-wsl2-5090-graph-capture.md").read_text().split("---\n", 2)[2])
    assert wsl.kind == "wsl_graph_capture" and "wsl --update" in wsl.remedy and "14452" in wsl.cause
    bare = diagnose_text("RuntimeError: CUDA error: unknown error\ncudaErrorUnknown")  # not WSL: no WSL advice
    assert bare.kind == "wsl_graph_capture" and "wsl" not in bare.remedy.lower()
    # NVIDIA's server on an empty persona text, as its log read in this project's endpoint run (issue 20)
    empty = diagnose_text('  File "moshi/models/lm.py", line 1097, in _step_text_prompt_core\n'
                          "    for text_prompt_token in self.text_prompt_tokens:\n"
                          "TypeError: 'NoneType' object is not iterable")
    assert empty.kind == "empty_text_prompt" and "persona text" in empty.remedy
    other = diagnose_text("TypeError: 'NoneType' object is not iterable")  # elsewhere: not this hazard
    assert other.kind != "empty_text_prompt"
    short = diagnose_text("  File \"moshi/models/lm.py\", in load_voice_prompt\n"
                          "ValueError: Audio must have length greater than the block size.")
    assert short.kind == "short_voice_prompt" and "NVIDIA's server" in short.cause and "400 ms" in short.remedy


def test_small_kernels_follow_the_clock() -> None:
    params = calibration().params
    # fitted on GB10 (moshi's own depformer, NVIDIA's fork), so at GB10's clock
    assert params.kernel_ref_mhz == find_gpu("dgx-spark").boost_mhz == 2525  # type: ignore[union-attr]
    a100, h100, rtx4090 = find_gpu("a100"), find_gpu("h100"), find_gpu("rtx4090")
    assert a100 is not None and h100 is not None and rtx4090 is not None
    # slower clocks pay more per kernel: A100 1410 MHz > H100 1980 > RTX 4090 2520 (GB10's 2525 is the reference)
    assert (params.kernel_us_on(a100.boost_mhz) > params.kernel_us_on(h100.boost_mhz)
            > params.kernel_us_on(rtx4090.boost_mhz) > params.kernel_us)
    assert params.kernel_us_on(h100.boost_mhz) == pytest.approx(params.kernel_us * 2525 / 1980)
    assert params.kernel_us_on(None) == params.kernel_us
    assert Params(0.6, 2.0, 3.0).kernel_us_on(1000) == 2.0  # no reference clock: no scaling


def test_memory_as_the_card_reports_it() -> None:
    l4 = find_gpu("l4")
    assert l4 is not None and l4.reported_mib == 23034 and l4.memory_bytes == 23034 * 2**20
    assert "ECC" in l4.memory_source and l4.memory_source.startswith("https://")
    h200 = find_gpu("h200")
    assert h200 is not None and h200.reported_mib is None and h200.memory_source.startswith("nominal")


def test_the_probe_flags_old_torch_on_hopper_and_unified_memory() -> None:
    from harness.contract.wire import GpuInfo
    from harness.probe.machine import platform_checks

    h100 = GpuInfo(index=0, name="NVIDIA H100 80GB HBM3", compute_capability="9.0", memory_total_bytes=81559 * 2**20)
    assert [c.name for c in platform_checks("2.4.1+cu124", [h100])] == ["old torch compile"]
    assert platform_checks("2.9.1+cu128", [h100]) == []  # a current torch: no hazard
    spark = GpuInfo(index=0, name="NVIDIA GB10", compute_capability="12.1", memory_total_bytes=119 * 2**30)
    checks = platform_checks("2.9.0+cu130", [spark])
    assert [c.name for c in checks] == ["unified memory"] and "offload frees nothing" in checks[0].finding
    assert platform_checks(None, []) == []
