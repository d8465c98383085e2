"""The dashboard in a real browser: headless Chromium (Debian's, driven by Playwright) against ``labsat``'s
service on 127.0.0.1, its benches in bench processes as ``labsat serve`` runs them.

One operator session logs in, submits a training job from the form, watches the loss curve gain points,
presses the emergency stop and sees the bench safe and the job cancelled; a finished model's page shows
its curves; a read token's session shows no write control, and a write it forges from the page gets 403.
Every request the pages make is recorded: none may go to another host. Screenshots (1280 × 800) go to
``$LABSAT_SCREENSHOTS`` (default ``build/screenshots``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import (  # noqa: F401  (fixtures)
    QUICK,
    TOKENS,
    WAIT_S,
    calibrated_fixture,
    calibrated_template_fixture,
    new_engine,
    serving,
    wait_for,
)

from labsat.api.auth import Scope
from labsat.client import LabsatClient
from labsat.jobs.model import JobState

playwright_sync = pytest.importorskip("playwright.sync_api", reason="the dev extras install Playwright")

BENCH = "sim-mrr"
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(os.environ.get("LABSAT_SCREENSHOTS", Path(__file__).parents[1] / "build" / "screenshots"))
LOAD_LIMIT_MS = 1000.0
LIVE_LIMIT_MS = 500.0
WAIT_MS = WAIT_S * 1000


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium for the dashboard test (.ci/run installs it)")
        pytest.skip("no chromium on this machine: apt-get install chromium")
    return found


@pytest.fixture(name="browser")
def browser_fixture() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


class Visit:
    """A browser tab on the dashboard that records every request it makes."""

    def __init__(self, browser: Any, url: str) -> None:
        self.url = url
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.requests: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))

    def login(self, token: str) -> None:
        self.page.goto(f"{self.url}/")
        self.page.fill("#login-token", token)
        self.page.click("#login-form button[type=submit]")
        self.page.wait_for_selector("[data-testid=bench-view] .cell")

    def points(self, key: str) -> int:
        return int(self.page.text_content(f"[data-testid=points-{key}]").split()[0])

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def record(self, **timings: Any) -> None:
        """Add measured times to ``timings.json`` beside the screenshots."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / "timings.json"
        known = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**known, **timings}, indent=2))

    def foreign_requests(self) -> list[str]:
        return [url for url in self.requests if not url.startswith((f"{self.url}/", "blob:", "data:"))]


