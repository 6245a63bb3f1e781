"""ImageFolder semantics (data/folder.c) against torchvision.datasets.ImageFolder, and the
threaded loader (data/loader.c): worker-count independence, DistributedSampler sharding,
drop_last, resuming mid-epoch, and unreadable files.

Every comparison here is exact: the loader must give bit-identical batches however many
threads produce them, and views equal to augmenting the same sample alone.
"""
import os
import shutil

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from data_tools import MINI, mini_images, run, read_f32

SIZE = 32  # small views keep the loader tests fast


def listing(root):
    p = run("loader_tool", "list", root, check=False)
    if p.returncode != 0:
        return None, p.stderr
    classes, files = [], []
    for line in p.stdout.splitlines():
        kind, rest = line.split(" ", 1)
        if kind == "class":
            classes.append(rest)
        elif kind == "file":
            label, path = rest.split(" ", 1)
            files.append((path, int(label)))
    return (classes, files), ""


def touch_jpeg(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copy(mini_images()[0], path)


@pytest.fixture()
def tricky_tree(tmp_path):
    """Nested folders whose sort order differs between per-level and full-path sorting,
    mixed-case extensions, non-image files, a symlinked folder and a symlinked class."""
    root = tmp_path / "root"
    for rel in ["b/x.JPG", "b/a-c/1.jpeg", "b/a/b/2.Png", "b/a/0.jpg", "b/z.txt",
                "a/Z.jpg", "a/y.JpEg", "a/sub.jpg/inner.jpg", "c/deep/er/1.png"]:
        touch_jpeg(str(root / rel))
    os.makedirs(tmp_path / "outside")
    touch_jpeg(str(tmp_path / "outside" / "linked.jpg"))
    os.symlink(tmp_path / "outside", root / "b" / "link")
    os.symlink(tmp_path / "outside", root / "d_linked_class")
    (root / "not_a_class.jpg").write_bytes(b"x")
    return str(root)


def test_folder_matches_torchvision(tricky_tree):
    got, err = listing(tricky_tree)
    assert got is not None, err
    ds = torchvision.datasets.ImageFolder(tricky_tree)
    assert got[0] == ds.classes
    assert got[1] == [(p, l) for p, l in ds.samples]


def test_shipped_folder_matches_torchvision():
    root = os.path.join(MINI, "train")
    got, err = listing(root)
    ds = torchvision.datasets.ImageFolder(root)
    assert got == (ds.classes, [(p, l) for p, l in ds.samples])


def test_empty_class_keeps_its_index(tmp_path):
    root = tmp_path / "r"
    touch_jpeg(str(root / "a" / "1.jpg"))
    os.makedirs(root / "b")  # empty
    touch_jpeg(str(root / "c" / "1.jpg"))
    got, err = listing(str(root))
    assert got is not None, err
    assert got[0] == ["a", "b", "c"]
    assert [l for _, l in got[1]] == [0, 2]


@pytest.mark.parametrize("case,text", [("missing", "No such file"), ("file", "not a directory"),
                                       ("no_classes", "no class folders"),
                                       ("no_images", "no image files")])
def test_folder_errors_name_the_folder(tmp_path, case, text):
    root = tmp_path / "data_root"
    if case == "file":
        root.write_text("x")
    elif case == "no_classes":
        os.makedirs(root)
        (root / "loose.jpg").write_bytes(b"x")
    elif case == "no_images":
        os.makedirs(root / "cls" / "sub")
        (root / "cls" / "readme.txt").write_text("x")
    got, err = listing(str(root))
    assert got is None
    assert text in err and str(root) in err, err


def epoch(root, tmp_path, kind="v2", views=2, batch=8, workers=0, prefetch=2, shuffle=1,
          drop_last=0, seed=5, rank=0, world=1, ep=0, first=0, again="once"):
    out = str(tmp_path / f"ep_{workers}_{rank}_{first}_{ep}.bin")
    p = run("loader_tool", "epoch", root, kind, SIZE, views, batch, workers, prefetch, shuffle,
            drop_last, seed, rank, world, ep, first, out, again)
    data = open(out, "rb").read()
    batches, off = [], 0
    vf = SIZE * SIZE * 3
    while off < len(data):
        size, index = np.frombuffer(data, np.int32, 2, off)
        off += 8
        labels = np.frombuffer(data, np.int32, size, off); off += 4 * size
        sample = np.frombuffer(data, np.int32, size, off); off += 4 * size
        v = np.frombuffer(data, np.float32, views * size * vf, off).reshape(views, size, -1)
        off += 4 * views * size * vf
        batches.append(dict(size=int(size), index=int(index), labels=labels, sample=sample,
                            views=v))
    return batches, p.stdout, p.stderr


TRAIN = os.path.join(MINI, "train")


def test_worker_count_never_changes_a_batch(tmp_path):
    runs = [epoch(TRAIN, tmp_path, workers=w, prefetch=pf)[0] for w, pf in ((0, 1), (1, 1), (3, 2))]
    for other in runs[1:]:
        assert len(other) == len(runs[0])
        for a, b in zip(runs[0], other):
            assert a["index"] == b["index"] and a["size"] == b["size"]
            assert np.array_equal(a["sample"], b["sample"])
            assert np.array_equal(a["labels"], b["labels"])
            assert np.array_equal(a["views"], b["views"])  # bit-identical


def test_epoch_order_views_and_labels(tmp_path):
    batches, out, _ = epoch(TRAIN, tmp_path, workers=2, batch=16)
    ds = torchvision.datasets.ImageFolder(TRAIN)
    n = len(ds)
    samples = np.concatenate([b["sample"] for b in batches])
    assert sorted(samples.tolist()) == list(range(n))          # a permutation of the data
    assert samples.tolist() != list(range(n))                  # shuffled
    labels = np.concatenate([b["labels"] for b in batches])
    assert labels.tolist() == [ds.targets[i] for i in samples]
    assert [b["size"] for b in batches] == [16] * (n // 16) + ([n % 16] if n % 16 else [])
    assert out.split()[:3] == ["batches", str(len(batches)), str(len(batches))]
    # the two views differ, and each equals the single-sample rendering with stream
    # (seed, epoch, sample, view)
    b0 = batches[0]
    assert not np.array_equal(b0["views"][0, 0], b0["views"][1, 0])
    for view in (0, 1):
        path = str(tmp_path / "one.bin")
        run("augment_tool", "view", "v2", SIZE, ds.samples[b0["sample"][0]][0], path, 5, 0,
            b0["sample"][0], view)
        assert np.array_equal(read_f32(path, SIZE, SIZE).ravel(), b0["views"][view, 0])
    # another epoch: another order
    other, _, _ = epoch(TRAIN, tmp_path, workers=2, batch=16, ep=1)
    assert np.concatenate([b["sample"] for b in other]).tolist() != samples.tolist()


def test_distributed_sharding_and_drop_last(tmp_path):
    n = len(torchvision.datasets.ImageFolder(TRAIN))  # 100
    world = 3
    shards = [epoch(TRAIN, tmp_path, workers=1, rank=r, world=world, batch=8, views=1,
                    kind="eval")[0] for r in range(world)]
    per_rank = -(-n // world)  # DistributedSampler: ceil, padded by wrapping around
    full = [np.concatenate([b["sample"] for b in s]) for s in shards]
    assert all(len(f) == per_rank for f in full)
    # interleave back: rank r holds padded positions r, r + world, ...
    padded = np.empty(per_rank * world, np.int32)
    for r in range(world):
        padded[r::world] = full[r]
    assert sorted(padded[:n].tolist()) == list(range(n))
    assert padded[n:].tolist() == padded[: per_rank * world - n].tolist()
    # drop_last keeps only full batches
    dl = epoch(TRAIN, tmp_path, workers=1, rank=1, world=world, batch=8, views=1,
               kind="eval", drop_last=1)[0]
    assert [b["size"] for b in dl] == [8] * (per_rank // 8)
    assert np.array_equal(np.concatenate([b["sample"] for b in dl]), full[1][: 8 * (per_rank // 8)])
    # without shuffle, dataset order
    ns = epoch(TRAIN, tmp_path, workers=1, batch=8, views=1, kind="eval", shuffle=0)[0]
    assert np.concatenate([b["sample"] for b in ns]).tolist() == list(range(n))


def test_resume_mid_epoch(tmp_path):
    whole = epoch(TRAIN, tmp_path, workers=2, batch=8)[0]
    rest = epoch(TRAIN, tmp_path, workers=2, batch=8, first=5)[0]
    assert [b["index"] for b in rest] == list(range(5, len(whole)))
    for a, b in zip(whole[5:], rest):
        assert np.array_equal(a["sample"], b["sample"]) and np.array_equal(a["views"], b["views"])


def test_unreadable_files_are_skipped_named_and_counted(tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(TRAIN, root)
    cls = sorted(os.listdir(root))[2]
    files = sorted(os.listdir(root / cls))
    trunc = root / cls / files[0]
    data = trunc.read_bytes()
    trunc.write_bytes(data[: len(data) // 3])
    (root / cls / files[1]).write_bytes(b"")
    (root / cls / "zz_notes.jpg").write_text("not an image")
    n = len(torchvision.datasets.ImageFolder(str(root)))
    for workers in (0, 3):
        batches, out, err = epoch(str(root), tmp_path, workers=workers, batch=16, again="again")
        sizes = sum(b["size"] for b in batches)
        assert sizes == n  # every position filled with a readable replacement
        assert out.split()[4] == "3", out  # three positions replaced this epoch
        assert "again" in out and out.split()[-1] == "3"  # counted again next time, warned once
        for name, reason in ((files[0], "truncated or corrupt JPEG"), (files[1], "empty file"),
                             ("zz_notes.jpg", "not a JPEG or PNG")):
            lines = [l for l in err.splitlines() if name in l]
            assert len(lines) == 1 and reason in lines[0], err
        samples = np.concatenate([b["sample"] for b in batches])
        bad = {i for i, (p, _) in enumerate(torchvision.datasets.ImageFolder(str(root)).samples)
               if os.path.basename(p) in (files[0], files[1], "zz_notes.jpg")}
        assert not bad & set(samples.tolist())
