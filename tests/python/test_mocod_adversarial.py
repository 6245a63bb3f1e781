"""test_mocod_adversarial.py — regressions for what an adversarial pass over mocod broke.

Each test reproduces one bug that was found and fixed, with the real programs:
  - a job spec with bytes that are not UTF-8 was stored, and every answer listing the job was
    then invalid JSON; failure reasons quoting a worker's log (file names of a data set in
    Latin-1) made the job object and its `state` event invalid JSON the same way;
  - `priority` of a finished job answered 200 (the contract: any state not finished, else 409);
  - a mocod restarted with another spelling of the same state directory (a trailing slash)
    did not recognise the worker the previous mocod left running, and started a second worker
    of the same job beside it;
  - a worker that finished its job while mocod was down (mocod killed during the last step)
    was counted as a crash: the job was rerun, or failed when it had no restarts left;
  - a worker event that the database refused (its write lock held by another program past
    the busy timeout) was dropped, leaving a hole in the metric history, and a refused state
    change at the worker's exit left the job `running` with no worker;
  - libmicrohttpd's "connection limit" note was logged once per refused connection, so a
    connection flood filled mocod's log;
  - mococtl `ls --all` and `metrics` looped forever on a server that repeats a page token;
  - database errors named the problem in SQLite's words but not the fix.
"""
import http.server
import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mocod_harness import MOCOCTL, Mocod, make_tiny_dataset, tiny_job

FAR_FUTURE = 4102444800


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def grace_config(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("cfg") / "mocod.yaml"
    cfg.write_text("grace_period_s: 2\n")
    return cfg


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, data_dir, grace_config):
    root = data_dir.parent
    m = Mocod(tmp_path_factory.mktemp("state"), data_roots=(root,),
              extra_args=["--config", str(grace_config)])
    yield m
    alive = m.proc.poll() is None
    m.stop()
    assert alive, "mocod died during the adversarial tests:\n" + m.stderr()[-3000:]


def raw_get(m, path, timeout=30):
    status, _, body = m.request("GET", path, raw=True, timeout=timeout)
    return status, body


def strict_json(raw):
    """Parses an answer as RFC 8259 JSON: UTF-8 or it fails."""
    return json.loads(raw.decode("utf-8"))  # raises UnicodeDecodeError on stray bytes


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def gone(pid):
    return proc_state(pid) in (None, "Z")


# ---- UTF-8 ---------------------------------------------------------------------------------------

def test_non_utf8_submission_is_refused(daemon, data_dir):
    body = json.dumps(tiny_job(data_dir, name="@NAME@")).encode().replace(b"@NAME@", b"caf\xe9")
    st, _, e = daemon.post("/api/v1/jobs", body, headers={"Content-Type": "application/json"})
    assert st == 400 and e["error"]["code"] == "invalid_spec", e
    assert "not UTF-8" in e["error"]["message"], e
    st, _, e = daemon.post("/api/v1/jobs", b"kind: pretrain\nname: caf\xe9\n",
                           headers={"Content-Type": "application/yaml"})
    assert st == 400 and "UTF-8" in e["error"]["message"], e
    st, raw = raw_get(daemon, "/api/v1/jobs?limit=500")
    assert st == 200
    assert "caf" not in json.dumps(strict_json(raw)), "the refused job was stored"


def test_a_nul_inside_a_json_string_is_refused_not_cut(daemon, data_dir):
    body = json.dumps(tiny_job(data_dir, name="a\u0000b")).encode()
    assert b"\\u0000" in body
    st, _, e = daemon.post("/api/v1/jobs", body, headers={"Content-Type": "application/json"})
    assert st == 400 and "NUL" in e["error"]["message"], (st, e)
    # the six characters backslash-u-0-0-0-0 are no NUL: accepted and kept whole
    job_id = daemon.submit(tiny_job(data_dir, name="a\\u0000b", **{"not_before": "2999-01-01T00:00:00Z"}))
    assert daemon.job(job_id)["name"] == "a\\u0000b"
    daemon.post(f"/api/v1/jobs/{job_id}/cancel")


