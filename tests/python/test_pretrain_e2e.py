"""test_pretrain_e2e.py — `moco-train pretrain` end to end on the shipped real images.

Runs the real program on real JPEGs (datasets/cifar10-small) and checks what a user relies on:
the demo recipe learns (contrastive top-1 far above chance), an interrupted and resumed run gives
the same per-step losses as an uninterrupted one, SIGTERM stops cleanly with a checkpoint, bad
configs are refused with messages that name the key, events are well-formed JSON lines, and the
backbone export loads into torchvision.
"""
import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import torchvision

from safetensors_np import load, load_torch

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("MOCO_BUILD", "build")
MOCO_TRAIN = BUILD / "bin" / "moco-train"
DEMO = ROOT / "configs" / "demo_moco_v2_cifar10_small.yaml"
CIFAR = ROOT / "datasets" / "cifar10-small"


def run_train(args, events=True, check=True, timeout=900):
    """Runs moco-train with an event pipe; returns (returncode, events, stderr)."""
    r, w = os.pipe()
    cmd = [str(MOCO_TRAIN)] + [str(a) for a in args] + (["--events-fd", str(w)] if events else [])
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, pass_fds=(w,) if events else ())
    os.close(w)
    with os.fdopen(r, "rb") as f:
        raw = f.read()
    _, err = proc.communicate(timeout=timeout)
    err = err.decode(errors="replace")
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    if check:
        assert proc.returncode == 0, err[-3000:]
    return proc.returncode, lines, err


def tiny_folder(tmp_path, per_class=5, classes=6):
    """A folder of symlinks to real CIFAR images: per_class * classes samples."""
    root = tmp_path / "tiny"
    for c in sorted(os.listdir(CIFAR / "train"))[:classes]:
        (root / c).mkdir(parents=True)
        for name in sorted(os.listdir(CIFAR / "train" / c))[:per_class]:
            (root / c / name).symlink_to(CIFAR / "train" / c / name)
    return root


def small_args(tmp_path, folder, extra=()):
    """A fast recipe: ResNet-18 CIFAR stem, batch 10, K 40, per-step metrics."""
    sets = {
        "data.train": folder, "data.workers": 2, "optim.batch_size": 10, "moco.k": 40,
        "optim.epochs": 3, "log.print_every": 1, "checkpoint.dir": tmp_path / "ckpt",
        "checkpoint.keep_last": 2,
    }
    args = ["pretrain", "--config", DEMO]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    return args + list(extra)


def step_losses(events):
    return {e["step"]: e["loss"] for e in events if e["kind"] == "metric"}


def test_demo_recipe_learns(tmp_path):
    """Two epochs of the demo recipe: top-1 among 1+K=513 candidates must climb far above
    chance (0.2 %). The threshold, 10 %, is 50x chance; a broken loss, gradient or queue stays
    near chance, while a correct run reaches well above it in its second epoch (about 30-50 %
    measured). Early steps are easy (the initial queue holds random vectors, far from any real
    key) and get harder as real keys fill the queue, so the loss is not monotone; what must
    hold is that it ends well below the uniform-guess level ln(513) = 6.24."""
    _, events, err = run_train(["pretrain", "--config", DEMO, "--set", "optim.epochs=2",
                                "--set", f"checkpoint.dir={tmp_path / 'ckpt'}"])
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done", kinds
    assert events[-1]["status"] == "completed"
    metrics = [e for e in events if e["kind"] == "metric"]
    assert metrics and all(set(e) >= {"step", "epoch", "ts", "lr", "loss", "acc1", "acc5", "images_per_s"}
                           for e in metrics)
    last_epoch = [e for e in metrics if e["epoch"] == 1]
    acc1 = sum(e["acc1"] for e in last_epoch) / len(last_epoch)
    assert acc1 > 10.0, f"contrastive top-1 {acc1:.2f}% in epoch 2 is not far above chance\n{err[-2000:]}"
    assert metrics[-1]["loss"] < math.log(513) - 0.5
    ckpts = [e for e in events if e["kind"] == "checkpoint"]
    assert len(ckpts) == 2 and Path(ckpts[-1]["path"]).exists()
    assert "ETA" in err and "img/s" in err


