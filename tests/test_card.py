"""The decision card as a person sees it (headless Chromium at 1400 px: in the first 900 px), and the exports CI and
dashboards read: junit.xml through a JUnit consumer (junitparser), metrics.prom through prometheus_client's
OpenMetrics parser, the card on $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from harness.records.scenario import Criteria
from harness.records.store import load_session
from harness.verdict.next_steps import next_steps
from tests import card_results as C
from tests.conftest import run_cli
from tests.test_report import browser, needs_browser  # noqa: F401 - the module's Chromium fixture

FOLD_PX = 900
SHOTS = os.environ.get("HARNESS_SCREENSHOTS")  # a folder to keep the screenshots in (to look at them)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cards")
    return {decision: C.write(make(), decision, root / decision) for decision, make in C.CASES.items()}


def _bottom(page, selector: str) -> float:  # noqa: ANN001
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not rendered"
    return box["y"] + box["height"]


@needs_browser
@pytest.mark.parametrize("decision", list(C.CASES))
def test_the_card_is_read_in_the_first_900_px(browser, folders: dict[str, Path], decision: str) -> None:  # noqa: ANN001, F811
    page = browser.new_page(viewport={"width": 1400, "height": FOLD_PX})
    page.goto((folders[decision] / "report.html").as_uri())
    assert page.locator("#decision").inner_text() == decision
    needed = ["#decision", "#verdict-headline", "#rule"]
    if decision == "GO":
        needed += ["#recommended", "#deploy-command"]
        command = page.locator("#deploy-command").inner_text()
        assert command.startswith("python -m moshi.server --device cuda")
        assert "p99 36.0 ms" in page.locator("#recommended").inner_text()
        assert "margin 36.0 ms (50%)" in page.locator("#recommended").inner_text()
        assert page.locator("#next-steps").count() == 0
    else:
        needed += ["#next-steps"]
        steps = page.locator("#next-steps li").all_inner_texts()
        assert steps, "a NO-GO or INCONCLUSIVE card says what to try next"
        assert page.locator("#deploy-command").count() == 0, "nothing to deploy without a GO"
        if decision == "INCONCLUSIVE":
            assert "--only cuda-bf16-compile-graphs --frames 4606" in steps[0]
        else:
            assert any("NVIDIA H100" in s and "24.0 ms" in s for s in steps)
    for selector in needed:
        assert page.locator(selector).is_visible(), selector
        assert _bottom(page, selector) <= FOLD_PX, f"{selector} lies below the first {FOLD_PX} px"
    # The rule is stated once (the card), not per run; a run's reasons are folded in its own section.
    body = page.text_content("body") or ""
    assert body.count("Rule: a frame is late past 72 ms") == 1
    runs = page.locator("#runs").inner_text()
    assert "72 ms" not in runs and "headroom" not in runs, "the runs table holds figures, not the rule per row"
    assert page.locator("details.run").count() == {"GO": 4, "NO-GO": 3, "INCONCLUSIVE": 2}[decision]
    assert not page.locator("details.run").first.evaluate("d => d.open")
    path = Path(SHOTS) / f"card-{decision}.png" if SHOTS else folders[decision] / "card.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 20_000
    page.close()


def test_summary_md_opens_with_the_card(folders: dict[str, Path]) -> None:
    go = (folders["GO"] / "summary.md").read_text()
    assert go.startswith("## rtx5090-go: GO\n") and "```sh\npython -m moshi.server --device cuda\n```" in go
    assert "margin 36.0 ms (50%)" in go and "Next steps" not in go
    inconclusive = (folders["INCONCLUSIVE"] / "summary.md").read_text()
    assert inconclusive.startswith("## rtx5090-inconclusive: INCONCLUSIVE\n") and "```sh" not in inconclusive
    assert "1. measure cuda-bf16-compile-graphs longer: 4606 frames in one run (it measured 300" in inconclusive
    assert inconclusive.count("Rule: a frame is late past 72 ms") == 1
    table = inconclusive.split("| run | frame |", 1)[1]
    assert "| p99 97.0 ms over the deadline |" in table and "72 ms deadline" not in table


def test_junit_xml_read_by_a_junit_consumer(folders: dict[str, Path]) -> None:
    suites = list(JUnitXml.fromfile(str(folders["GO"] / "junit.xml")))
    assert [s.name for s in suites] == ["rtx5090-go"]
    suite = suites[0]
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (4, 1, 0, 1)
    cases = {c.name: c for c in suite}
    assert cases["cuda-bf16-compile-graphs"].is_passed and cases["cuda-bf16-eager"].is_passed
    failure = cases["cuda-fp16-eager"].result[0]
    assert isinstance(failure, Failure) and failure.type == "not real time"
    assert "p99 97.0 ms" in failure.message and "Rule: a frame is late past 72 ms" in failure.message
    assert isinstance(cases["cuda-bf16-offload-eager"].result[0], Skipped)
    assert "p99 36.00" in (cases["cuda-bf16-compile-graphs"].system_out or "")
    raw = ET.parse(folders["GO"] / "junit.xml").getroot()
    assert not raw.findall(".//testcase/properties"), "no properties inside a testcase (xunit2, strict parsers)"
    assert raw.find("testsuite/properties/property[@name='decision']").get("value") == "GO"
    # Not enough evidence is not a pass: skipped with the command that settles it.
    undecided = {c.name: c for s in JUnitXml.fromfile(str(folders["INCONCLUSIVE"] / "junit.xml")) for c in s}
    skipped = undecided["cuda-bf16-compile-graphs"].result[0]
    assert isinstance(skipped, Skipped) and "not enough evidence" in skipped.message and "--frames 4606" in skipped.message
    assert not any(isinstance(r, Error) for c in undecided.values() for r in c.result)


def _families(path: Path) -> dict:
    return {f.name: f for f in text_string_to_metric_families(path.read_text())}


def test_metrics_prom_read_by_prometheus_client(folders: dict[str, Path]) -> None:
    families = _families(folders["GO"] / "metrics.prom")
    session = load_session(folders["GO"])
    hardware = session.machine.hardware_key
    p99 = {s.labels["run"]: s.value for s in families["harness_step_p99_seconds"].samples}
    assert p99 == {r.name: pytest.approx(r.metrics.ms_per_step.p99 / 1e3) for r in session.runs if r.metrics}
    sample = families["harness_rtf"].samples[0]
    assert sample.labels == {"scenario": "rtx5090-go", "run": sample.labels["run"], "hardware": hardware}
    assert families["harness_step_p50_seconds"].unit == "seconds"
    realtime = {s.labels["run"]: s.value for s in families["harness_realtime"].samples}
    assert realtime == {"cuda-bf16-compile-graphs": 1, "cuda-bf16-eager": 1, "cuda-fp16-eager": 0,
                        "cuda-bf16-offload-eager": 0}
    late = {s.labels["run"]: s.value for s in families["harness_late_frame_bound_ratio"].samples}
    assert late["cuda-bf16-compile-graphs"] < 0.01 < late["cuda-fp16-eager"]
    decision = {s.labels["decision"]: s.value for s in families["harness_decision"].samples}
    assert decision == {"GO": 1, "NO-GO": 0, "INCONCLUSIVE": 0, "RE-RUN": 0}
    no_go = {s.labels["decision"]: s.value for s in _families(folders["NO-GO"] / "metrics.prom")["harness_decision"].samples}
    assert no_go["NO-GO"] == 1 and no_go["GO"] == 0
    assert not list(folders["GO"].glob(".metrics.prom.*")), "written through a temporary file, renamed"


def test_harness_report_writes_the_exports_and_the_step_summary(folders: dict[str, Path], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    folder = folders["NO-GO"]
    (folder / "junit.xml").unlink()
    (folder / "metrics.prom").unlink()
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    done = run_cli("report", str(folder))
    assert done.returncode == 0, done.stderr
    assert (folder / "junit.xml").is_file() and "harness_step_p99_seconds" in (folder / "metrics.prom").read_text()
    text = step_summary.read_text()
    assert text.startswith("earlier step\n") and "## rtx5090-nogo: NO-GO" in text and "Next steps" in text


def test_next_steps_say_what_would_settle_or_pass() -> None:
    """Both directions: a run that may be real time gets more frames; one whose p99 misses does not (more frames
    cannot turn a miss), it gets the distance to the deadline; a GO gets none."""
    session = C.inconclusive_session()
    verdict = C.decided(session, "INCONCLUSIVE")
    steps = next_steps(session, verdict, Criteria())
    assert steps[0].startswith("measure cuda-bf16-compile-graphs longer: 4606 frames in one run")
    assert not any("cuda-fp16-eager longer" in s for s in steps)
    assert "cuda-fp16-eager, needs p99 35% lower" in steps[1]
    go = C.go_session()
    assert next_steps(go, C.decided(go, "GO"), Criteria()) == []
    no_go = C.no_go_session()
    no_go.target_plans = []
    assert not any("planner" in s for s in next_steps(no_go, C.decided(no_go, "NO-GO"), Criteria())), \
        "no prediction recorded: none invented"


def test_endpoint_results_export_too(tmp_path: Path) -> None:
    """`harness report` on a `harness endpoint` folder: junit.xml with a testcase per load (a slow server fails the
    SLO, a fast one passes), metrics.prom with the worst caller's figures."""
    from tests.endpoint_records import endpoint_results, write

    for name, step_ms, passes in (("fast", 30.0, True), ("slow", 120.0, False)):
        folder = write(endpoint_results(step_ms=step_ms, callers=2, seconds=4.0), tmp_path / name)
        done = run_cli("report", str(folder))
        assert done.returncode == 0, done.stderr
        cases = [c for s in JUnitXml.fromfile(str(folder / "junit.xml")) for c in s]
        assert [c.name for c in cases] == ["closed-2x2"]
        assert cases[0].is_passed is passes
        if not passes:
            assert isinstance(cases[0].result[0], Failure) and cases[0].result[0].type == "SLO"
        families = _families(folder / "metrics.prom")
        assert families["harness_endpoint_passed"].samples[0].value == (1 if passes else 0)
        gap = families["harness_endpoint_packet_gap_p99_worst_seconds"].samples[0].value
        assert (gap > 0.1) is not passes  # a 120 ms step spaces packets 120 ms apart; a 30 ms one keeps 80 ms


