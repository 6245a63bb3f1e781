"""test_hostile_inputs.py — moco-train against careless and hostile input.

What a user relies on when something is wrong: exit status 1 (2 for usage errors) with one
message on stderr naming the key, file or option and the fix, an `error` event on the event
pipe, never a crash, a hang, a sanitizer report or a torn checkpoint. Each case here broke once
(a billion-laughs YAML, a PNG claiming 100000x100000 pixels, a forged checkpoint cursor, a
full disk, a non-permutation in an align batch, ...). Runs are tiny (ResNet-18 CIFAR stem,
batch 8, K 32, 32x32 images, one or two steps); set MOCO_BUILD=build/san-address to run the
same cases under AddressSanitizer.
"""
import json
import os
import resource
import signal
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from safetensors_np import load, save
from test_pretrain_e2e import CIFAR, DEMO, MOCO_TRAIN, ROOT

SANITIZER_MARKS = ("Sanitizer", "runtime error", "Segmentation fault", "core dumped")


def run(args, timeout=120, extra_fds=(), **kw):
    """Runs moco-train with an event pipe; returns (returncode, stderr, events)."""
    r, w = os.pipe()
    cmd = [str(MOCO_TRAIN)] + [str(a) for a in args] + ["--events-fd", str(w)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            pass_fds=(w,) + tuple(extra_fds), **kw)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        raw = f.read()
    _, err = proc.communicate(timeout=timeout)
    err = err.decode(errors="replace")
    assert not any(m in err for m in SANITIZER_MARKS), err[-3000:]
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}\n{err[-3000:]}"
    return proc.returncode, err, [json.loads(line) for line in raw.decode().splitlines()]


def run_plain(args, timeout=60):
    """Runs moco-train without events (usage errors come before the event pipe is used)."""
    p = subprocess.run([str(MOCO_TRAIN)] + [str(a) for a in args], cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout)
    assert not any(m in p.stderr for m in SANITIZER_MARKS), p.stderr[-3000:]
    return p.returncode, p.stderr


def expect_error(rc, err, events, *needles):
    """Exit 1, one error line naming every needle, and the same message as the last event."""
    assert rc == 1, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("moco-train: error:")]
    assert len(errors) == 1, err[-3000:]
    for n in needles:
        assert n in errors[0], errors[0]
    assert events and events[-1]["kind"] == "error", events[-3:]
    assert errors[0].endswith(events[-1]["message"])
    return errors[0]


def folder_of(root, spec):
    """spec: {class: {file name: bytes, or a Path to symlink}}."""
    for cls, files in spec.items():
        (root / cls).mkdir(parents=True)
        for name, data in files.items():
            if isinstance(data, Path):
                (root / cls / name).symlink_to(data)
            else:
                (root / cls / name).write_bytes(data)
    return root


def real_images(cls, n, start=0):
    d = CIFAR / "train" / cls
    return {p.name: p for p in sorted(d.iterdir())[start:start + n]}


def tiny_args(tmp, folder, *sets, ckpt=None):
    base = {"data.train": folder, "data.workers": 2, "optim.batch_size": 8, "moco.k": 32,
            "optim.epochs": 1, "log.max_steps": 1, "log.print_every": 1,
            "checkpoint.dir": ckpt or tmp / "ckpt"}
    args = ["pretrain", "--config", DEMO]
    for k, v in base.items():
        args += ["--set", f"{k}={v}"]
    for s in sets:
        args += ["--set", s]
    return args


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """16 real images in 2 classes and one checkpoint after step 1 of 2 (mid-epoch)."""
    tmp = tmp_path_factory.mktemp("tiny")
    folder = folder_of(tmp / "data", {"airplane": real_images("airplane", 8),
                                      "bird": real_images("bird", 8)})
    rc, err, _ = run(tiny_args(tmp, folder))
    assert rc == 3, err[-3000:]
    ckpt = max((tmp / "ckpt").glob("ckpt-*.safetensors"))
    return tmp, folder, ckpt


