"""test_pretrain_ranks.py — `mpirun -np 2 moco-train pretrain` end to end on real images.

The demo recipe (configs/demo_moco_v2_cifar10_small.yaml) on 256 of the shipped CIFAR JPEGs, so
that an epoch is 4 steps of the global batch 64 (each rank 32) and a short run crosses epoch
ends and learning-rate changes. What a user relies on:
- a run stopped by SIGUSR1 to mpirun (forwarded to every rank) stops all ranks at the same
  step with one checkpoint, and its resumption gives exactly (bit for bit, as JSON numbers) the
  per-step losses and the final tensors of an uninterrupted run: every rank reads the
  checkpoint, the loader's shards and the shuffle permutations are keyed by (seed, epoch, step);
- rank 0 alone writes events and checkpoints, and the metrics are the global batch's;
- a global batch that does not split over the ranks is refused with a message naming the key.
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np

from mpi_tools import mpirun_cmd, mpirun_env
from safetensors_np import load

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("MOCO_BUILD", "build")
MOCO_TRAIN = BUILD / "bin" / "moco-train"
DEMO = ROOT / "configs" / "demo_moco_v2_cifar10_small.yaml"
CIFAR = ROOT / "datasets" / "cifar10-small" / "train"
STEPS = 9


def subset(tmp_path, per_class=26, classes=10):
    """256 real images (symlinks): 26 of each class, less 4 from the last."""
    root = tmp_path / "train"
    left = 256
    for c in sorted(os.listdir(CIFAR))[:classes]:
        (root / c).mkdir(parents=True)
        for name in sorted(os.listdir(CIFAR / c))[:min(per_class, left)]:
            (root / c / name).symlink_to(CIFAR / c / name)
            left -= 1
    return root


def args(folder, ckpt, events, extra=()):
    sets = {"data.train": folder, "eval.knn.every_epochs": 0, "log.print_every": 1,
            "log.max_steps": STEPS, "checkpoint.dir": ckpt, "data.workers": 1}
    out = [str(MOCO_TRAIN), "pretrain", "--config", str(DEMO), "--events-file", str(events)]
    for k, v in sets.items():
        out += ["--set", f"{k}={v}"]
    return out + list(extra)


def read_events(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def losses(events):
    return {e["step"]: e["loss"] for e in events if e["kind"] == "metric"}


def run(cmd, timeout=300):
    p = subprocess.run(mpirun_cmd(2, cmd), cwd=ROOT, env=mpirun_env(), capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def newest(ckpt):
    return sorted(Path(ckpt).glob("ckpt-*.safetensors"))[-1]


def test_two_ranks_stop_on_sigusr1_and_resume_exactly(tmp_path):
    folder = subset(tmp_path)
    # uninterrupted: STEPS steps (2.5 epochs), stops at log.max_steps with status 3
    rc, out = run(args(folder, tmp_path / "a", tmp_path / "a.jsonl"))
    assert rc == 3, out[-3000:]
    whole = read_events(tmp_path / "a.jsonl")
    start = [e for e in whole if e["kind"] == "start"]
    assert len(start) == 1 and start[0]["ranks"] == 2, "rank 0 alone writes events"
    assert len(start[0]["hosts"]) == 2
    ref = losses(whole)
    assert sorted(ref) == list(range(1, STEPS + 1))
    assert out.count("pretrain: MoCo v2") == 1, "rank 0 alone prints"

    # interrupted by SIGUSR1 to mpirun once a few steps are done, then resumed
    ev = tmp_path / "b.jsonl"
    p = subprocess.Popen(mpirun_cmd(2, args(folder, tmp_path / "b", ev)), cwd=ROOT,
                         env=mpirun_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        if ev.exists() and len(losses(read_events(ev))) >= 3:
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGUSR1)
    out, _ = p.communicate(timeout=240)
    assert p.returncode == 3, out[-3000:]
    first = read_events(ev)
    stopped_at = max(losses(first))
    assert stopped_at < STEPS, "the signal came too late to test a resume"
    ckpts = list((tmp_path / "b").glob("ckpt-*.safetensors"))
    assert len(ckpts) == 1 and f"s{stopped_at:09d}" in ckpts[0].name, (ckpts, stopped_at)
    assert first[-1]["kind"] == "done" and first[-1]["status"] == "stopped"

    rc, out = run(args(folder, tmp_path / "b", ev, ["--resume", str(tmp_path / "b")]))
    assert rc == 3, out[-3000:]
    both = losses(read_events(ev))
    assert sorted(both) == list(range(1, STEPS + 1))
    assert both == ref, "resumed losses differ from the uninterrupted run"

    (a, _), (b, _) = load(newest(tmp_path / "a")), load(newest(tmp_path / "b"))
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name


def test_batch_that_does_not_split_over_ranks_is_refused(tmp_path):
    folder = subset(tmp_path)
    rc, out = run(args(folder, tmp_path / "c", tmp_path / "c.jsonl",
                       ["--set", "optim.batch_size=63", "--set", "moco.k=63"]), timeout=120)
    assert rc != 0
    assert "optim.batch_size" in out and "2 ranks" in out, out[-2000:]


def test_ranks_stop_when_the_watched_process_is_gone(tmp_path):
    """mocod gives its multi-rank jobs MOCO_STOP_WHEN_GONE=<mocod's pid>: a SIGUSR1 that mpirun
    gets before its ranks exist is lost, so the ranks watch mocod themselves. Here a stand-in
    process is watched and killed after the first steps: every rank must stop at the same step
    with a checkpoint and status 3, long before log.max_steps."""
    folder = subset(tmp_path)
    watched = subprocess.Popen(["sleep", "600"])
    ev = tmp_path / "w.jsonl"
    cmd = args(folder, tmp_path / "w", ev, ["--set", "log.max_steps=40"])
    p = subprocess.Popen(mpirun_cmd(2, cmd), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=mpirun_env({"MOCO_STOP_WHEN_GONE": str(watched.pid)}))
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        if ev.exists() and len(losses(read_events(ev))) >= 2:
            break
        time.sleep(0.2)
    watched.kill()
    watched.wait()  # reaped: gone, not a zombie
    out, _ = p.communicate(timeout=240)
    assert p.returncode == 3, out[-3000:]
    events = read_events(ev)
    stopped_at = max(losses(events))
    assert stopped_at < 40
    assert events[-1]["kind"] == "done" and events[-1]["status"] == "stopped"
    assert [c.name for c in (tmp_path / "w").glob("ckpt-*.safetensors")] == \
        [f"ckpt-e{(stopped_at) // 4:04d}-s{stopped_at:09d}.safetensors"]
