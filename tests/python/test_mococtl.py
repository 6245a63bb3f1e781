"""test_mococtl.py — `mococtl` against a real mocod (build/bin/mocod) on a real port.

One tiny real pretraining job (mocod_harness.tiny_job: a few real CIFAR images, seconds on one
core) is submitted through mococtl from a YAML file with --set overrides and watched to the end;
the other tests read that finished job back through mococtl and compare with what the HTTP API
says: the spec, the list, the log, the metric history, the checkpoints (downloaded, whole and
continued, sha256 checked). Then the exit codes scripts rely on: 3 not found, 4 conflict,
5 no server, 6 wrong token, 2 usage errors, 1 a spec the server refuses.
"""
import csv
import hashlib
import io
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from mocod_harness import MOCOCTL, ROOT, Mocod, make_tiny_dataset, tiny_job

SCRIPT_TIMEOUT = 300  # the tiny job takes seconds, but the machine may be busy


def ctl(url, *args, cwd=None, token=None, env_token=None, timeout=SCRIPT_TIMEOUT, stdin=None):
    """Runs mococtl; returns the CompletedProcess (text). token: --token; env_token:
    MOCOD_TOKEN."""
    env = {k: v for k, v in os.environ.items() if k not in ("MOCOD_URL", "MOCOD_TOKEN")}
    env["MOCOD_URL"] = url
    if env_token is not None:
        env["MOCOD_TOKEN"] = env_token
    cmd = [str(MOCOCTL)] + (["--token", token] if token else []) + [str(a) for a in args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, input=stdin)


def yaml_of(job):
    """The job as YAML text (JSON is YAML: flow mappings), a line per top-level key, so the file
    looks like the configs users write."""
    return "".join(f"{k}: {json.dumps(v)}\n" for k, v in job.items())


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("mococtl")


@pytest.fixture(scope="module")
def daemon(work):
    data = make_tiny_dataset(work / "data")
    with Mocod(work / "state", data_roots=(ROOT, data)) as d:
        yield d


@pytest.fixture(scope="module")
def finished(daemon, work):
    """Submits the tiny job with mococtl from a YAML file whose data paths are relative to the
    current directory, with --set overrides, then `mococtl watch`es it. Returns (id, submit,
    watch) — the last two CompletedProcess."""
    job = tiny_job(work / "data")
    job["data"]["train"] = "data/train"  # relative: mococtl makes them absolute
    job["data"]["val"] = "./data/val"
    job["optim"]["lr"] = 0.03            # overridden below
    spec = work / "tiny.yaml"
    spec.write_text(yaml_of(job))
    sub = ctl(daemon.url, "submit", spec, "--set", "optim.lr=0.05", "--set",
              "optim.milestones=[1,2]", "--set", "seed=7", "--name", "cli-tiny",
              "--priority", "3", cwd=work)
    assert sub.returncode == 0, sub.stderr
    job_id = int(sub.stdout)
    watch = ctl(daemon.url, "watch", job_id, cwd=work)
    return job_id, sub, watch


def test_submit_applies_overrides_and_absolute_paths(daemon, work, finished):
    job_id, sub, _ = finished
    assert sub.stdout.strip() == str(job_id)  # just the number, for id=$(mococtl submit ...)
    assert f"job {job_id}" in sub.stderr
    job = daemon.job(job_id)
    assert job["name"] == "cli-tiny"
    assert job["priority"] == 3
    spec = job["spec"]
    assert spec["optim"]["lr"] == pytest.approx(0.05)
    assert spec["optim"]["milestones"] == [1, 2]
    assert spec["seed"] == 7
    assert spec["optim"]["batch_size"] == 16           # from the file, untouched
    assert spec["data"]["train"] == str(work / "data" / "train")
    assert spec["data"]["val"] == str(work / "data" / "val")


def test_watch_exits_0_when_completed_and_prints_progress(daemon, finished):
    job_id, _, watch = finished
    assert watch.returncode == 0, watch.stdout + watch.stderr
    lines = watch.stdout.splitlines()
    assert lines and all(line.startswith(f"job {job_id} cli-tiny: ") for line in lines)
    assert "completed" in lines[-1] and "100%" in lines[-1]
    job = daemon.job(job_id)
    assert job["state"] == "completed"
    assert f"step {job['total_steps']}/{job['total_steps']}" in lines[-1]
    assert "loss " in lines[-1] and "acc1 " in lines[-1]


