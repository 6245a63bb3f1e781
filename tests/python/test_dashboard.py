"""test_dashboard.py — the browser dashboard (web/) against a real mocod, in a real headless Chromium.

A real mocod (build/bin/mocod, tests/python/mocod_harness.py) runs a real, seconds-long MoCo
pretraining job on shipped images while Debian's Chromium, driven over the DevTools protocol
(cdp_browser.py), shows the job's page. Checked from inside the page: the loss chart's Chart.js
dataset gets points and keeps growing while the job runs, without the page reloading, and ends
with exactly the points the API stores; the kNN chart fills from `eval` events; the state shown
becomes `completed`; the checkpoints table lists the API's files and its download links return
the listed number of bytes. Then the submit form: a valid spec (with the form's name and
priority) creates a job the API knows, whose cancel button (after confirmation) cancels it; an
invalid spec shows the server's message and the field it names.
"""
import json
import time

import pytest

from cdp_browser import Browser
from mocod_harness import MOCOD, ROOT, Mocod, make_tiny_dataset, tiny_job

pytestmark = pytest.mark.skipif(not MOCOD.exists(), reason=f"{MOCOD} is not built")

LOSS_POINTS = ("(() => { const c = window.mocodCharts && window.mocodCharts.loss;"
               " return c ? c.data.datasets[0].data.length : 0; })()")
SHOWN_STATE = "(() => { const s = document.getElementById('job-state'); return s ? s.dataset.state : null; })()"


def page_errors(browser):
    """Uncaught exceptions and console errors, less the network log lines of expected 4xx."""
    return [e for e in browser.errors if "Failed to load resource" not in e]