def test_answers_stay_utf8_when_a_reason_quotes_latin1_file_names(daemon, tmp_path):
    # A data set whose images are all unreadable and named in Latin-1: the worker fails, and
    # the reason quotes its last log lines, which name those files.
    root = daemon.data_roots[0].encode()
    base = os.path.join(root, b"latin1-" + str(os.getpid()).encode())
    for split in (b"train", b"val"):
        for cls in (b"a", b"b"):
            folder = os.path.join(base, split, cls)
            os.makedirs(folder, exist_ok=True)
            for i in range(10):
                with open(os.path.join(folder, b"caf\xe9-%d.jpg" % i), "wb") as f:
                    f.write(b"\xff\xd8 not a jpeg")
    spec = tiny_job(os.fsdecode(base))
    sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=60)
    sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    job_id = daemon.submit(spec)
    job = daemon.wait_state(job_id, ("failed", "completed"), timeout=120)
    assert job["state"] == "failed", job
    st, raw = raw_get(daemon, f"/api/v1/jobs/{job_id}")
    assert st == 200
    reason = strict_json(raw)["reason"]
    assert "caf\ufffd-" in reason, reason  # the stray byte, shown as U+FFFD
    st, raw = raw_get(daemon, "/api/v1/jobs?limit=500")
    strict_json(raw)
    # the `state` event of the failure went out as UTF-8 too
    stream, failure, deadline = b"", None, time.time() + 30
    while failure is None and time.time() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        stream += chunk
        for line in stream.split(b"\n"):
            if line.startswith(b"data: {") and b'"to":"failed"' in line:
                event = strict_json(line[len(b"data: "):])
                if event.get("job") == job_id:
                    failure = event
    sock.close()
    assert failure is not None, stream[-2000:]
    assert "caf\ufffd-" in failure["reason"], failure


# ---- the contract ---------------------------------------------------------------------------------