def test_an_operator_trains_from_the_form_watches_the_curve_and_stops_the_bench(calibrated: Path, browser: Any) -> None:
    with serving(new_engine(calibrated, isolation="process")) as url, LabsatClient(url, TOKENS[Scope.OPERATE]) as lab:
        visit = Visit(browser, url)
        page = visit.page
        visit.login(TOKENS[Scope.OPERATE])
        page.reload()  # a page load with the token already in the tab: auto-login, then the bench drawn live
        page.wait_for_selector("[data-testid=bench-view] .cell")
        load_ms = page.evaluate("window.labsatTimings.ready")
        assert load_ms < LOAD_LIMIT_MS, f"the bench view took {load_ms:.0f} ms to load"
        assert page.locator(".heatmap .cell[data-channel^='heaters.']").count() == 64  # every heater of the 8 × 8 bank
        assert page.text_content("[data-testid=bench-state]") == "idle"
        assert "of 640 mW budget" in page.text_content(".summary")
        pattern = {f"heaters.h{i}": 0.25 * (1 + i % 15) for i in range(0, 64, 3)}  # 22 heaters, 0.25–3.75 V
        lab.set_channels(BENCH, pattern)
        written = time.monotonic()
        shown = f"h57{pattern['heaters.h57']:.2f} V"
        wait_for(lambda: page.text_content("[data-channel='heaters.h57']") == shown, what="the heat map to follow")
        bench_lag_s = time.monotonic() - written
        assert bench_lag_s < LIVE_LIMIT_MS / 1000, f"the bench view showed a write {bench_lag_s:.2f} s late"
        assert "22 of 64 away from their safe value" in page.text_content("[data-testid=bench-view]")
        visit.shot("bench-view")

        page.click("a[data-page=jobs]")
        page.select_option("#submit-kind", "train")
        page.fill("#param-dataset", "iris")
        page.select_option("#param-method", "pat")
        page.fill("#param-epochs", "400")
        page.fill("#param-batch_size", "112")  # iris: one step per epoch, so points come quickly
        page.click("#submit-form button[type=submit]")
        page.wait_for_selector("[data-testid=job-view]")
        job_id = page.url.rsplit("/", 1)[-1]
        job = lab.job(job_id)
        assert job.kind == "train" and job.params["epochs"] == 400 and job.params["method"] == "pat"

        wait_for(lambda: visit.points("loss") >= 2, what="the loss curve's first points")
        state = page.locator("[data-testid=job-state]")
        page.click("button[data-action=pause]")
        playwright_sync.expect(state).to_have_text("paused", timeout=WAIT_MS)
        page.click("button[data-action=resume]")
        playwright_sync.expect(state).to_have_text("running", timeout=WAIT_MS)
        seen = visit.points("loss")
        wait_for(lambda: visit.points("loss") > seen, what="the loss curve to gain a point")
        assert page.text_content("[data-testid=job-state]") == "running"
        assert visit.points("forwards") >= seen and visit.points("bench_time_s") >= seen
        visit.shot("running-job")

        page.click("#estop")
        page.click("#estop-confirm")
        page.wait_for_selector(".banner.safe")
        assert f"bench {BENCH} is safe: every output at its safe value; cancelled {job_id}" in page.text_content(
            "#banner"
        )
        playwright_sync.expect(page.locator("[data-testid=job-state]")).to_have_text("cancelled", timeout=WAIT_MS)
        assert lab.job(job_id).state is JobState.CANCELLED
        detail = lab.bench(BENCH)
        assert all(
            channel.present_v == channel.safe_v
            for device in detail.devices
            for channel in device.channels
            if channel.safe_v is not None
        )

        lags = page.evaluate("window.labsatTimings.updates")
        assert len(lags) >= seen
        assert max(update["lagMs"] for update in lags) < LIVE_LIMIT_MS, [update["lagMs"] for update in lags]
        visit.record(
            page_load_ms=load_ms,
            bench_write_shown_ms=1000 * bench_lag_s,
            training_update_lag_ms={"max": max(u["lagMs"] for u in lags), "count": len(lags)},
        )

        finished = lab.submit("train", {"dataset": "iris", "method": "pat", "batch_size": 112, "epochs": 3})
        done = lab.wait(finished.id, timeout=WAIT_S)
        assert done.state is JobState.SUCCEEDED
        model = done.result["model"]
        evaluation = lab.submit("evaluate", {"models": [model], "sweeps": ["drift"], "seeds": 1, "landscape_steps": 5})
        assert lab.wait(evaluation.id, timeout=WAIT_S).state is JobState.SUCCEEDED
        page.goto(f"{url}/#/models/{model}")
        page.wait_for_selector("[data-testid=robustness] img")
        assert page.locator("[data-testid=points-loss]").first.text_content() == "3 points"
        assert "test accuracy (device)" in page.text_content("[data-testid=model-view]")
        visit.shot("model")
        page.goto(f"{url}/#/jobs/{evaluation.id}")
        report = page.frame_locator("iframe.report")
        playwright_sync.expect(report.locator("h1")).to_contain_text("labsat robustness report")
        visit.shot("evaluation-report")
        with page.expect_popup() as opened:  # an artifact opens in the browser, fetched with the token
            page.click("a[data-artifact$='.html']")
        playwright_sync.expect(opened.value.locator("h1")).to_contain_text("labsat robustness report")
        page.goto(f"{url}/#/results")
        page.wait_for_selector("text=Trained models")
        visit.shot("results")

        assert visit.foreign_requests() == []
        assert any(f"/api/jobs/{job_id}/stream?after=0" in request for request in visit.requests)  # over SSE