# ---- command line ----------------------------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["pretrain"], "needs --config"),
    (["pretrain", "--config"], "--config needs a value"),
    (["pretrain", "--config", ""], "empty string"),
    (["pretrain", "--config", DEMO, "--config", DEMO], "given twice"),
    (["pretrain", DEMO], "unexpected argument"),
    (["pretrain", "--config", DEMO, "--steps", "3"], "pretrain does not take --steps"),
    (["pretrain", "--config", DEMO, "--export", "backbone"], "does not take --export"),
    (["pretrain", "--config", DEMO, "--events-fd", "57"], "not an open file descriptor"),
    (["bench", "--config", DEMO, "--steps", "0"], "--steps needs an integer >= 1"),
    (["bench", "--config", DEMO, "--resume", "x"], "bench does not take --resume"),
    (["--export", "backbone"], "needs --checkpoint"),
    (["--export", "weights", "--checkpoint", "a", "--out", "b"], "only 'backbone'"),
    (["align", "--config", DEMO], "are required"),
    (["align", "--config", DEMO, "--config", DEMO], "given twice"),
])
def test_usage_errors_exit_2_naming_the_option(args, needle):
    rc, err = run_plain(args)
    assert rc == 2 and needle in err, err


def test_read_only_events_fd_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        p = subprocess.run([str(MOCO_TRAIN), "pretrain", "--config", str(DEMO), "--events-fd", str(fd)],
                           cwd=ROOT, capture_output=True, text=True, pass_fds=(fd,), timeout=60)
    finally:
        os.close(fd)
    assert p.returncode == 2 and "read-only" in p.stderr, p.stderr


# ---- configs ---------------------------------------------------------------------------------

def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    """Nine anchors of nine aliases each expand to 9^9 values from a 400-byte file."""
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    t0 = time.time()
    rc, err, events = run(["pretrain", "--config", bomb], timeout=30)
    expect_error(rc, err, events, str(bomb), "values")
    assert time.time() - t0 < 20


@pytest.mark.parametrize("sets,needles", [
    (["moco.k=2147483640"], ["moco.k=2147483640", "queue"]),
    (["model.dim=100000000"], ["model.dim=100000000"]),
    (["data.image_size=65536", "data.val_resize=65536"], ["data.image_size=65536"]),
])
def test_configs_beyond_the_machines_memory_name_the_key(tmp_path, tiny, sets, needles):
    _, folder, _ = tiny
    rc, err, events = run(tiny_args(tmp_path, folder, *sets))
    expect_error(rc, err, events, "memory", *needles)


def test_unusable_checkpoint_dir_is_refused_before_training(tmp_path, tiny):
    _, folder, _ = tiny
    (tmp_path / "afile").write_text("x")
    rc, err, events = run(tiny_args(tmp_path, folder, ckpt=tmp_path / "afile" / "sub"))
    expect_error(rc, err, events, "checkpoint.dir", str(tmp_path / "afile"))
    assert not any(e["kind"] == "metric" for e in events), "trained before checking checkpoint.dir"


# ---- data ------------------------------------------------------------------------------------

def png_header_only(w, h):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def bad_files():
    good = (CIFAR / "train" / "cat" / "0000.jpg").read_bytes()
    return {"zero.jpg": b"", "half.jpg": good[:len(good) // 2], "tables_only.jpg": good[:20],
            "noise.jpg": bytes(np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8)),
            "bomb.png": png_header_only(100000, 100000), "bomb2.png": png_header_only(60000, 60000),
            "magic_only.png": b"\x89PNG\r\n\x1a\n"}


def test_corrupt_and_bomb_images_are_skipped_with_reasons(tmp_path):
    # 7 bad + 9 good files: two batches of 8 visit every file once (one whole epoch)
    folder = folder_of(tmp_path / "data", {"a": {**real_images("cat", 1), **bad_files()},
                                           "b": real_images("dog", 8)})
    rc, err, events = run(tiny_args(tmp_path, folder, "data.workers=2", "log.max_steps=0"))
    assert rc == 0, err[-3000:]
    assert [e["skipped_files"] for e in events if "skipped_files" in e] == [7], events
    assert "100000x100000 pixels" in err and "60000x60000 pixels" in err and "pixel limit" in err
    assert "tables_only.jpg': truncated or corrupt JPEG (no image after the header)" in err
    assert "warning: moco-train" not in err  # workers' warnings are whole lines


def test_folder_without_one_readable_image_is_one_error(tmp_path):
    folder = folder_of(tmp_path / "data", {"a": bad_files(), "b": {"x.jpg": b"\xff\xd8\xff" + b"\0" * 50}})
    rc, err, events = run(tiny_args(tmp_path, folder, "data.workers=2"))
    expect_error(rc, err, events, "no readable image", str(folder))


