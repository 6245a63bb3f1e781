"""test_mocod_ranks.py — multi-rank pretraining through a real mocod, real mpirun, real images.

A pretraining with resources.ranks 2 runs as `mpirun -np 2 moco-train pretrain ... --events-file`
(docs/mocod-api.md, "Multi-rank jobs"): it completes with every step's metrics once and its
checkpoints listed, as two moco-train processes under one mpirun; cancel and pause reach every
rank through mpirun (SIGUSR1) and end with a checkpoint well inside the grace period; past the
grace period a hard kill leaves no process of the job; kill -9 of mocod makes the ranks
checkpoint and stop (mpirun's parent-death signal), and the next mocod resumes and completes the
job; a rank killed by a signal is retried like a single worker's crash; a rank's error, not
mpirun's banner, is a failed job's reason. A stand-in mpirun (a
script that records its command line) checks what cannot run here: one app context per GPU, and
how mpirun's exit statuses are read. Jobs are tiny (ResNet-18 CIFAR stem, 32 px, batch 16, K 64,
one thread per rank).
"""
import json
import os
import signal
import sqlite3
import stat
import sys
import time

import pytest

from mocod_harness import MOCO_TRAIN, Mocod, db_steps, make_tiny_dataset, tiny_job, wait_until
from mpi_tools import MPIRUN

needs_mpirun = pytest.mark.skipif(MPIRUN is None, reason="mpirun is not installed (Debian: openmpi-bin)")


def ranks_job(data, epochs, name="ranks", **overrides):
    spec = tiny_job(data, **{"optim.epochs": epochs, "resources.ranks": 2, "resources.threads": 1},
                    **overrides)
    spec["name"] = name
    return spec



def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def job_processes(state_dir, job_id):
    """{pid: argv} of the live processes whose command line names the job's spec.json."""
    spec = str(state_dir / "jobs" / str(job_id) / "spec.json")
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = cmdline(int(entry))
            if spec in argv:
                found[int(entry)] = argv
    return found


def ranks_of(procs):
    return [pid for pid, argv in procs.items() if os.path.basename(argv[0]) == "moco-train"]



def wait_for_both_ranks(m, state, job_id):
    """Waits until the job runs past step 1 as mpirun plus two moco-train ranks; returns
    (job, {pid: argv})."""
    job = wait_until(m, job_id, lambda j: j["state"] == "running" and j["step"] >= 1,
                     what="running")
    procs = job_processes(state, job_id)
    return job, procs


