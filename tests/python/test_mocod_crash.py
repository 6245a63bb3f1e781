"""test_mocod_crash.py — crashes of mocod and of its workers, with real moco-train workers.

kill -9 of mocod while a job runs: the worker checkpoints and stops (PR_SET_PDEATHSIG SIGHUP),
the next mocod on the same state directory counts a restart, resumes the job from its checkpoint
and completes it, with every step of the metric history exactly once. kill -9 of a worker: with
max_restarts 0 the job fails with its last log lines as the reason; with max_restarts 1 it is
retried from its checkpoint and completes. A graceful stop (SIGTERM) requeues a running job
without counting a restart. The daemon answers /healthz throughout.
"""
import json
import os
import signal
import sqlite3
import time

from mocod_harness import Mocod, db_steps, make_tiny_dataset, tiny_job



def healthy(m):
    status, _, body = m.get("/healthz", timeout=5)
    assert status == 200 and body["status"] == "ok", body
    return body


def unapplied_stored_events(state_dir, job_id):
    """Kinds of the events in the job's events file past the offset mocod has applied, among
    those that change what is stored (metric, eval, checkpoint, start)."""
    con = sqlite3.connect(str(state_dir / "mocod.db"), timeout=10)
    try:
        (offset,) = con.execute("SELECT events_offset FROM jobs WHERE id = ?", (job_id,)).fetchone()
    finally:
        con.close()
    with open(state_dir / "jobs" / str(job_id) / "events.jsonl", "rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").splitlines()
    kinds = []
    for line in lines:
        try:
            kinds.append(json.loads(line).get("kind"))
        except ValueError:
            pass  # a line cut short by the kill
    return [k for k in kinds if k in ("metric", "eval", "checkpoint", "start")]


def wait_until(m, job_id, pred, timeout=120, what="condition"):
    """Polls the job (and /healthz) until pred(job) holds."""
    deadline = time.time() + timeout
    job = None
    while time.time() < deadline:
        healthy(m)
        job = m.job(job_id)
        if pred(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id}: {what} never held: {job}\n{m.stderr()[-2000:]}")


def test_kill9_mocod_resumes_job(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    m = Mocod(state, data_roots=(tmp_path,))
    try:
        # 40 steps: long enough that the kill lands mid-run however fast the machine is (with 8,
        # an idle machine sometimes finished the job before the worker heard of mocod's death)
        job_id = m.submit(tiny_job(data, **{"optim.epochs": 20}))
        ckpts = state / "jobs" / str(job_id) / "checkpoints"
        wait_until(m, job_id, lambda j: j["step"] >= 3 and any(ckpts.glob("ckpt-e0001-*")),
                   what="past its first checkpoint")
        old_pid = m.job(job_id)["pid"]
        m.kill9()
        # the orphaned worker checkpoints and exits on its own (parent-death SIGHUP)
        deadline = time.time() + 60
        while time.time() < deadline and os.path.exists(f"/proc/{old_pid}"):
            with open(f"/proc/{old_pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    break
            time.sleep(0.05)
        missed = unapplied_stored_events(state, job_id)
        m.start()
        healthy(m)
        job = m.wait_state(job_id, ["completed", "failed"], timeout=180)
        assert job["state"] == "completed", job["reason"]
        assert job["restarts"] == 1
        tos = [t["to"] for t in job["transitions"]]
        assert tos[-4:] == ["queued", "starting", "running", "completed"]
        recovery = [t for t in job["transitions"] if t["to"] == "queued"][-1]
        assert "did not stop cleanly" in recovery["reason"]
        assert db_steps(state, job_id) == list(range(1, 41))  # every step exactly once
        # what the orphaned worker wrote after mocod died (usually its last step and
        # checkpoint; nothing when the kill came just after an epoch's checkpoint was stored)
        # was applied from the job's events file by the new mocod
        assert ("after the previous mocod stopped" in m.stderr()) == bool(missed), (missed, m.stderr())
        log = (state / "jobs" / str(job_id) / "log.txt").read_text()
        assert "stopped at step" in log, log  # the old worker checkpointed before exiting
        assert "resuming at" in log
        healthy(m)
    finally:
        m.stop()


def kill_worker_when_running(m, job_id):
    job = wait_until(m, job_id, lambda j: j["state"] == "running" and j["step"] >= 1,
                     what="running")
    os.kill(job["pid"], signal.SIGKILL)
    healthy(m)
    return job["pid"]


def test_kill9_worker_without_restarts_fails_with_log(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    with Mocod(state, data_roots=(tmp_path,)) as m:
        job_id = m.submit(dict(tiny_job(data, **{"optim.epochs": 20}), max_restarts=0))
        kill_worker_when_running(m, job_id)
        job = wait_until(m, job_id, lambda j: j["state"] in ("failed", "completed", "queued"),
                         what="ended")
        assert job["state"] == "failed", job
        reason = job["reason"]
        assert "signal 9" in reason and "no restarts left" in reason
        assert "last log lines" in reason and "pretrain: MoCo v2 resnet18" in reason, reason
        assert "=== mocod" not in reason, reason  # only what the worker wrote
        healthy(m)


def test_kill9_worker_with_restart_completes(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    with Mocod(state, data_roots=(tmp_path,)) as m:
        job_id = m.submit(dict(tiny_job(data, **{"optim.epochs": 2}), max_restarts=1))
        ckpts = state / "jobs" / str(job_id) / "checkpoints"
        wait_until(m, job_id, lambda j: j["step"] >= 2 and any(ckpts.glob("ckpt-e0001-*")),
                   what="past its first checkpoint")
        first_pid = m.job(job_id)["pid"]
        os.kill(first_pid, signal.SIGKILL)
        job = wait_until(m, job_id, lambda j: j["state"] in ("completed", "failed"),
                         timeout=180, what="ended")
        assert job["state"] == "completed", job["reason"]
        assert job["restarts"] == 1
        retry = [t for t in job["transitions"] if t["to"] == "queued"][-1]
        assert "signal 9" in retry["reason"] and "retry 1 of max_restarts 1" in retry["reason"]
        assert db_steps(state, job_id) == [1, 2, 3, 4]
        healthy(m)


def test_graceful_stop_requeues_without_restart(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    m = Mocod(state, data_roots=(tmp_path,))
    try:
        job_id = m.submit(tiny_job(data, **{"optim.epochs": 2}))
        wait_until(m, job_id, lambda j: j["state"] == "running" and j["step"] >= 1, what="running")
        assert m.stop() == 0  # SIGTERM: the worker checkpoints, the job goes back to the queue
        con = sqlite3.connect(str(state / "mocod.db"), timeout=10)
        row = con.execute("SELECT state, restarts, reason, pid FROM jobs WHERE id = ?",
                          (job_id,)).fetchone()
        con.close()
        assert row[0] == "queued" and row[1] == 0 and row[3] is None, row
        assert "mocod stopped" in row[2]
        m.start()
        job = m.wait_state(job_id, ["completed", "failed"], timeout=180)
        assert job["state"] == "completed", job["reason"]
        assert job["restarts"] == 0
        assert db_steps(state, job_id) == [1, 2, 3, 4]
    finally:
        m.stop()