def test_resume_gives_identical_losses(tmp_path):
    """Stop mid-epoch (log.max_steps) and resume: every later step's loss must be bit-identical
    to the uninterrupted run's, because all randomness is keyed by (seed, epoch, sample, step)
    and the checkpoint holds the whole state (both encoders, queue, momentum buffers)."""
    folder = tiny_folder(tmp_path)  # 30 images, batch 10: 3 steps per epoch, 9 steps in all
    _, full, _ = run_train(small_args(tmp_path / "a", folder))
    rc, first, err = run_train(small_args(tmp_path / "b", folder, ["--set", "log.max_steps=4"]), check=False)
    assert rc == 3, err[-2000:]
    assert first[-1]["kind"] == "done" and first[-1]["status"] == "stopped"
    _, second, err = run_train(small_args(tmp_path / "b", folder, ["--resume", tmp_path / "b" / "ckpt"]))
    assert "resuming at epoch 2, batch 1" in err
    full_losses = step_losses(full)
    resumed = {**step_losses(first), **step_losses(second)}
    assert sorted(full_losses) == list(range(1, 10)) == sorted(resumed)
    assert resumed == full_losses
    # keep_last 2: only the two newest checkpoints remain.
    assert len(list((tmp_path / "b" / "ckpt").glob("ckpt-*.safetensors"))) == 2


# SIGTERM alone; SIGTERM followed by SIGHUP; and SIGHUP three times, as a worker gets when its
# multi-threaded mocod dies (the parent-death signal comes once per reparenting): a hangup asks
# for the same clean stop and never counts as a second, impatient request.
@pytest.mark.parametrize("signals", [[signal.SIGTERM], [signal.SIGTERM, signal.SIGHUP],
                                     [signal.SIGHUP] * 3],
                         ids=["sigterm", "sigterm+sighup", "sighup x3"])
def test_sigterm_writes_checkpoint_and_resumes(tmp_path, signals):
    folder = tiny_folder(tmp_path, per_class=10)  # 60 images: 6 steps per epoch
    args = small_args(tmp_path, folder, ["--set", "optim.epochs=50"])
    proc = subprocess.Popen([str(MOCO_TRAIN)] + [str(a) for a in args], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    seen = ""
    while "step" not in seen and time.time() < deadline:
        seen += proc.stderr.readline()
    for sig in signals:
        proc.send_signal(sig)
    err = seen + proc.stderr.read()
    assert proc.wait(timeout=120) == 3, err[-2000:]
    assert "continue with --resume" in err
    ckpts = list((tmp_path / "ckpt").glob("ckpt-*.safetensors"))
    assert ckpts
    _, meta = load(max(ckpts))
    assert meta["format"] == "mocod-checkpoint" and int(meta["step"]) >= 1


@pytest.mark.parametrize("override,needle", [
    ("moco.k=45", "moco.k"),                    # not a multiple of the batch
    ("optim.lr=fast", "optim.lr"),              # wrong type
    ("optim.lrr=0.1", "optim.lrr"),             # unknown key
])
def test_bad_config_is_refused_with_the_key_named(tmp_path, override, needle):
    folder = tiny_folder(tmp_path)
    rc, events, err = run_train(small_args(tmp_path, folder, ["--set", override]), check=False)
    assert rc == 1
    assert needle in err, err
    assert "multiple" in err or override != "moco.k=45"


def test_empty_train_folder_is_an_error_naming_it(tmp_path):
    empty = tmp_path / "empty" / "class_a"
    empty.mkdir(parents=True)
    rc, events, err = run_train(small_args(tmp_path, empty.parent), check=False)
    assert rc == 1 and str(empty.parent) in err
    assert events and events[-1]["kind"] == "error" and str(empty.parent) in events[-1]["message"]


def test_backbone_export_loads_into_torchvision(tmp_path):
    folder = tiny_folder(tmp_path)
    run_train(small_args(tmp_path, folder, ["--set", "optim.epochs=1"]))
    ckpt = max((tmp_path / "ckpt").glob("ckpt-*.safetensors"))
    out = tmp_path / "backbone.safetensors"
    subprocess.run([str(MOCO_TRAIN), "--export", "backbone", "--checkpoint", ckpt, "--out", out],
                   check=True)
    state, meta = load_torch(out)
    assert meta["format"] == "mocod-backbone"
    net = torchvision.models.resnet18()
    net.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)  # the CIFAR stem, as the official demo
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected
    full, _ = load(ckpt)
    assert torch.equal(state["layer4.1.bn2.running_var"],
                       torch.from_numpy(full["encoder_q.layer4.1.bn2.running_var"]))