def test_priority_of_a_finished_job_is_a_conflict(daemon, data_dir):
    spec = tiny_job(data_dir, name="prio-finished")
    spec["not_before"] = FAR_FUTURE
    job_id = daemon.submit(spec)
    st, _, j = daemon.post(f"/api/v1/jobs/{job_id}/priority", {"priority": 3})
    assert st == 200 and j["priority"] == 3, j
    daemon.post(f"/api/v1/jobs/{job_id}/cancel")
    daemon.wait_state(job_id, "canceled", timeout=30)
    st, _, e = daemon.post(f"/api/v1/jobs/{job_id}/priority", {"priority": 9})
    assert st == 409 and e["error"]["code"] == "conflict", e
    assert daemon.job(job_id)["priority"] == 3
    # and mococtl says so with its conflict status
    p = subprocess.run([str(MOCOCTL), "--server", daemon.url, "priority", str(job_id), "5"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 4, (p.returncode, p.stderr)


# ---- crashes and restarts ----------------------------------------------------------------------

def wait_first_step(m, job_id, timeout=120):
    """The job as soon as its worker has logged a step (state running, step >= 1)."""
    deadline = time.time() + timeout
    while True:
        job = m.job(job_id)
        if (job["state"] == "running" and job["step"] >= 1) or time.time() > deadline:
            return job
        time.sleep(0.05)


def test_restart_under_another_spelling_waits_for_the_old_worker(tmp_path, data_dir, grace_config):
    state = tmp_path / "state"
    m = Mocod(state, data_roots=(data_dir.parent,), extra_args=["--config", str(grace_config)])
    stuck = None
    try:
        job_id = m.submit(tiny_job(data_dir, **{"optim.epochs": 30}))
        worker = wait_first_step(m, job_id)["pid"]
        m.kill9()
        os.kill(worker, signal.SIGKILL)
        # The previous mocod's worker, as the next mocod finds it: alive, with the job's
        # `--config .../spec.json` on its command line as every worker has, and deaf to SIGTERM, so that only the new mocod's
        # SIGKILL after the grace period ends it. (A real worker cannot be kept so reliably:
        # stopped before mocod's death it is woken by the kernel when its process group is
        # orphaned, stopped after it may already have checkpointed and exited.)
        stuck = subprocess.Popen(
            ["/usr/bin/python3", "-c", "import signal, time; signal.signal(signal.SIGTERM, "
             "signal.SIG_IGN); print('ready', flush=True); time.sleep(600)",
             "--config", str(state / "jobs" / str(job_id) / "spec.json")], stdout=subprocess.PIPE)
        assert stuck.stdout.readline() == b"ready\n"
        con = sqlite3.connect(str(state / "mocod.db"), timeout=10)
        with con:
            con.execute("UPDATE jobs SET pid = ? WHERE id = ?", (stuck.pid, job_id))
        con.close()
        m.extra_args = ["--config", str(grace_config), "--state-dir", str(state) + "/"]
        m.start()  # returns once recovery is over and mocod listens
        assert gone(stuck.pid), (f"the previous mocod's worker {stuck.pid} still runs next to "
                                 f"the new mocod:\n{m.stderr()[-2000:]}")
        err = m.stderr()
        assert "worker(s) of the previous mocod" in err and f"old worker {stuck.pid}" in err, err[-2000:]
        job = m.job(job_id)
        assert job["state"] in ("queued", "starting", "running"), job
        assert job["restarts"] == 1
        m.post(f"/api/v1/jobs/{job_id}/cancel")
        m.wait_state(job_id, "canceled", timeout=60)
    finally:
        if stuck is not None:
            stuck.kill()
            stuck.wait()
        m.stop()


def test_worker_that_finished_while_mocod_was_down_completes(tmp_path, data_dir, grace_config):
    state = tmp_path / "state"
    m = Mocod(state, data_roots=(data_dir.parent,), extra_args=["--config", str(grace_config)])
    try:
        job_id = m.submit(dict(tiny_job(data_dir, **{"optim.epochs": 2}), max_restarts=0))
        job = wait_first_step(m, job_id)
        assert job["step"] < 4, job
        # mocod frozen: it sees neither the last events nor the exit of its worker, which
        # finishes the job meanwhile; then mocod dies without having seen it.
        os.kill(m.proc.pid, signal.SIGSTOP)
        con = sqlite3.connect(str(state / "mocod.db"), timeout=10)
        state_now, pid = con.execute("SELECT state, pid FROM jobs WHERE id = ?", (job_id,)).fetchone()
        con.close()
        assert state_now == "running", state_now
        deadline = time.time() + 120
        while time.time() < deadline and proc_state(pid) not in ("Z", None):
            time.sleep(0.05)
        assert proc_state(pid) in ("Z", None), "the worker did not finish"
        m.kill9()
        m.start()
        job = m.wait_state(job_id, ("completed", "failed", "queued"), timeout=60)
        assert job["state"] == "completed", job["reason"]
        assert job["restarts"] == 0
        assert [t["to"] for t in job["transitions"]][-1] == "completed"
        con = sqlite3.connect(str(state / "mocod.db"), timeout=10)
        steps = [s for (s,) in con.execute(
            "SELECT step FROM metrics WHERE job = ? AND key = 'loss' ORDER BY step", (job_id,))]
        con.close()
        assert steps == [1, 2, 3, 4]
    finally:
        if m.proc.poll() is None:
            os.kill(m.proc.pid, signal.SIGCONT)
        m.stop()


def test_events_refused_by_a_locked_database_are_stored_later(tmp_path, data_dir, grace_config):
    """Another program holds the database's write lock (longer than SQLite's busy timeout)
    while the worker logs its last steps, checkpoints and exits: nothing may be dropped, and
    the job must not be left `running` with no worker."""
    state = tmp_path / "state"
    m = Mocod(state, data_roots=(data_dir.parent,), extra_args=["--config", str(grace_config)])
    con = None
    try:
        job_id = m.submit(dict(tiny_job(data_dir, **{"optim.epochs": 2}), max_restarts=0))
        job = wait_first_step(m, job_id)
        pid = job["pid"]
        assert job["step"] < 4, job
        os.kill(pid, signal.SIGSTOP)
        con = sqlite3.connect(str(state / "mocod.db"), timeout=30, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        os.kill(pid, signal.SIGCONT)
        deadline = time.time() + 120
        while time.time() < deadline and proc_state(pid) not in ("Z", None):
            time.sleep(0.05)
        time.sleep(11)  # past mocod's busy timeout (10 s): its writes failed meanwhile
        con.execute("ROLLBACK")
        con.close()
        con = None
        assert "database is locked" in m.stderr(), m.stderr()[-2000:]  # the lock bit
        job = m.wait_state(job_id, ("completed", "failed"), timeout=120)
        assert job["state"] == "completed", job
        steps = [p["step"] for p in m.get(f"/api/v1/jobs/{job_id}/metrics?key=loss")[2]["points"]]
        assert steps == [1, 2, 3, 4]
    finally:
        if con is not None:
            con.close()
        m.stop()


def test_a_refused_state_change_at_the_workers_exit_is_retried(tmp_path, data_dir, grace_config):
    """The database refuses the job's final state change for a while (here a trigger; in
    life a full disk or a lock): the job must end completed once it accepts, not stay
    `running` with no worker until mocod restarts."""
    state = tmp_path / "state"
    m = Mocod(state, data_roots=(data_dir.parent,), extra_args=["--config", str(grace_config)])
    con = sqlite3.connect(str(state / "mocod.db"), timeout=30, isolation_level=None)
    try:
        con.execute("CREATE TRIGGER refuse BEFORE UPDATE OF state ON jobs "
                    "WHEN NEW.state = 'completed' BEGIN SELECT RAISE(ABORT, 'not now'); END")
        job_id = m.submit(tiny_job(data_dir, **{"optim.epochs": 1}))
        pid = m.wait_state(job_id, "running", timeout=120)["pid"]
        deadline = time.time() + 120
        while time.time() < deadline and proc_state(pid) not in ("Z", None):
            time.sleep(0.05)
        time.sleep(1)
        assert "not now" in m.stderr(), m.stderr()[-2000:]  # the refusal bit
        assert m.job(job_id)["state"] == "running"
        con.execute("DROP TRIGGER refuse")
        job = m.wait_state(job_id, ("completed", "failed"), timeout=30)
        assert job["state"] == "completed", job
        assert m.get("/healthz")[2]["jobs_running"] == 0
    finally:
        con.close()
        m.stop()


# ---- floods and broken peers ------------------------------------------------------------------

def test_connection_flood_is_noted_not_logged_per_connection(daemon):
    before = daemon.stderr().count("connection limit")
    socks = []
    try:
        for _ in range(700):  # mocod takes 512 at once
            s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        deadline = time.time() + 10
        while time.time() < deadline and daemon.stderr().count("connection limit") == before:
            time.sleep(0.1)
        time.sleep(1)
    finally:
        for s in socks:
            s.close()
    notes = daemon.stderr().count("connection limit") - before
    assert 1 <= notes <= 2, f"{notes} lines about the connection limit for one flood"
    deadline = time.time() + 20
    while True:  # the refused and the closed connections are gone: mocod answers again
        try:
            if daemon.get("/healthz", timeout=5)[0] == 200:
                break
        except OSError:
            pass
        assert time.time() < deadline, "mocod did not recover from the connection flood"
        time.sleep(0.2)


class _RepeatingPages(http.server.BaseHTTPRequestHandler):
    """A broken server: every page says there is a next one, with the same token."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        if "/metrics" in self.path and "key=" not in self.path:
            body = {"keys": ["loss"]}
        elif "/metrics" in self.path:
            body = {"key": "loss", "points": [{"step": 1, "value": 1.0, "ts": 1.0}],
                    "next_page_token": "1"}
        else:
            body = {"jobs": [{"id": 1, "name": "x", "state": "queued"}], "next_page_token": "1"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_mococtl_stops_on_a_repeated_page_token():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RepeatingPages)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        for args in (["ls", "--all"], ["metrics", "1", "--key", "loss"], ["metrics", "1"]):
            p = subprocess.run([str(MOCOCTL), "--server", url] + args, capture_output=True,
                               text=True, timeout=30)
            assert p.returncode == 1, (args, p.returncode, p.stderr)
            assert "same next_page_token" in p.stderr, p.stderr
    finally:
        srv.shutdown()


def test_damaged_database_message_names_the_fix(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "mocod.db").write_bytes(os.urandom(8192))
    with pytest.raises(RuntimeError) as e:
        Mocod(state)
    assert "restore it from a backup" in str(e.value), str(e.value)