def test_tiny_and_elongated_images_and_symlink_loops_train(tmp_path):
    from PIL import Image
    one = tmp_path / "one.png"
    Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(one)
    strip = tmp_path / "strip.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1, 5000, 3), np.uint8)).save(strip)
    folder = folder_of(tmp_path / "data", {"a": {f"{i}.png": one for i in range(8)},
                                           "b": {f"{i}.png": strip for i in range(8)}})
    (folder / "a" / "loop").symlink_to(folder / "a")
    (folder / "b" / "up").symlink_to(folder)
    (folder / "b" / "self.jpg").symlink_to("self.jpg")
    rc, err, _ = run(tiny_args(tmp_path, folder, "data.workers=1"))
    assert rc == 3, err[-3000:]
    assert "self.jpg" in err  # the self-referencing link is named and skipped


def test_diverged_training_stops_before_checkpointing(tmp_path, tiny):
    """lr 1e30 turns the loss into NaN within two steps; no NaN checkpoint may replace good ones."""
    _, folder, _ = tiny
    rc, err, events = run(tiny_args(tmp_path, folder, "optim.lr=1e30", "optim.epochs=3",
                                    "log.max_steps=6"))
    expect_error(rc, err, events, "diverged", "optim.lr")
    for c in (tmp_path / "ckpt").glob("ckpt-*"):
        tensors, _ = load(c)
        assert all(np.isfinite(v).all() for k, v in tensors.items() if k.startswith("encoder_q.")), c


# ---- checkpoints -----------------------------------------------------------------------------

@pytest.mark.parametrize("override,key", [
    ("model.arch=resnet34", "model.arch"), ("moco.k=64", "moco.k"), ("model.dim=64", "model.dim"),
    ("model.cifar_stem=false", "model.cifar_stem"), ("model.mlp=false", "model.mlp"),
])
def test_resume_with_a_different_shape_names_the_key(tmp_path, tiny, override, key):
    _, folder, ckpt = tiny
    rc, err, events = run(tiny_args(tmp_path, folder, override) + ["--resume", ckpt])
    expect_error(rc, err, events, key, "--set " + key)