def test_dashboard_follows_a_real_job_and_submits(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    # 4 epochs of 2 steps, a metric event per step and a kNN evaluation per epoch: long enough
    # to watch the charts grow, seconds in all on an idle machine.
    spec = tiny_job(data, **{"optim.epochs": 4, "eval.knn": {"every_epochs": 1, "k": 5},
                             "checkpoint.keep_last": 2})
    with Mocod(tmp_path / "state", data_roots=(ROOT, tmp_path)) as mocod, \
            Browser(tmp_path / "browser") as browser:
        # The browser is up and has the dashboard cached before the job exists, so the job's
        # page opens while the job is still young.
        browser.navigate(mocod.url + "/#/")
        browser.wait_for("document.querySelector('.table-wrap').textContent.includes('No jobs')")
        job_id = mocod.submit(spec)
        browser.navigate(f"{mocod.url}/#/jobs/{job_id}")
        browser.evaluate("window.__notReloaded = true")

        # ---- the loss chart grows while the job runs -------------------------------------
        samples = []  # (points in the chart, state shown) every 0.2 s until completed
        deadline = time.time() + 180  # generous: a busy machine runs this job many times slower
        while time.time() < deadline:
            samples.append(tuple(browser.evaluate(f"[{LOSS_POINTS}, {SHOWN_STATE}]")))
            if samples[-1][1] == "completed":
                break
            time.sleep(0.2)
        assert samples[-1][1] == "completed", (f"state shown: {samples[-1]}; job: {mocod.job(job_id)}; "
                                               f"page errors: {browser.errors}")
        grew_while_running = [(a, b) for a, b in zip(samples, samples[1:])
                              if a[1] == "running" and 0 < a[0] < b[0]]
        assert grew_while_running, f"loss points never grew while running: {samples}"
        assert browser.evaluate("window.__notReloaded === true"), "the page reloaded"
        assert browser.evaluate("document.getElementById('live-mode').textContent") == "live"

        # In the end the chart holds exactly the points the API stores (none lost, none twice).
        _, _, stored = mocod.get(f"/api/v1/jobs/{job_id}/metrics?key=loss&max_results=1000")
        steps = [p["step"] for p in stored["points"]]
        assert len(steps) == 8, stored
        browser.wait_for(f"{LOSS_POINTS} === {len(steps)}", timeout=10)
        assert browser.evaluate("window.mocodCharts.loss.data.datasets[0].data.map(p => p.x)") == steps
        browser.wait_for("(window.mocodCharts.knn && window.mocodCharts.knn.data.datasets[0].data.length) === 4",
                         timeout=10, message="the kNN chart has one point per epoch")
        # A chart without data says so instead of drawing an empty frame.
        assert "lincls" in browser.evaluate(
            "document.querySelector('.chart-card:last-child .chart-empty:not([hidden])').textContent")
        assert not browser.evaluate("window.mocodCharts.lincls")

        # ---- checkpoints: the API's files, with links that download them ------------------
        _, _, listing = mocod.get(f"/api/v1/jobs/{job_id}/checkpoints")
        ckpts = {c["name"]: c for c in listing["checkpoints"]}
        assert len(ckpts) == 2, listing  # keep_last 2
        browser.wait_for(f"document.querySelectorAll('.ckpt-table tbody tr').length === {len(ckpts)}", timeout=10)
        rows = browser.evaluate("""[...document.querySelectorAll('.ckpt-table tbody tr')].map(tr => ({
            name: tr.dataset.name, size: Number(tr.dataset.size),
            sha: tr.querySelector('td[data-label="SHA-256"] code').title,
            links: [...tr.querySelectorAll('a.download')].map(a => a.href)}))""")
        assert {r["name"] for r in rows} == set(ckpts)
        for r in rows:
            assert r["size"] == ckpts[r["name"]]["size"] and r["sha"] == ckpts[r["name"]]["sha256"]
        first = rows[0]
        file_link, backbone_link = first["links"]
        got = browser.evaluate(f"fetch({json.dumps(file_link)}).then(async r => [r.status, (await r.arrayBuffer()).byteLength])")
        assert got == [200, first["size"]], (got, first)
        got = browser.evaluate(f"fetch({json.dumps(backbone_link)}).then(async r => [r.status, (await r.arrayBuffer()).byteLength])")
        assert got[0] == 200 and 0 < got[1] < first["size"], got

        # ---- the submit form: a valid spec ------------------------------------------------
        browser.navigate(mocod.url + "/#/")
        browser.wait_for(f"document.querySelector('#jobs-table tr[data-job=\"{job_id}\"]')")
        longer = tiny_job(data, **{"optim.epochs": 200})
        browser.evaluate(f"""(() => {{
            document.getElementById('spec-text').value = {json.dumps(json.dumps(longer, indent=2))};
            document.getElementById('spec-name').value = 'from-the-dashboard';
            document.getElementById('spec-priority').value = '2';
            document.getElementById('submit-button').click(); }})()""")
        new_hash = browser.wait_for(f"/^#\\/jobs\\/\\d+$/.test(location.hash) && location.hash !== '#/jobs/{job_id}' && location.hash",
                                    timeout=15, message="the page opens the new job")
        new_id = int(new_hash.rsplit("/", 1)[1])
        submitted = mocod.job(new_id)
        assert submitted["name"] == "from-the-dashboard" and submitted["priority"] == 2, submitted
        assert submitted["spec"]["optim"]["epochs"] == 200

        # Its cancel button asks first, then cancels.
        browser.wait_for("document.querySelector('button[data-action=cancel]')", timeout=15)
        browser.evaluate("document.querySelector('button[data-action=cancel]').click()")
        browser.wait_for("document.getElementById('confirm-dialog').open")
        browser.evaluate("document.querySelector('#confirm-dialog button[value=yes]').click()")
        mocod.wait_state(new_id, "canceled", timeout=40)
        browser.wait_for(f"{SHOWN_STATE} === 'canceled'", timeout=10)
        assert not browser.evaluate("document.querySelector('button[data-action=cancel]')")

        # ---- the submit form: an invalid spec shows the server's message and field -----------
        bad = tiny_job(data, **{"optim.lr": "fast"})
        status, _, err = mocod.post("/api/v1/jobs", bad)
        assert status == 400 and err["error"].get("field") == "optim.lr", (status, err)
        browser.navigate(mocod.url + "/#/")
        browser.wait_for("document.getElementById('submit-button')")
        browser.evaluate(f"""(() => {{
            document.getElementById('spec-text').value = {json.dumps(json.dumps(bad))};
            document.getElementById('submit-button').click(); }})()""")
        shown = browser.wait_for("!document.getElementById('submit-error').hidden && "
                                 "document.getElementById('submit-error').innerText", timeout=10)
        assert err["error"]["message"] in shown and "optim.lr" in shown, shown
        assert browser.evaluate("document.querySelector('#submit-error .error-field').textContent") == "optim.lr"
        assert browser.evaluate("location.hash") == "#/"
        _, _, listed = mocod.get("/api/v1/jobs")
        assert len(listed["jobs"]) == 2, listed  # the refused spec created no job

        # ---- a linear evaluation's page names its charts for what it reports -----------------
        lin = {**tiny_job(data, **{"model.pretrained": f"job:{job_id}", "optim.epochs": 1}),
               "kind": "lincls", "name": "lin"}
        for k in ("method", "moco"):
            lin.pop(k)
        lin["model"].pop("dim")
        lin_id = mocod.submit(lin)
        browser.navigate(f"{mocod.url}/#/jobs/{lin_id}")
        browser.wait_for("document.getElementById('chart-acc-title').textContent === "
                         "'Classifier accuracy (train, %)'", timeout=15,
                         message="a lincls job's training accuracy is not called contrastive")
        browser.wait_for("document.querySelector('#chart-knn-title').parentNode"
                         ".querySelector('.chart-empty').textContent.includes('knn job')", timeout=15)
        mocod.post(f"/api/v1/jobs/{lin_id}/cancel")

        assert page_errors(browser) == [], page_errors(browser)


def test_dashboard_asks_for_the_token_and_polls(tmp_path):
    """With a token configured: the page asks for it (not again after the prompt was dismissed,
    again when refused), keeps it, and, since EventSource cannot send it, follows the job list
    by polling."""
    data = make_tiny_dataset(tmp_path / "data")
    with Mocod(tmp_path / "state", token="s3cret-token", data_roots=(ROOT, tmp_path)) as mocod, \
            Browser(tmp_path / "browser") as browser:
        browser.navigate(mocod.url + "/#/")
        browser.wait_for("document.getElementById('token-dialog').open", timeout=15)
        # Dismissed, the prompt stays closed while the page polls, until "Enter token" is used.
        browser.evaluate("document.querySelector('#token-dialog button[type=button]').click()")
        time.sleep(5)  # longer than the polling interval (4 s)
        assert not browser.evaluate("document.getElementById('token-dialog').open")
        assert "token" in browser.evaluate("document.querySelector('[role=alert]:not([hidden])').textContent")
        browser.evaluate("document.getElementById('enter-token').click()")
        browser.wait_for("document.getElementById('token-dialog').open", timeout=5)
        enter = ("(() => { document.getElementById('token-input').value = %s;"
                 " document.querySelector('#token-dialog button[type=submit]').click(); })()")
        browser.evaluate(enter % json.dumps("wrong"))
        browser.wait_for("document.getElementById('token-dialog').open && "
                         "document.querySelector('#token-dialog .dialog-note').textContent.includes('refused')",
                         timeout=15, message="a refused token is asked for again")
        browser.evaluate(enter % json.dumps("s3cret-token"))
        browser.wait_for("document.querySelector('.table-wrap').textContent.includes('No jobs')", timeout=15)
        assert browser.evaluate("localStorage.getItem('mocod.token')") == "s3cret-token"
        assert browser.evaluate("document.getElementById('live-mode').textContent") == "polling"

        # A job submitted elsewhere shows up by polling (it waits an hour: nothing runs).
        job_id = mocod.submit(tiny_job(data, not_before=time.time() + 3600))
        browser.wait_for(f"document.querySelector('#jobs-table tr[data-job=\"{job_id}\"][data-state=\"queued\"]')",
                         timeout=15, message="the polled list shows the new job")
        assert not browser.evaluate("document.getElementById('token-dialog').open")
        assert page_errors(browser) == [], page_errors(browser)