def test_a_calibration_from_the_form_shows_each_ring_sweep_and_its_fit_as_it_arrives(
    data_dir: Path, browser: Any
) -> None:
    with serving(new_engine(data_dir)) as url, LabsatClient(url, TOKENS[Scope.OPERATE]) as lab:
        visit = Visit(browser, url)
        page = visit.page
        visit.login(TOKENS[Scope.OPERATE])
        page.click("a[data-page=jobs]")
        page.select_option("#submit-kind", "calibrate")
        page.fill("#param-options", json.dumps(QUICK.model_dump(include={"sweep_points", "heater_maps"})))
        page.click("#submit-form button[type=submit]")
        page.wait_for_selector("[data-testid=job-view]")
        job_id = page.url.rsplit("/", 1)[-1]
        assert lab.job(job_id).params["options"]["sweep_points"] == QUICK.sweep_points

        wait_for(lambda: page.locator("[data-testid=ring-grid] .ring").count() >= 8, what="the first rings' sweeps")
        caption = page.text_content("[data-testid=ring-caption]")
        assert caption.startswith("ring (") and ("resonance" in caption or "not fitted" in caption), caption
        visit.shot("calibration-live")
        done = lab.wait(job_id, timeout=WAIT_S)
        assert done.state is JobState.SUCCEEDED, done.error
        playwright_sync.expect(page.locator("[data-testid=ring-grid] .ring")).to_have_count(64)
        flagged = page.locator("[data-testid=ring-grid] .ring.flagged").count()
        record = lab.calibration(done.result["calibration"])
        assert flagged == sum(fit is None for row in record["rings"]["fits"] for fit in row)
        page.click("[data-ring='3,5']")
        assert page.text_content("[data-testid=ring-caption]").startswith("ring (3, 5)")
        lags = [update["lagMs"] for update in page.evaluate("window.labsatTimings.updates")]
        assert lags and max(lags) < LIVE_LIMIT_MS, lags
        visit.record(calibration_update_lag_ms={"max": max(lags), "count": len(lags)})

        page.goto(f"{url}/#/calibrations/{done.result['calibration']}")
        page.wait_for_selector("[data-testid=calibration-view] .plots img")
        visit.shot("calibration-record")
        assert visit.foreign_requests() == []


def test_a_latched_fault_shows_on_the_bench_view_and_only_an_admin_clears_it(calibrated: Path, browser: Any) -> None:
    engine = new_engine(calibrated, isolation="process")
    with serving(engine) as url:
        admin, operator = Visit(browser, url), Visit(browser, url)
        admin.login(TOKENS[Scope.ADMIN])
        operator.login(TOKENS[Scope.OPERATE])
        pid = engine.worker(BENCH).pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # the supervisor drives the bench safe from a fresh process and latches a fault
        for visit in (admin, operator):
            state = visit.page.locator("[data-testid=bench-state]")
            playwright_sync.expect(state).to_have_text("faulted", timeout=WAIT_MS)
            assert "fault: " in visit.page.text_content(".summary")
        assert operator.page.locator("text=Clear fault").count() == 0
        admin.shot("bench-faulted")
        admin.page.click("text=Clear fault")
        playwright_sync.expect(admin.page.locator("[data-testid=bench-state]")).to_have_text("idle", timeout=WAIT_MS)
        assert engine.bench_status(BENCH).state == "idle"


def test_a_read_token_sees_no_write_control_and_a_forged_write_gets_403(calibrated: Path, browser: Any) -> None:
    with serving(new_engine(calibrated)) as url:
        visit = Visit(browser, url)
        page = visit.page
        visit.login(TOKENS[Scope.READ])
        assert page.text_content("#who") == "read (read)"
        assert page.is_hidden("#estop")
        page.click("a[data-page=jobs]")
        page.wait_for_selector("text=Queue and history")
        assert page.locator("#submit-form").count() == 0
        assert page.locator("button[data-action]").count() == 0
        page.click("a[data-page=results]")
        page.wait_for_selector("text=Trained models")
        assert page.locator("text=Evaluate selected").count() == 0
        forged = page.evaluate(
            """async (bench) => {
                const token = sessionStorage.getItem("labsat.token");
                const response = await fetch(`/api/benches/${bench}/stop`, {
                    method: "POST", headers: { Authorization: `Bearer ${token}` } });
                return response.status;
            }""",
            BENCH,
        )
        assert forged == 403
        assert visit.foreign_requests() == []