@pytest.mark.parametrize("make,needle", [
    (lambda p, ck: p.write_bytes(ck.read_bytes()[:ck.stat().st_size // 2]), "truncated"),
    (lambda p, ck: p.write_bytes(b"\xff" * 1000), "not a safetensors file"),
    (lambda p, ck: p.write_bytes(b""), "not a safetensors file"),
    (lambda p, ck: p.mkdir(), "holds no ckpt-"),
])
def test_resume_from_a_broken_file_names_it(tmp_path, tiny, make, needle):
    _, folder, ckpt = tiny
    bad = tmp_path / "bad.safetensors"
    make(bad, ckpt)
    rc, err, events = run(tiny_args(tmp_path, folder) + ["--resume", bad])
    expect_error(rc, err, events, str(bad), needle)


@pytest.mark.parametrize("meta", [
    {"cursor": '{"epoch": -5, "batch": -3}'}, {"cursor": '{"epoch": 1e300, "batch": 0}'},
    {"step": "-100"}, {"cursor": '{"epoch": 0.5, "batch": 0}'},
])
def test_forged_cursor_is_refused(tmp_path, tiny, meta):
    _, folder, ckpt = tiny
    tensors, metadata = load(ckpt)
    forged = tmp_path / "forged.safetensors"
    save(forged, tensors, {**metadata, **meta})
    rc, err, events = run(tiny_args(tmp_path, folder) + ["--resume", forged])
    expect_error(rc, err, events, str(forged), "cursor")


def test_resuming_a_finished_run_says_so(tmp_path, tiny):
    _, folder, ckpt = tiny
    tensors, metadata = load(ckpt)
    done = tmp_path / "done.safetensors"
    save(done, tensors, {**metadata, "cursor": '{"epoch": 1, "batch": 0}', "epoch": "1"})
    rc, err, events = run(tiny_args(tmp_path, folder) + ["--resume", done])
    assert rc == 0 and "nothing to train" in err and "optim.epochs" in err, err


def test_full_disk_during_save_keeps_earlier_checkpoints(tmp_path, tiny):
    """A file-size limit below one checkpoint: the save fails with the path named, SIGXFSZ
    does not kill the process, the earlier checkpoint still loads and no temporary remains."""
    _, folder, ckpt = tiny
    ckdir = tmp_path / "ckpt"
    ckdir.mkdir()
    kept = ckdir / ckpt.name
    kept.write_bytes(ckpt.read_bytes())
    limit = ckpt.stat().st_size // 4

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    rc, err, events = run(tiny_args(tmp_path, folder) + ["--resume", ckdir], preexec_fn=small_files)
    line = expect_error(rc, err, events, "could not write checkpoint", str(ckdir / "ckpt-e0001"))
    assert "File too large" in line
    assert sorted(p.name for p in ckdir.iterdir()) == [ckpt.name]
    tensors, _ = load(kept)
    assert "queue" in tensors


def test_kill_9_during_a_save_leaves_loadable_checkpoints_and_resumes(tmp_path, tiny):
    """Resume the fixture's mid-epoch checkpoint, SIGKILL while the next save is written: every
    ckpt-* file still loads, and the next run resumes and removes the dead run's temporary."""
    _, folder, ckpt = tiny
    ckdir = tmp_path / "ckpt"
    ckdir.mkdir()
    (ckdir / ckpt.name).write_bytes(ckpt.read_bytes())
    args = tiny_args(tmp_path, folder, "optim.epochs=50", "log.max_steps=0") + ["--resume", ckdir]
    proc = subprocess.Popen([str(MOCO_TRAIN)] + [str(a) for a in args], cwd=ROOT,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(ckdir.glob(".ckpt-*.tmp.*")) and proc.poll() is None:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    names = [c.name for c in ckdir.glob("ckpt-*.safetensors")]
    assert ckpt.name in names
    for c in ckdir.glob("ckpt-*.safetensors"):
        load(c)
    rc, err, events = run(tiny_args(tmp_path, folder, "optim.epochs=50") + ["--resume", ckdir])
    assert rc == 3 and "resuming at epoch" in err, err[-3000:]
    assert not list(ckdir.glob(".ckpt-*")), "the killed run's temporary file was left behind"


def test_export_refuses_what_is_not_a_checkpoint(tmp_path, tiny):
    _, _, ckpt = tiny
    out = tmp_path / "bb.safetensors"
    assert run(["--export", "backbone", "--checkpoint", ckpt, "--out", out])[0] == 0
    rc, err, events = run(["--export", "backbone", "--checkpoint", out, "--out", tmp_path / "x"])
    expect_error(rc, err, events, str(out), "encoder_q")
    rc, err, events = run(["--export", "backbone", "--checkpoint", ckpt, "--out", tmp_path / "no" / "x"])
    expect_error(rc, err, events, str(tmp_path / "no" / "x"))


# ---- align -----------------------------------------------------------------------------------

@pytest.mark.parametrize("batch,needle", [
    ({"perm": np.zeros((1, 8), np.int64)}, "not a permutation"),
    ({"perm": np.full((1, 8), 1000, np.int64)}, "not a permutation"),
    ({"perm": np.arange(8, dtype=np.int32)[None]}, "'perm' must be int64"),
    ({"im_q": np.zeros((0, 8, 3, 32, 32), np.float32),
      "im_k": np.zeros((0, 8, 3, 32, 32), np.float32)}, "at least 1"),
    ({"im_q": np.zeros((1, 8, 3, 32, 32), np.float64)}, "float32"),
    ({"im_k": np.zeros((1, 8, 3, 16, 16), np.float32)}, "different shapes"),
    ({"im_k": None}, "no 'im_k'"),
])
def test_align_refuses_malformed_batches(tmp_path, tiny, batch, needle):
    _, _, ckpt = tiny  # a checkpoint is a valid align state
    config = tmp_path / "c.json"  # no data.train: align reads no folder
    config.write_text(json.dumps({"model": {"arch": "resnet18", "cifar_stem": True, "dim": 128},
                                  "moco": {"k": 32}, "data": {"image_size": 32},
                                  "optim": {"batch_size": 8}}))
    rng = np.random.default_rng(0)
    tensors = {"im_q": rng.standard_normal((1, 8, 3, 32, 32)).astype(np.float32),
               "im_k": rng.standard_normal((1, 8, 3, 32, 32)).astype(np.float32)}
    tensors.update(batch)
    tensors = {k: v for k, v in tensors.items() if v is not None}
    save(tmp_path / "b.st", tensors)
    rc, err = run_plain(["align", "--config", config, "--state", ckpt, "--batch", tmp_path / "b.st",
                         "--out", tmp_path / "o.st"])
    assert rc == 1 and needle in err, err[-3000:]
    assert not (tmp_path / "o.st").exists()