def gone(pids, timeout=10):
    """True once none of pids is a live process (a zombie counts as gone)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(cmdline(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def transitions(job):
    return [t["to"] for t in job["transitions"]]


def mocod_config(tmp_path, **keys):
    path = tmp_path / "mocod.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in keys.items()))
    return ["--config", str(path)]


@needs_mpirun
def test_two_rank_job_completes(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    with Mocod(state, data_roots=(tmp_path,)) as m:
        job_id = m.submit(ranks_job(data, 2))
        job, procs = wait_for_both_ranks(m, state, job_id)
        # the worker is mpirun; the job's ranks are two moco-train processes under it
        assert os.path.basename(cmdline(job["pid"])[0]) == "mpirun", cmdline(job["pid"])
        assert len(ranks_of(procs)) == 2, procs
        for pid in ranks_of(procs):
            assert "--events-file" in procs[pid] and "--events-fd" not in procs[pid], procs[pid]

        job = m.wait_state(job_id, ["completed", "failed", "canceled"], timeout=180)
        assert job["state"] == "completed", job["reason"]
        assert transitions(job) == ["queued", "starting", "running", "completed"]
        assert job["step"] == 4 and job["total_steps"] == 4 and job["progress"] == 1
        for key in ("loss", "acc1", "acc5", "lr", "images_per_s"):
            assert db_steps(state, job_id, key) == [1, 2, 3, 4], key  # rank 0's events, once
        status, _, ck = m.get(f"/api/v1/jobs/{job_id}/checkpoints")
        assert status == 200
        assert [c["name"] for c in ck["checkpoints"]] == ["ckpt-e0001-s000000002.safetensors",
                                                         "ckpt-e0002-s000000004.safetensors"]
        log = (state / "jobs" / str(job_id) / "log.txt").read_text()
        assert "(restarts 0, 2 ranks):" in log and " -np 2 " in log, log[:2000]
        assert "--events-file" in log and "--bind-to none" in log, log[:2000]
        assert ", 2 ranks (mpi) x 8 images" in log, log  # moco-train itself says 2 ranks ran
        assert gone(procs), job_processes(state, job_id)

        # kNN stays one process whatever resources.ranks says (only pretraining is parallel)
        knn = m.submit({"name": "knn", "kind": "knn", "model": {"arch": "resnet18", "cifar_stem": True,
                                                                "pretrained": f"job:{job_id}"},
                        "data": {"train": str(data / "train"), "val": str(data / "val"),
                                 "image_size": 32, "val_resize": 32, "workers": 1},
                        "optim": {"batch_size": 20}, "eval": {"knn": {"k": 5}},
                        "resources": {"ranks": 2, "threads": 1}})
        done = m.wait_state(knn, ["completed", "failed"], timeout=120)
        assert done["state"] == "completed", done["reason"]
        knn_log = (state / "jobs" / str(knn) / "log.txt").read_text()
        assert "(restarts 0, 1 rank):" in knn_log and "mpirun" not in knn_log.split("===")[1]


def last_checkpoint_step(state, job_id):
    names = sorted(p.name for p in (state / "jobs" / str(job_id) / "checkpoints").iterdir())
    return int(names[-1].split("-s")[1].split(".")[0]) if names else None


@needs_mpirun
def test_pause_stop_and_cancel_reach_every_rank(tmp_path):
    """One job through the three clean stops: pause, mocod's graceful stop, cancel. Each
    reaches both ranks through mpirun (SIGUSR1), ends with status 3 and a checkpoint at the
    step the ranks stopped at, well inside the 30 s grace period, and leaves no process."""
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    m = Mocod(state, data_roots=(tmp_path,))  # grace_period_s 30 (the default)
    try:
        job_id = m.submit(ranks_job(data, 50))
        _, procs = wait_for_both_ranks(m, state, job_id)
        assert len(ranks_of(procs)) == 2, procs
        status, _, body = m.post(f"/api/v1/jobs/{job_id}/pause")
        assert status == 202, body
        job = m.wait_state(job_id, ["paused", "completed", "failed"], timeout=60)
        assert job["state"] == "paused", job
        assert job["reason"].startswith("paused (the worker exited with status 3)"), job["reason"]
        stopped_at = job["step"]
        assert gone(procs, timeout=1) and job_processes(state, job_id) == {}
        assert last_checkpoint_step(state, job_id) == stopped_at
        assert db_steps(state, job_id) == list(range(1, stopped_at + 1))

        status, _, body = m.post(f"/api/v1/jobs/{job_id}/resume")
        assert status == 202, body
        wait_until(m, job_id, lambda j: j["state"] == "running" and j["step"] > stopped_at,
                   what="running again")
        procs = job_processes(state, job_id)
        assert len(ranks_of(procs)) == 2, procs
        # mocod's own graceful stop (SIGTERM) stops the ranks the same way and requeues the job
        assert m.stop() == 0
        assert gone(procs, timeout=1) and job_processes(state, job_id) == {}
        con = sqlite3.connect(str(state / "mocod.db"), timeout=10)
        row = con.execute("SELECT state, restarts, reason, step FROM jobs WHERE id = ?",
                          (job_id,)).fetchone()
        con.close()
        assert row[:2] == ("queued", 0) and "exited with status 3" in row[2], row
        stopped_at = row[3]
        assert last_checkpoint_step(state, job_id) == stopped_at

        m.start()
        wait_until(m, job_id, lambda j: j["state"] == "running" and j["step"] > stopped_at,
                   what="running after the restart")
        procs = job_processes(state, job_id)
        t0 = time.time()
        status, _, body = m.post(f"/api/v1/jobs/{job_id}/cancel")
        assert status == 202 and body["state"] == "canceling", body
        job = m.wait_state(job_id, ["canceled", "completed", "failed"], timeout=60)
        took = time.time() - t0
        assert job["state"] == "canceled", job
        # a clean stop (the ranks agreed on the step, rank 0 checkpointed, all exited 3), not
        # the SIGKILL at the end of the 30 s grace period
        assert took < 25, took
        assert job["reason"] == "canceled (the worker exited with status 3)", job["reason"]
        assert job["pid"] is None and gone(procs, timeout=1) and job_processes(state, job_id) == {}
        assert last_checkpoint_step(state, job_id) == job["step"]
        assert job["restarts"] == 0
        assert db_steps(state, job_id) == list(range(1, job["step"] + 1))  # each step once
        assert transitions(job) == ["queued", "starting", "running", "pausing", "paused", "queued",
                                    "starting", "running", "queued", "starting", "running",
                                    "canceling", "canceled"]
        log = (state / "jobs" / str(job_id) / "log.txt").read_text()
        assert log.count("stopped at step") == 3 and log.count("resuming at") == 2, log[-3000:]
        assert "Forwarding signal 10" in log  # mpirun passed SIGUSR1 on
    finally:
        m.stop()


@needs_mpirun
def test_cancel_while_mpirun_starts_its_ranks(tmp_path):
    # mpirun forwards SIGUSR1 only to ranks that already run: a cancel that comes while it
    # launches them is lost unless mocod sends it again (without that, this waited out the
    # whole 30 s grace period)
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    with Mocod(state, data_roots=(tmp_path,)) as m:
        job_id = m.submit(ranks_job(data, 50))
        time.sleep(0.05)
        t0 = time.time()
        status, _, body = m.post(f"/api/v1/jobs/{job_id}/cancel")
        assert status == 202, body
        job = m.wait_state(job_id, ["canceled", "completed", "failed"], timeout=60)
        assert job["state"] == "canceled", job
        assert time.time() - t0 < 20, (time.time() - t0, job["reason"])
        assert "signal 9" not in job["reason"], job["reason"]  # not the grace period's SIGKILL
        assert job_processes(state, job_id) == {}


@needs_mpirun
def test_hard_kill_after_grace_leaves_no_rank(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    with Mocod(state, data_roots=(tmp_path,), extra_args=mocod_config(tmp_path, grace_period_s=3)) as m:
        job_id = m.submit(ranks_job(data, 50))
        _, procs = wait_for_both_ranks(m, state, job_id)
        ranks = ranks_of(procs)
        assert len(ranks) == 2, procs
        for pid in ranks:  # ranks that cannot answer the stop: only SIGKILL ends them
            os.kill(pid, signal.SIGSTOP)
        t0 = time.time()
        status, _, body = m.post(f"/api/v1/jobs/{job_id}/cancel")
        assert status == 202, body
        job = m.wait_state(job_id, ["canceled", "completed", "failed"], timeout=60)
        took = time.time() - t0
        assert job["state"] == "canceled", job
        assert 3 <= took < 15, took
        assert "killed by signal 9" in job["reason"], job["reason"]
        assert job_processes(state, job_id) == {}  # mpirun and both ranks
        assert gone(procs, timeout=1)
        assert "did not stop within grace_period_s (3 s); SIGKILL" in \
            (state / "jobs" / str(job_id) / "log.txt").read_text()


@needs_mpirun
def test_kill9_mocod_resumes_two_rank_job(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    m = Mocod(state, data_roots=(tmp_path,))
    try:
        # 20 steps: the kill lands mid-run however fast the machine is
        job_id = m.submit(ranks_job(data, 10))
        ckpts = state / "jobs" / str(job_id) / "checkpoints"
        wait_until(m, job_id, lambda j: j["step"] >= 2 and any(ckpts.glob("ckpt-e0001-*")),
                   what="past its first checkpoint")
        old = job_processes(state, job_id)
        assert len(ranks_of(old)) == 2, old
        m.kill9()
        # mpirun's parent-death signal (SIGUSR1, forwarded to both ranks) stops the job with a
        # checkpoint; the new mocod waits for that, then resumes
        assert gone(old, timeout=60), job_processes(state, job_id)
        log = (state / "jobs" / str(job_id) / "log.txt").read_text()
        assert "stopped at step" in log, log[-3000:]
        m.start()
        job = m.wait_state(job_id, ["completed", "failed"], timeout=180)
        assert job["state"] == "completed", job["reason"]
        assert job["restarts"] == 1
        assert transitions(job)[-4:] == ["queued", "starting", "running", "completed"]
        assert db_steps(state, job_id) == list(range(1, 21))  # every step exactly once
        log = (state / "jobs" / str(job_id) / "log.txt").read_text()
        assert "(restarts 1, 2 ranks):" in log and "--resume" in log and "resuming at" in log
        assert job_processes(state, job_id) == {} and gone(old, timeout=0.1)
    finally:
        m.stop()


@needs_mpirun
def test_rank_killed_by_signal_is_retried(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    with Mocod(state, data_roots=(tmp_path,)) as m:
        job_id = m.submit(dict(ranks_job(data, 5), max_restarts=1))  # 10 steps
        ckpts = state / "jobs" / str(job_id) / "checkpoints"
        wait_until(m, job_id, lambda j: j["step"] >= 2 and any(ckpts.glob("ckpt-e0001-*")),
                   what="past its first checkpoint")
        procs = job_processes(state, job_id)
        rank = sorted(ranks_of(procs))[-1]
        os.kill(rank, signal.SIGKILL)  # as the OOM killer would
        job = m.wait_state(job_id, ["completed", "failed"], timeout=180)
        assert job["state"] == "completed", job["reason"]
        assert job["restarts"] == 1
        retry = [t for t in job["transitions"] if t["to"] == "queued"][-1]
        # mpirun exits 137 (128 + 9): read as the rank's SIGKILL, retried from the checkpoint
        assert "killed by signal 9" in retry["reason"], retry
        assert "retry 1 of max_restarts 1" in retry["reason"], retry
        assert db_steps(state, job_id) == list(range(1, 11))
        assert gone(procs, timeout=1)
        log = (state / "jobs" / str(job_id) / "log.txt").read_text()
        assert "exited with status 137 (a rank was killed by signal 9); job queued" in log, log[-3000:]


# ---- a stand-in mpirun: what mocod runs, and how it reads mpirun's exit status ----------------

FAKE_MPIRUN = """#!%s
import json, os, sys, time
with open("mpirun-argv.json", "w") as f:
    json.dump({"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}, f)
sys.stderr.write(os.environ.get("FAKE_MPIRUN_SAY", ""))
time.sleep(float(os.environ.get("FAKE_MPIRUN_SLEEP", "0")))
sys.exit(int(os.environ.get("FAKE_MPIRUN_EXIT", "0")))
"""


def fake_mpirun(tmp_path):
    path = tmp_path / "bin" / "fake-mpirun"
    path.parent.mkdir(exist_ok=True)
    path.write_text(FAKE_MPIRUN % sys.executable)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def recorded(state, job_id):
    return json.loads((state / "jobs" / str(job_id) / "mpirun-argv.json").read_text())


def worker_args(state, job_id):
    return ["pretrain", "--config", str(state / "jobs" / str(job_id) / "spec.json"),
            "--events-file", str(state / "jobs" / str(job_id) / "events.jsonl")]


def test_gpu_job_gets_one_app_context_per_device(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    mpirun = fake_mpirun(tmp_path)
    env = dict(os.environ, FAKE_MPIRUN_SLEEP="1")
    with Mocod(state, data_roots=(tmp_path,), env=env,
               extra_args=["--gpus", "4", "--mpirun", str(mpirun)]) as m:
        first = m.submit(tiny_job(data, **{"resources.gpus": 2, "resources.threads": 0}))
        second = m.submit(tiny_job(data, **{"resources.gpus": 2, "resources.threads": 0}))
        for job_id in (first, second):
            job = m.wait_state(job_id, ["completed", "failed"], timeout=30)
            assert job["state"] == "completed", job["reason"]  # the stand-in exits 0
        for job_id, devices in ((first, [0, 1]), (second, [2, 3])):
            rec = recorded(state, job_id)
            sigkill = ["--mca", "odls_base_sigkill_timeout", "2"]  # short: launch_command.h
            expect = [str(mpirun), "--bind-to", "none", "--oversubscribe"] + sigkill
            for i, d in enumerate(devices):
                expect += ([":"] if i else []) + ["-np", "1", "-x", f"CUDA_VISIBLE_DEVICES={d}",
                                                  str(MOCO_TRAIN)] + worker_args(state, job_id)
            assert rec["argv"] == expect, rec["argv"]
            assert rec["env"]["CUDA_VISIBLE_DEVICES"] == ",".join(map(str, devices))
            if os.geteuid() == 0:  # mpirun refuses root without these
                assert rec["env"]["OMPI_ALLOW_RUN_AS_ROOT"] == "1"
                assert rec["env"]["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] == "1"


def test_cpu_ranks_command_and_mpirun_exit_statuses(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    mpirun = fake_mpirun(tmp_path)
    outcomes = {}
    for code in (0, 1, 3, 139):
        # mpirun's own failure is a boxed notice: kept in the reason when nothing else is there
        say = "-" * 74 + "\nmpirun was unable to launch the specified application\n" + "-" * 74 + "\n"
        env = dict(os.environ, FAKE_MPIRUN_EXIT=str(code), FAKE_MPIRUN_SAY=say if code == 1 else "")
        with Mocod(state, data_roots=(tmp_path,), env=env, extra_args=["--mpirun", str(mpirun)]) as m:
            job_id = m.submit(dict(tiny_job(data, **{"resources.ranks": 2}), max_restarts=0))
            job = m.wait_state(job_id, ["completed", "failed", "paused"], timeout=30)
            outcomes[code] = (job["state"], job["reason"])
            argv = recorded(state, job_id)["argv"]
            assert argv == [str(mpirun), "--bind-to", "none", "--oversubscribe", "--mca",
                            "odls_base_sigkill_timeout", "2", "-np", "2", str(MOCO_TRAIN)] + \
                worker_args(state, job_id), argv
            assert recorded(state, job_id)["env"]["CUDA_VISIBLE_DEVICES"] == ""
    assert outcomes[0][0] == "completed"
    assert outcomes[1][0] == "failed" and "exited with status 1" in outcomes[1][1]
    assert "unable to launch the specified application" in outcomes[1][1], outcomes[1]
    assert outcomes[3] == ("paused", "stopped by log.max_steps; resume to continue")
    # 139 is mpirun's way to say a rank died of SIGSEGV: a crash, retried while restarts are left
    assert outcomes[139][0] == "failed", outcomes[139]
    assert "signal 11" in outcomes[139][1] and "no restarts left" in outcomes[139][1], outcomes[139]


@needs_mpirun
def test_a_ranks_error_is_the_failure_reason(tmp_path):
    # every rank refuses the job (40 images, global batch 64); mpirun's MPI_ABORT banner and
    # "[host:pid]" lines after the ranks' own error must not push it out of the reason
    data = make_tiny_dataset(tmp_path / "data")
    with Mocod(tmp_path / "state", data_roots=(tmp_path,)) as m:
        job_id = m.submit(ranks_job(data, 1, **{"optim.batch_size": 64, "moco.k": 128}))
        job = m.wait_state(job_id, ["failed", "completed"], timeout=60)
        assert job["state"] == "failed"
        reason = job["reason"]
        assert reason.startswith("moco-train exited with status 1; last log lines:"), reason
        assert "fewer than one batch of optim.batch_size=64" in reason, reason
        assert "MPI_ABORT" not in reason and "----------" not in reason, reason


def test_missing_mpirun_fails_the_job_saying_what_to_install(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    state = tmp_path / "state"
    with Mocod(state, data_roots=(tmp_path,), extra_args=["--mpirun", "/nonexistent/mpirun"]) as m:
        job_id = m.submit(ranks_job(data, 1))
        job = m.wait_state(job_id, ["failed", "completed"], timeout=30)
        assert job["state"] == "failed"
        assert "2 ranks under mpirun" in job["reason"] and "/nonexistent/mpirun" in job["reason"]
        assert "apt-get install openmpi-bin" in job["reason"], job["reason"]
    # the default, `mpirun` on PATH, with a PATH that has none
    env = dict(os.environ, PATH=str(tmp_path / "empty"))
    with Mocod(tmp_path / "state2", data_roots=(tmp_path,), env=env) as m:
        job_id = m.submit(ranks_job(data, 1))
        job = m.wait_state(job_id, ["failed", "completed"], timeout=30)
        assert job["state"] == "failed"
        assert "no mpirun on mocod's PATH" in job["reason"], job["reason"]
        assert "apt-get install openmpi-bin" in job["reason"], job["reason"]


def test_submit_refuses_rank_counts_that_cannot_run(tmp_path):
    data = make_tiny_dataset(tmp_path / "data")
    with Mocod(tmp_path / "state", data_roots=(tmp_path,), extra_args=["--gpus", "4"]) as m:
        status, _, body = m.post("/api/v1/jobs", tiny_job(data, **{"resources.gpus": 2,
                                                                 "resources.ranks": 4}))
        assert status == 400 and body["error"]["field"] == "resources.ranks", body
        assert "one rank per GPU" in body["error"]["message"]
        ranks = 4 * os.sysconf("SC_NPROCESSORS_ONLN") + 1  # the batch splits evenly: only the count is wrong
        status, _, body = m.post("/api/v1/jobs", tiny_job(data, **{
            "resources.ranks": ranks, "optim.batch_size": 2 * ranks, "moco.k": 8 * ranks}))
        assert status == 400 and body["error"]["field"] == "resources.ranks", body
        assert "cores" in body["error"]["message"]
