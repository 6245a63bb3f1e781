"""test_mocod_lifecycle.py — jobs through a real mocod with real moco-train workers on real images.

A submitted job runs to completion with one metric point per step in the SQLite file; cancel and
pause act on the running worker; a paused and resumed job has exactly the losses of an
uninterrupted run (moco-train resumes bit-exactly, and mocod keeps the history in step with the
checkpoint); priority, `after` and cpu_slots decide the start order; a lincls job evaluates
`job:<id>`, the checkpoint of a pretraining that completed before it. Jobs are tiny (2 steps per
epoch on 40 images), so the module takes about a minute on one core.
"""
import hashlib
import sqlite3

from mocod_harness import Mocod, make_tiny_dataset, tiny_job, wait_until


def db_points(state_dir, job_id, key="loss"):
    """[(step, value)] of one metric, straight from the SQLite file."""
    con = sqlite3.connect(str(state_dir / "mocod.db"), timeout=10)
    try:
        return con.execute("SELECT step, value FROM metrics WHERE job = ? AND key = ? ORDER BY step",
                           (job_id, key)).fetchall()
    finally:
        con.close()



def states(job):
    return [t["to"] for t in job["transitions"]]


def test_run_pause_resume_matches_uninterrupted(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    with Mocod(state, data_roots=(tmp_path,)) as m:
        spec = tiny_job(data, **{"optim.epochs": 3})  # 6 steps
        ref = m.submit(spec)
        paused = m.submit(dict(spec, name="paused-one"))

        done = m.wait_state(ref, ["completed", "failed"], timeout=180)
        assert done["state"] == "completed", done["reason"]
        assert states(done) == ["queued", "starting", "running", "completed"]
        assert done["step"] == 6 and done["total_steps"] == 6 and done["progress"] == 1
        assert done["restarts"] == 0 and done["finished_at"] >= done["started_at"]
        ref_loss = db_points(state, ref)
        assert [s for s, _ in ref_loss] == [1, 2, 3, 4, 5, 6]  # every step once, no gaps
        for key in ("acc1", "acc5", "lr", "images_per_s"):
            assert [s for s, _ in db_points(state, ref, key)] == [1, 2, 3, 4, 5, 6], key
        # the API serves the same history
        status, _, body = m.get(f"/api/v1/jobs/{ref}/metrics?key=loss&max_results=4")
        assert status == 200 and [p["step"] for p in body["points"]] == [1, 2, 3, 4]
        status, _, body2 = m.get(f"/api/v1/jobs/{ref}/metrics?key=loss&max_results=4"
                                 f"&page_token={body['next_page_token']}")
        assert [p["step"] for p in body2["points"]] == [5, 6] and body2["next_page_token"] is None
        assert [p["value"] for p in body["points"] + body2["points"]] == [v for _, v in ref_loss]

        # checkpoints: the files on disk, with a sha256 that matches their bytes
        status, _, ck = m.get(f"/api/v1/jobs/{ref}/checkpoints")
        names = [c["name"] for c in ck["checkpoints"]]
        assert names == ["ckpt-e0001-s000000002.safetensors", "ckpt-e0002-s000000004.safetensors",
                         "ckpt-e0003-s000000006.safetensors"]
        last = ck["checkpoints"][-1]
        path = state / "jobs" / str(ref) / "checkpoints" / last["name"]
        assert last["size"] == path.stat().st_size and last["step"] == 6 and last["epoch"] == 3
        assert last["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        status, _, body = m.get(f"/api/v1/jobs/{ref}/checkpoints/{last['name']}?format=backbone",
                                raw=True)
        assert status == 200, body[:300]
        export = state / "jobs" / str(ref) / "exports" / "ckpt-e0003-s000000006.backbone.safetensors"
        assert export.read_bytes() == body  # made once, kept next to the job
        assert m.get(f"/api/v1/jobs/{ref}/checkpoints/..%2Fspec.json")[0] == 404

        # the second job: pause it in the middle, resume it, and it ends where the first did
        wait_until(m, paused, lambda j: j["state"] == "running" and j["step"] >= 2,
                   what="running past step 2")
        status, _, body = m.post(f"/api/v1/jobs/{paused}/pause")
        assert status == 202, body
        job = m.wait_state(paused, ["paused", "completed", "failed"], timeout=120)
        assert job["state"] == "paused", job
        stopped_at = job["step"]
        assert 2 <= stopped_at < 6
        assert [s for s, _ in db_points(state, paused)] == list(range(1, stopped_at + 1))
        status, _, body = m.post(f"/api/v1/jobs/{paused}/pause")  # already paused: no change
        assert status == 202 and body["state"] == "paused"
        status, _, body = m.post(f"/api/v1/jobs/{paused}/resume")
        assert status == 202, body
        job = m.wait_state(paused, ["completed", "failed"], timeout=180)
        assert job["state"] == "completed", job["reason"]
        assert states(job) == ["queued", "starting", "running", "pausing", "paused", "queued",
                               "starting", "running", "completed"]
        assert job["restarts"] == 0
        assert db_points(state, paused) == ref_loss  # bit-exact resume, every step once
        log = (state / "jobs" / str(paused) / "log.txt").read_text()
        assert "--resume" in log and "resuming at" in log


def test_cancel_running_job_and_delete(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    with Mocod(state, data_roots=(tmp_path,)) as m:
        job_id = m.submit(tiny_job(data, **{"optim.epochs": 50}))
        job = wait_until(m, job_id, lambda j: j["state"] == "running" and j["step"] >= 1,
                         what="running")
        pid = job["pid"]
        assert isinstance(pid, int) and pid > 0
        status, _, body = m.post(f"/api/v1/jobs/{job_id}/cancel")
        assert status == 202 and body["state"] == "canceling", body
        job = m.wait_state(job_id, ["canceled", "completed", "failed"], timeout=60)
        assert job["state"] == "canceled"
        assert states(job)[-2:] == ["canceling", "canceled"]
        assert job["step"] < 100 and job["pid"] is None
        assert not is_worker_of(pid, state)  # the worker is gone
        status, _, body = m.post(f"/api/v1/jobs/{job_id}/cancel")
        assert status == 409 and body["error"]["code"] == "conflict"
        status, _, _ = m.request("DELETE", f"/api/v1/jobs/{job_id}")
        assert status == 204
        assert not (state / "jobs" / str(job_id)).exists()
        assert m.get(f"/api/v1/jobs/{job_id}")[0] == 404
        assert db_points(state, job_id) == []


def is_worker_of(pid, state):
    """Whether pid is a live process whose command line names the state directory."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return str(state).encode() in f.read()
    except OSError:
        return False


def tiny_lincls(data_dir, pretrained, **extra):
    spec = {
        "name": "tiny-lincls", "kind": "lincls",
        "model": {"arch": "resnet18", "cifar_stem": True, "pretrained": pretrained},
        "data": {"train": str(data_dir / "train"), "val": str(data_dir / "val"), "image_size": 32,
                 "val_resize": 32, "workers": 1},
        "optim": {"batch_size": 16, "epochs": 1},
        "resources": {"gpus": 0, "threads": 1},
        "log": {"print_every": 1},
    }
    spec.update(extra)
    return spec


def test_priority_after_slots_and_job_reference(tmp_path):
    """cpu_slots 1: one job at a time. While the first runs, the queue orders the rest by
    priority, then submission; a job `after` another waits for it; a lincls job on job:<id>
    waits for that pretraining (implicit `after`) and evaluates its final checkpoint."""
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    with Mocod(state, data_roots=(tmp_path,), extra_args=["--cpu-slots", "1"]) as m:
        one_epoch = {"optim.epochs": 1}
        first = m.submit(tiny_job(data, **one_epoch))
        wait_until(m, first, lambda j: j["state"] in ("starting", "running"), what="started")
        low = m.submit(dict(tiny_job(data, **one_epoch), name="low"))
        after_low = m.submit(dict(tiny_job(data, **one_epoch), name="after-low", priority=50,
                                  after=low))
        high = m.submit(dict(tiny_job(data, **one_epoch), name="high", priority=5))
        lincls = m.submit(tiny_lincls(data, f"job:{first}", priority=-1))

        status, _, q = m.get("/api/v1/queue")
        assert status == 200
        assert [j["id"] for j in q["running"]] == [first]
        # start order; after-low keeps its high priority place but waits for `low`
        assert [j["id"] for j in q["queued"]] == [after_low, high, low, lincls]
        assert m.job(lincls)["after"] == first

        jobs = {}
        for job_id in (first, low, after_low, high, lincls):
            jobs[job_id] = m.wait_state(job_id, ["completed", "failed", "canceled"], timeout=240)
            assert jobs[job_id]["state"] == "completed", jobs[job_id]["reason"]
        order = sorted(jobs, key=lambda i: jobs[i]["started_at"])
        assert order == [first, high, low, after_low, lincls]
        # one at a time: each started after the previous finished
        for a, b in zip(order, order[1:]):
            assert jobs[b]["started_at"] >= jobs[a]["finished_at"]
        # the linear evaluation ran on the pretraining's final checkpoint
        assert [s for s, _ in db_points(state, lincls, "lincls_top1")] != []
        log = (state / "jobs" / str(lincls) / "log.txt").read_text()
        assert f"jobs/{first}/checkpoints/ckpt-e0001-s000000002.safetensors" in log
        assert "sanity check passed" in log
        status, _, d = m.get("/api/v1/devices")
        assert d["cpu"]["slots"] == 1 and d["cpu"]["used"] == 0