def test_ls_shows_the_job(daemon, finished):
    job_id = finished[0]
    r = ctl(daemon.url, "ls")
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "KIND", "STATE", "PROGRESS", "STEP", "LOSS", "IMG/S",
                              "ETA", "AGE"]
    row = next(line.split() for line in rows if line.split()[0] == str(job_id))
    total = daemon.job(job_id)["total_steps"]
    assert row[1:6] == ["cli-tiny", "pretrain", "completed", "100%", f"{total}/{total}"]
    r = ctl(daemon.url, "ls", "--state", "completed", "--all", "--json")
    assert r.returncode == 0, r.stderr
    assert job_id in [j["id"] for j in json.loads(r.stdout)]
    r = ctl(daemon.url, "ls", "--state", "queued")
    assert r.returncode == 0 and str(job_id) not in [l.split()[0] for l in r.stdout.splitlines()[1:]]


def test_show_summarises_the_job(daemon, finished):
    job_id = finished[0]
    r = ctl(daemon.url, "show", job_id)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"job {job_id}: cli-tiny\n")
    assert "completed" in r.stdout and "-> running" in r.stdout  # the transitions
    raw = ctl(daemon.url, "show", job_id, "--json")
    assert raw.returncode == 0
    assert json.loads(raw.stdout)["id"] == job_id


def test_logs_prints_the_worker_log(daemon, finished):
    job_id = finished[0]
    status, _, body = daemon.get(f"/api/v1/jobs/{job_id}/logs", raw=True)
    assert status == 200 and len(body) > 0
    r = ctl(daemon.url, "logs", job_id)
    assert r.returncode == 0, r.stderr
    assert r.stdout == body.decode()
    assert "loss" in r.stdout  # the worker's progress lines
    r = ctl(daemon.url, "logs", job_id, "--offset", 10)
    assert r.returncode == 0 and r.stdout == body[10:].decode()
    r = ctl(daemon.url, "logs", job_id, "-f")  # a finished job: the whole log, then exit
    assert r.returncode == 0 and r.stdout == body.decode()