def test_new_run_refuses_a_folder_with_another_runs_checkpoints(tmp_path):
    """keep_last prunes by name: a second, fresh run in the same checkpoint.dir would mix its
    files with the first run's and could delete its own newest one. It must refuse, name the
    folder and say how to continue or where else to go, and leave the old files untouched."""
    folder = tiny_folder(tmp_path)
    rc, _, _ = run_train(small_args(tmp_path, folder, ["--set", "log.max_steps=1"]), check=False)
    assert rc == 3
    before = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    rc, events, err = run_train(small_args(tmp_path, folder, ["--set", "log.max_steps=1"]), check=False)
    assert rc == 1
    assert "already holds checkpoints" in err and "--resume" in err and "checkpoint.dir" in err
    assert events[-1]["kind"] == "error"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == before


def test_resume_without_config_applies_set(tmp_path):
    """--resume DIR alone continues with the checkpoint's own spec; a --set beside it changes
    that spec as it would a config file (here log.max_steps: the spec stored by the first run
    says 1, which alone would stop the resumed run after step 2; --set says 3)."""
    folder = tiny_folder(tmp_path)
    rc, _, err = run_train(small_args(tmp_path, folder, ["--set", "log.max_steps=1"]), check=False)
    assert rc == 3, err[-2000:]
    rc, events, err = run_train(["pretrain", "--resume", tmp_path / "ckpt", "--set", "log.max_steps=3"],
                                check=False)
    assert rc == 3, err[-2000:]
    assert sorted(step_losses(events)) == [2, 3]
    assert events[-1]["kind"] == "done" and events[-1]["status"] == "stopped"


def backend_line(tmp_path, coretype=None):
    """The start line of a one-step run that names OpenBLAS's kernels; OPENBLAS_CORETYPE is
    set to coretype, or unset."""
    folder = tiny_folder(tmp_path)
    args = small_args(tmp_path, folder, ["--set", "log.max_steps=1"])
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    p = subprocess.run([str(MOCO_TRAIN)] + [str(a) for a in args], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env=env)
    assert p.returncode == 3, p.stderr[-2000:]  # 3: stopped early (log.max_steps) with a checkpoint
    return next(line for line in p.stderr.splitlines() if "OpenBLAS" in line)


GENERIC_CORES = ("Prescott", "Core2", "Nehalem", "Katmai")


def test_openblas_uses_the_cpus_vector_kernels(tmp_path):
    """On a CPU with AVX2, OpenBLAS must not run its generic SSE kernels (blas_core.h): Debian's
    0.3.21 falls back to them on CPUs newer than it knows, at half the speed."""
    flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
    if "avx2" not in flags:
        pytest.skip("this CPU has no AVX2: the generic kernels are the right ones")
    line = backend_line(tmp_path)
    assert not any(c in line for c in GENERIC_CORES), line


def test_openblas_coretype_set_by_the_user_is_kept(tmp_path):
    line = backend_line(tmp_path, "Prescott")
    assert "Prescott" in line, line