def test_the_card_names_nvidias_server_with_its_environment_and_the_capacity() -> None:
    """A GO measured with NVIDIA's server frame, eager: the command carries the environment first, the server is
    named; a measured capacity and its cost are on the card."""
    from harness.records.capacity import CapacityResult, CostLine, ProcessCapacity
    from harness.report.card import build_card
    from harness.report.render import criteria_of
    from tests.unit.test_verdict import _run, _session

    run = _run("bf16-eager", [40.0 + (i % 5) for i in range(4700)], serving="personaplex-server")
    run.metrics.capacity = CapacityResult(  # type: ignore[union-attr]
        max_realtime_sessions=6, limited_by="time", deadline_ms=72.0,
        processes=ProcessCapacity(max_realtime_processes=2, how="measured", limited_by="memory",
                                  cost=CostLine(gpu_hour_usd=2.0, price_source="test", sessions=2,
                                                per_conversation_hour_usd=1.0)))
    session = C._scenario(_session([run]), "nvidia")
    verdict = C.decided(session, "GO")
    card = build_card(session, verdict, criteria_of(session))
    assert card.decision == "GO" and card.deploy is not None
    assert card.deploy.server == "PersonaPlex (github NVIDIA/personaplex)"
    assert card.deploy.command == 'NO_TORCH_COMPILE=1 NO_CUDA_GRAPH=1 python -m moshi.server --ssl "$SSL_DIR"'
    assert card.capacity and card.capacity[0].text.startswith("2 server process(es) per machine (measured); $1.00 "
                                                               "per conversation-hour at $2.00/h")
