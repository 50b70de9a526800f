"""report.html as a person sees it: rendered in headless Chromium (Debian's), verdict, plots, escaping."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from harness.records.scenario import Scenario
from harness.records.store import load_session, write_session
from harness.report.render import criteria_of, write_report
from harness.verdict.recommend import decide
from tests.conftest import run_cli
from tests.unit.test_verdict import _run, _session

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium; "
                                                            "scripts/test installs it when run as root)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
HOSTILE_NAME = "<script>window.__pwned = 1</script>"
HOSTILE_REASON = "CUDA said <b>no</b> <img src=x onerror=\"window.__pwned = 2\">"


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    playwright = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed")
    with playwright.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


def _results_folder(tmp_path: Path) -> Path:
    good = _run("cuda-bf16-compile-graphs", [30.0 + (i % 7) for i in range(4606)], compile=True, cuda_graphs=True)
    slow = _run("cuda-fp16-eager", [95.0 + (i % 3) for i in range(300)], dtype="float16")
    hostile = _run(HOSTILE_NAME, None, status="failed")
    hostile.reason = HOSTILE_REASON
    hostile.stderr_tail = "Traceback ...\n<script>window.__pwned = 3</script>"
    session = _session([good, slow, hostile])
    session.scenario = Scenario(name="browser", preset="personaplex-7b", frame_budget_ms=80.0, frames=400,
                                warmup_frames=10)
    session.verdict = decide(session, criteria_of(session))
    write_session(session, tmp_path)
    write_report(session, session.verdict, tmp_path)
    return tmp_path


@needs_browser
def test_report_shows_verdict_and_every_plot_in_chromium(browser, tmp_path: Path) -> None:  # noqa: ANN001
    folder = _results_folder(tmp_path)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((folder / "report.html").as_uri())
    headline = page.locator("#verdict-headline")
    assert page.locator("#decision").inner_text() == "GO"
    assert headline.is_visible() and headline.inner_text().startswith("cuda-bf16-compile-graphs runs")
    assert page.locator("#recommended").is_visible()
    assert page.locator("#model-label").inner_text() == "PersonaPlex-7B with synthetic weights"
    sub = page.locator("p.sub").inner_text()
    assert "300/4606 measured frames after 10 warmup" in sub, "frames from what ran, not from the YAML's 400"
    details = page.locator("#details").text_content() or ""  # folded: in the page, not on screen until opened
    assert ": certified" in details and "cannot be certified at this late rate" in details
    images = page.locator("figure img")
    assert images.count() == 5  # no telemetry in these fabricated runs
    for i in range(images.count()):
        assert images.nth(i).is_visible()
        assert images.nth(i).evaluate("img => img.complete && img.naturalWidth > 300")
    assert {r.split(":")[0] for r in requests} <= {"file", "data"}, "self-contained: no network requests"
    page.screenshot(path=str(folder / "report.png"), full_page=True)
    assert (folder / "report.png").stat().st_size > 50_000
    page.close()


@needs_browser
def test_html_in_names_and_errors_shows_as_text(browser, tmp_path: Path) -> None:  # noqa: ANN001
    folder = _results_folder(tmp_path)
    page = browser.new_page()
    page.goto((folder / "report.html").as_uri())
    assert page.evaluate("window.__pwned === undefined")
    body = page.text_content("body") or ""
    assert HOSTILE_NAME in body and "CUDA said <b>no</b>" in body
    assert page.locator("script").count() == 0 and page.locator("img[src='x']").count() == 0
    page.close()


def test_harness_report_re_renders_the_same_page_from_results_json(tmp_path: Path) -> None:
    folder = _results_folder(tmp_path)
    first = (folder / "report.html").read_text()
    (folder / "report.html").unlink()
    (folder / "summary.md").unlink()
    done = run_cli("report", str(folder))
    assert done.returncode == 0 and "GO: cuda-bf16-compile-graphs" in done.stdout, done.stderr
    second = (folder / "report.html").read_text()
    strip = re.compile(r"generated [^&]* by harness")
    assert strip.sub("", first) == strip.sub("", second)
    summary = (folder / "summary.md").read_text()
    assert summary.startswith("## browser: GO") and "| cuda-fp16-eager | model | ok |" in summary
    assert load_session(folder).runs[2].name == HOSTILE_NAME


def test_report_of_a_missing_or_foreign_folder_is_a_clear_error(tmp_path: Path) -> None:
    done = run_cli("report", str(tmp_path))
    assert done.returncode == 2 and "no such results file" in done.stderr and "Traceback" not in done.stderr