def test_metrics_csv_has_loss_for_every_logged_step(daemon, finished):
    job_id = finished[0]
    _, _, loss = daemon.get(f"/api/v1/jobs/{job_id}/metrics?key=loss&max_results=10000")
    api = {p["step"]: p["value"] for p in loss["points"]}
    total = daemon.job(job_id)["total_steps"]
    assert sorted(api) == list(range(1, total + 1))  # log.print_every 1

    r = ctl(daemon.url, "metrics", job_id, "--csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert "loss" in rows[0] and "acc1" in rows[0]
    logged = [int(row["step"]) for row in rows]
    assert logged == sorted(set(logged)) and set(api) <= set(logged)
    for row in rows:
        assert row["loss"] != "", f"step {row['step']} has no loss"
        assert float(row["loss"]) == pytest.approx(api[int(row["step"])], rel=1e-6)

    r = ctl(daemon.url, "metrics", job_id, "--key", "loss", "--csv", "--since", 1)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [int(x["step"]) for x in rows] == list(range(2, total + 1))
    assert all(float(x["ts"]) > 0 for x in rows)
    table = ctl(daemon.url, "metrics", job_id)
    assert table.returncode == 0 and table.stdout.split()[:2] == ["STEP", "loss"]


def test_ckpt_ls_and_download_match_sha256(daemon, finished, tmp_path):
    job_id = finished[0]
    _, _, listing = daemon.get(f"/api/v1/jobs/{job_id}/checkpoints")
    ck = listing["checkpoints"][-1]
    r = ctl(daemon.url, "ckpt", "ls", job_id)
    assert r.returncode == 0, r.stderr
    assert ck["name"] in r.stdout and ck["sha256"][:16] in r.stdout

    out = tmp_path / "model.safetensors"
    r = ctl(daemon.url, "ckpt", "download", job_id, ck["name"], "-o", out)
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert len(data) == ck["size"]
    assert hashlib.sha256(data).hexdigest() == ck["sha256"]
    assert "verified" in r.stderr

    # an existing file is not overwritten silently
    r = ctl(daemon.url, "ckpt", "download", job_id, ck["name"], "-o", out)
    assert r.returncode == 2 and "--continue" in r.stderr

    # an interrupted download continues with a Range request
    out.write_bytes(data[: len(data) // 3])
    r = ctl(daemon.url, "ckpt", "download", job_id, ck["name"], "-o", out, "--continue")
    assert r.returncode == 0, r.stderr
    assert "continuing" in r.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == ck["sha256"]

    out.unlink()  # checkpoints are ~130 MiB: keep one on disk at a time

    # default name: the checkpoint's own, in the current directory; the path on stdout
    r = ctl(daemon.url, "ckpt", "download", job_id, ck["name"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ck["name"]
    assert hashlib.sha256((tmp_path / ck["name"]).read_bytes()).hexdigest() == ck["sha256"]
    (tmp_path / ck["name"]).unlink()

    r = ctl(daemon.url, "ckpt", "download", job_id, "no-such.safetensors", "-o", tmp_path / "x")
    assert r.returncode == 3 and "ckpt ls" in r.stderr


def test_cancel_finished_job_exits_4(daemon, finished):
    r = ctl(daemon.url, "cancel", finished[0])
    assert r.returncode == 4, r.stderr
    assert r.stderr.startswith("mococtl: ")


def test_unknown_job_exits_3(daemon):
    for args in (["show", 999999], ["cancel", 999999], ["logs", 999999], ["metrics", 999999],
                 ["ckpt", "ls", 999999], ["watch", 999999]):
        r = ctl(daemon.url, *args)
        assert r.returncode == 3, (args, r.stderr)
        assert r.stderr.startswith("mococtl: ")


def test_queue_controls_on_a_waiting_job(daemon, work, finished):
    """A job held back by --not-before: priority, pause, resume, cancel, rm, all through
    mococtl, each checked with the HTTP API. No compute runs."""
    spec = work / "later.yaml"
    spec.write_text(yaml_of(tiny_job(work / "data")))
    r = ctl(daemon.url, "submit", spec, "--not-before", "+1d", "--after", finished[0])
    assert r.returncode == 0, r.stderr
    job_id = int(r.stdout)
    job = daemon.job(job_id)
    assert job["state"] == "queued" and job["after"] == finished[0]
    assert job["not_before"] > time.time() + 86000

    assert ctl(daemon.url, "priority", job_id, -5).returncode == 0
    assert daemon.job(job_id)["priority"] == -5
    q = ctl(daemon.url, "queue")
    assert q.returncode == 0 and "cli-tiny" not in q.stdout and str(job_id) in q.stdout
    assert ctl(daemon.url, "pause", job_id).returncode == 0
    assert daemon.job(job_id)["state"] == "paused"
    assert ctl(daemon.url, "resume", job_id).returncode == 0
    assert daemon.job(job_id)["state"] == "queued"
    assert ctl(daemon.url, "rm", job_id).returncode == 4  # not finished yet
    assert ctl(daemon.url, "cancel", job_id).returncode == 0
    daemon.wait_state(job_id, "canceled", timeout=60)
    assert ctl(daemon.url, "rm", job_id).returncode == 0
    assert daemon.get(f"/api/v1/jobs/{job_id}")[0] == 404
    assert ctl(daemon.url, "show", job_id).returncode == 3


def test_health_and_devices(daemon):
    r = ctl(daemon.url, "health")
    assert r.returncode == 0 and ": ok," in r.stdout
    r = ctl(daemon.url, "devices")
    assert r.returncode == 0 and "cpu:" in r.stdout


def test_rejected_spec_exits_1_with_the_field(daemon, work):
    spec = work / "bad.yaml"
    spec.write_text(yaml_of(tiny_job(work / "data")))
    r = ctl(daemon.url, "submit", spec, "--set", "optim.lr=-1")
    assert r.returncode == 1, r.stderr
    assert "optim.lr" in r.stderr and r.stdout == ""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_server_exits_5_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["ls"], ["health"], ["watch", 1], ["logs", 1, "-f"]):
        r = ctl(url, *args, timeout=60)
        assert r.returncode == 5, (args, r.stderr)
        assert url in r.stderr and "MOCOD_URL" in r.stderr


def test_wrong_token_exits_6(work):
    with Mocod(work / "state-token", token="s3cret-token") as d:
        r = ctl(d.url, "ls", env_token="wrong")
        assert r.returncode == 6 and "MOCOD_TOKEN" in r.stderr
        assert ctl(d.url, "ls").returncode == 6  # none at all
        assert ctl(d.url, "ls", env_token="s3cret-token").returncode == 0
        assert ctl(d.url, "ls", token="s3cret-token").returncode == 0
        tf = work / "token.txt"
        tf.write_text("s3cret-token\n")
        assert ctl(d.url, "--token-file", tf, "queue").returncode == 0
        assert ctl(d.url, "health").returncode == 0  # /healthz needs no token


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["show"],
    ["show", "abc"],
    ["show", "1", "2"],
    ["ls", "--limit", "0"],
    ["ls", "--bogus"],
    ["submit"],
    ["submit", "/nonexistent/job.yaml"],
    ["priority", "1", "high"],
    ["metrics", "1", "--since"],
    ["ckpt", "frob"],
    ["--token", "a", "--token-file", "b", "ls"],
])
def test_usage_errors_exit_2(args, tmp_path):
    # a server that does not exist: usage errors are found before any request
    r = ctl(f"http://127.0.0.1:{free_port()}", *args, timeout=30)
    assert r.returncode == 2, (args, r.stderr)
    assert "mococtl" in (r.stderr + r.stdout)


def test_usage_error_unknown_set_key(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml_of(tiny_job(tmp_path)))
    r = ctl(f"http://127.0.0.1:{free_port()}", "submit", spec, "--set", "optim.lrr=1")
    assert r.returncode == 2 and "did you mean 'optim.lr'" in r.stderr


def test_help_documents_exit_codes():
    r = subprocess.run([str(MOCOCTL), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    for code in ("0  success", "3  not found", "4  conflict", "5  cannot connect",
                 "6  unauthorized"):
        assert code in r.stdout


def watch_in_pty(daemon, job_id, columns):
    """`mococtl watch JOB` in a pseudo-terminal of the given width: (exit code, raw output)."""
    import fcntl
    import pty
    import struct
    import termios
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(str(MOCOCTL), [str(MOCOCTL), "--server", daemon.url, "watch", str(job_id)])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


def test_watch_on_a_terminal_draws_bars_with_the_whole_name(daemon, work):
    """In a terminal (a pty of 100 columns) watch draws one progress bar per job; the name
    column is as wide as the job's name (up to 28), so that names like
    lincls_demo_cifar10_small stay whole (they were cut to 12 columns)."""
    name = "a_rather_long_job_name_25"
    job_id = daemon.submit(tiny_job(work / "data", name=name, **{"optim.epochs": 1}))
    code, out = watch_in_pty(daemon, job_id, 100)
    text = out.decode(errors="replace")
    assert code == 0, text
    assert "] 100%" in text, text   # a bar, not the plain lines of a pipe
    assert f" {name} " in text, text


def test_watch_cuts_names_by_character_and_fits_narrow_terminals(daemon, work):
    """A name of multibyte characters is cut between characters, never inside one, and every
    drawn line fits the terminal, however narrow (a wrapped line breaks the redraw)."""
    name = "日本語の名前" * 8
    job_id = daemon.submit(tiny_job(work / "data", name=name, **{"optim.epochs": 1}))
    for columns in (12, 60):
        code, out = watch_in_pty(daemon, job_id, columns)
        assert code == 0, out
        text = out.decode("utf-8")  # raises on a character cut in half
        lines = [line.split("\x1b[2K")[-1] for line in text.replace("\r\n", "\n").split("\n")]
        drawn = [line for line in lines if line.strip()]
        assert drawn, text
        assert all(len(line) < columns for line in drawn), (columns, drawn)
