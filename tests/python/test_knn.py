"""test_knn.py — the kNN classifier, the kNN monitor and `moco-train knn` against PyTorch.

The reference is the official CIFAR-10 demo's knn_predict (colab/moco_cifar10_demo.ipynb)
written with stable sorts, so that ties are defined as mocod defines them: among equal
similarities the lower bank index is the nearer neighbour, among equal class scores the lower
class index ranks first. Predictions must match exactly.

Similarities from the C sgemm and from torch.mm can differ in the last bit for general
float32 features, so every test that builds ties uses features whose dot products are exact
in float32: unit vectors with entries 0, ±1, ±0.5, ±0.25 (a few dyadic terms sum exactly in
any order). Class scores are float sums whose order differs between the two implementations;
where classes must tie exactly the weights are made equal (t so large that exp(sim / t)
rounds to 1.0 for every sim, or identical similarities), so the sums are exact too.
"""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from safetensors_np import load, load_torch, save
from test_pretrain_e2e import CIFAR, MOCO_TRAIN, ROOT, run_train, small_args, step_losses

BUILD = ROOT / os.environ.get("MOCO_BUILD", "build")
KNN_TOOL = BUILD / "tests" / "tools" / "knn_predict"


# ---- the reference ------------------------------------------------------------------------

def torch_knn_predict(bank, bank_labels, queries, classes, k, t):
    """The demo's knn_predict with stable sorts; bank [n, d] (the demo holds it as [d, n]).
    Returns the class ranking [n_q, classes]."""
    sim = queries @ bank.t()
    k = min(k, bank.shape[0])  # the demo's topk would fail; mocod uses the whole bank
    idx = torch.sort(-sim, dim=1, stable=True).indices[:, :k]
    sim_weight = torch.gather(sim, 1, idx)
    sim_labels = bank_labels[idx]
    sim_weight = (sim_weight / t).exp()
    one_hot = torch.zeros(queries.shape[0] * k, classes)
    one_hot = one_hot.scatter(dim=-1, index=sim_labels.view(-1, 1), value=1.0)
    scores = torch.sum(one_hot.view(queries.shape[0], -1, classes) * sim_weight.unsqueeze(-1), dim=1)
    return torch.sort(-scores, dim=1, stable=True).indices


def c_knn_predict(tmp_path, bank, bank_labels, queries, classes, k, t, query_labels=None):
    """Runs tests/tools/knn_predict; returns (top [n_q, min(5, classes)], correct or None)."""
    tensors = {"bank": np.asarray(bank, np.float32), "queries": np.asarray(queries, np.float32),
               "bank_labels": np.asarray(bank_labels, np.int64)}
    if query_labels is not None:
        tensors["query_labels"] = np.asarray(query_labels, np.int64)
    inp, out = tmp_path / "knn_in.safetensors", tmp_path / "knn_out.safetensors"
    save(inp, tensors, {"k": str(k), "t": repr(float(t)), "classes": str(classes)})
    subprocess.run([str(KNN_TOOL), str(inp), str(out)], check=True, timeout=300)
    res, _ = load(out)
    return res["top"], res.get("correct")


def check_same(tmp_path, bank, bank_labels, queries, classes, k, t):
    bank, queries = torch.as_tensor(bank, dtype=torch.float32), torch.as_tensor(queries, dtype=torch.float32)
    bank_labels = torch.as_tensor(bank_labels, dtype=torch.int64)
    ref = torch_knn_predict(bank, bank_labels, queries, classes, k, t)[:, :min(5, classes)]
    top, _ = c_knn_predict(tmp_path, bank, bank_labels, queries, classes, k, t)
    assert top.shape == tuple(ref.shape)
    bad = np.nonzero((top != ref.numpy()).any(axis=1))[0]
    assert bad.size == 0, f"{bad.size} queries differ, first {bad[0]}: C {top[bad[0]]} torch {ref[bad[0]]}"
    return top


def dyadic_unit_vectors(dim):
    """Unit vectors whose dot products are exact in float32 (products and sums of a few
    dyadic numbers): ±e_i and the 16 vectors with four entries ±0.5."""
    eye = np.eye(dim, dtype=np.float32)
    vecs = [eye, -eye]
    signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * 4)).reshape(4, -1).T  # [16, 4]
    for s in signs:
        v = np.zeros(dim, np.float32)
        v[:4] = 0.5 * s  # norm 1: four entries of ±0.5
        vecs.append(v[None])
    return np.concatenate(vecs)


# ---- the classifier -----------------------------------------------------------------------

def test_random_features_match_the_demo(tmp_path):
    """General float features: no ties, so the demo's algorithm fixes every prediction."""
    g = torch.Generator().manual_seed(0)
    bank = torch.nn.functional.normalize(torch.randn(600, 64, generator=g), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(150, 64, generator=g), dim=1)
    labels = torch.randint(0, 10, (600,), generator=g)
    check_same(tmp_path, bank, labels, queries, 10, 200, 0.1)
    check_same(tmp_path, bank, labels, queries, 10, 7, 0.07)


def test_tiny_temperature_does_not_overflow(tmp_path):
    """t = 0.005: exp(sim / t) overflows float32 (every score inf, every query class 0).
    The ranking must equal the demo's computed in float64, where nothing overflows."""
    g = torch.Generator().manual_seed(2)
    bank = torch.nn.functional.normalize(torch.randn(400, 32, generator=g), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(100, 32, generator=g), dim=1)
    labels = torch.randint(0, 10, (400,), generator=g)
    ref = torch_knn_predict(bank.double(), labels, queries.double(), 10, 20, 0.005)[:, :5]
    assert torch.isfinite(torch.exp(torch.tensor(1.0 / 0.005, dtype=torch.float64)))
    top, _ = c_knn_predict(tmp_path, bank, labels, queries, 10, 20, 0.005)
    assert (top[:, 0] == ref[:, 0].numpy()).all()
    assert len(set(top[:, 0].tolist())) > 1  # not the all-inf answer (class 0 everywhere)


def test_top1_top5_counting(tmp_path):
    g = torch.Generator().manual_seed(1)
    bank = torch.nn.functional.normalize(torch.randn(300, 16, generator=g), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(80, 16, generator=g), dim=1)
    labels = torch.randint(0, 8, (300,), generator=g)
    qlabels = torch.randint(0, 8, (80,), generator=g)
    ref = torch_knn_predict(bank, labels, queries, 8, 20, 0.1)
    top, correct = c_knn_predict(tmp_path, bank, labels, queries, 8, 20, 0.1, qlabels)
    assert correct[0] == int((ref[:, 0] == qlabels).sum())
    assert correct[1] == int((ref[:, :5] == qlabels[:, None]).any(dim=1).sum())


def test_duplicated_rows_with_different_labels_tie_across_k(tmp_path):
    """Many bank rows share a feature but not a label, so equal similarities straddle the k
    boundary: which of them count decides the prediction. t = 1e9 makes every weight exactly
    1.0, so class scores are neighbour counts (exact, and often tied between classes)."""
    rng = np.random.default_rng(2)
    vecs = dyadic_unit_vectors(4)
    bank = vecs[rng.integers(0, len(vecs), 120)]
    labels = rng.integers(0, 7, 120)
    queries = vecs[rng.integers(0, len(vecs), 60)]
    for k in (1, 5, 13, 40):
        check_same(tmp_path, bank, labels, queries, 7, k, 1e9)


def test_tie_at_k_boundary_with_real_weights(tmp_path):
    """Query e0; bank 0 is e0 (class 0); banks 1..5 all have similarity 0.5 with classes
    1, 2, 3, 4, 1. With k = 4 the nearest are 0, 1, 2, 3 (lower index first), so classes 1, 2
    and 3 tie on one weight exp(5) each and rank by index: [0, 1, 2, 3, 4]. Taking the later
    duplicates instead would give class 1 two weights and a different order."""
    half = np.full(4, 0.5, np.float32)
    e0 = np.array([1, 0, 0, 0], np.float32)
    bank = np.stack([e0, half, half, half, half, half, -e0])
    labels = [0, 1, 2, 3, 4, 1, 4]
    top = check_same(tmp_path, bank, labels, e0[None], 5, 4, 0.1)
    assert top.tolist() == [[0, 1, 2, 3, 4]]


def test_equal_class_scores_rank_by_class_index(tmp_path):
    """Identical features in classes 3 and 1 give exactly equal scores; the lower class index
    ranks first, then the classes without neighbours in index order."""
    e0 = np.array([1, 0, 0, 0], np.float32)
    e1 = np.array([0, 1, 0, 0], np.float32)
    bank = np.stack([e0, e0, e1])
    top = check_same(tmp_path, bank, [3, 1, 5], e0[None], 6, 2, 0.1)
    assert top.tolist() == [[1, 3, 0, 2, 4]]


def test_k_larger_than_the_bank_uses_the_whole_bank(tmp_path):
    rng = np.random.default_rng(3)
    vecs = dyadic_unit_vectors(4)
    bank = vecs[rng.integers(0, len(vecs), 9)]
    queries = vecs[rng.integers(0, len(vecs), 12)]
    check_same(tmp_path, bank, rng.integers(0, 6, 9), queries, 6, 200, 0.1)


def test_fewer_than_five_classes(tmp_path):
    """The prediction lists every class (3 here) and top-5 is undefined: -1 from the tool,
    JSON null in events (train/accuracy.h)."""
    rng = np.random.default_rng(4)
    vecs = dyadic_unit_vectors(4)
    bank = vecs[rng.integers(0, len(vecs), 30)]
    labels = rng.integers(0, 3, 30)
    queries = vecs[rng.integers(0, len(vecs), 10)]
    top = check_same(tmp_path, bank, labels, queries, 3, 8, 0.1)
    assert top.shape == (10, 3)
    _, correct = c_knn_predict(tmp_path, bank, labels, queries, 3, 8, 0.1, rng.integers(0, 3, 10))
    assert correct[1] == -1


def test_blocked_queries_on_a_large_bank(tmp_path):
    """A bank of 200,000 rows makes the similarity tile hold fewer rows than there are
    queries (64 MiB / 800 kB = 83 < 100), so queries run in two blocks; dyadic features make
    nearly every similarity a tie."""
    rng = np.random.default_rng(5)
    vecs = dyadic_unit_vectors(4)
    bank = vecs[rng.integers(0, len(vecs), 200_000)]
    queries = vecs[rng.integers(0, len(vecs), 100)]
    check_same(tmp_path, bank, rng.integers(0, 10, 200_000), queries, 10, 50, 1e9)


# ---- the monitor and `moco-train knn` -------------------------------------------------------

def subset(dest, split, per_class, classes, offset=0):
    """A folder of symlinks to real CIFAR images of datasets/cifar10-small/<split>."""
    for c in sorted(os.listdir(CIFAR / split))[:classes]:
        (dest / c).mkdir(parents=True)
        for name in sorted(os.listdir(CIFAR / split / c))[offset:offset + per_class]:
            (dest / c / name).symlink_to(CIFAR / split / c / name)
    return dest


def test_monitor_does_not_change_training(tmp_path):
    """Two epochs of three steps with the monitor after every epoch and without it: the
    per-step losses must be bit-identical (the eval-mode forward leaves BN running statistics
    alone and the eval transform draws no random numbers), and one eval event per epoch."""
    train = subset(tmp_path / "train", "train", 5, 6)
    val = subset(tmp_path / "val", "val", 3, 6)
    two_epochs = ["--set", "optim.epochs=2"]
    _, off, _ = run_train(small_args(tmp_path / "off", train, two_epochs))
    _, on, err = run_train(small_args(tmp_path / "on", train, two_epochs + [
        "--set", f"data.val={val}", "--set", "eval.knn.every_epochs=1"]))
    assert step_losses(on) == step_losses(off) and len(step_losses(on)) == 6
    evals = [e for e in on if e["kind"] == "eval"]
    assert [e["epoch"] for e in evals] == [0, 1]
    for e in evals:
        assert e["eval"] == "knn" and 0 <= e["top1"] <= 100 and 0 <= e["top5"] <= 100
        assert e["bank"] == 30 and e["queries"] == 18 and e["k"] == 30
    # the eval follows its epoch's checkpoint
    kinds = [e["kind"] for e in on if e["kind"] in ("checkpoint", "eval")]
    assert kinds == ["checkpoint", "eval"] * 2
    assert err.count("knn top1") == 2
    assert not [e for e in off if e["kind"] == "eval"]


def test_monitor_without_data_val_is_refused(tmp_path):
    train = subset(tmp_path / "train", "train", 5, 6)
    rc, _, err = run_train(small_args(tmp_path, train, [
        "--set", 'data.val=""', "--set", "eval.knn.every_epochs=1"]), check=False)
    assert rc == 1 and "eval.knn.every_epochs" in err and "data.val" in err


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A checkpoint of two pretraining steps (enough to move weights and BN statistics)."""
    tmp = tmp_path_factory.mktemp("knn_pretrain")
    train = subset(tmp / "train", "train", 5, 6)
    rc, _, err = run_train(small_args(tmp, train, ["--set", "log.max_steps=2"]), check=False)
    assert rc == 3, err[-2000:]
    return next((tmp / "ckpt").glob("ckpt-*.safetensors"))


def knn_config(path, train, val, extra="", kind="knn"):
    path.write_text(
        f"kind: {kind}\n"
        "model: {arch: resnet18, cifar_stem: true}\n"
        f"data: {{train: {train}, val: {val}, image_size: 32, val_resize: 32, workers: 2}}\n"
        "optim: {batch_size: 50}\n"
        "eval: {knn: {k: 200, t: 0.1}}\n" + extra)
    return path


def torch_features(ckpt, root):
    """L2-normalized backbone features of an ImageFolder with torchvision's ResNet-18 on the
    CIFAR stem, weights from the checkpoint, eval transform ToTensor + Normalize (ImageNet
    mean/std, data/augment_color.c; 32x32 images need no resize or crop)."""
    model = torchvision.models.resnet18()
    model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = torch.nn.Identity()
    model.fc = torch.nn.Identity()
    tensors, _ = load_torch(ckpt)
    state = {k[len("encoder_q."):]: v for k, v in tensors.items()
             if k.startswith("encoder_q.") and not k.startswith("encoder_q.fc.")}
    model.load_state_dict(state)
    model.eval()
    tf = torchvision.transforms.Compose([
        torchvision.transforms.ToTensor(),
        torchvision.transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    ds = torchvision.datasets.ImageFolder(str(root), transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=100, shuffle=False)
    feats, labels = [], []
    with torch.no_grad():
        for x, y in loader:
            feats.append(torch.nn.functional.normalize(model(x), dim=1))
            labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def knn_run(args):
    return run_train(["knn"] + [str(a) for a in args])


def test_knn_command_matches_pytorch(tmp_path, pretrained):
    """kNN accuracy of the checkpoint's backbone: 150 bank images, 200 queries, 10 classes.
    Top-1 must agree within 0.5 points (one query): the features are float32 computed two ways,
    and a difference in their last bits can flip a query whose two best classes nearly tie."""
    train = subset(tmp_path / "train", "train", 15, 10, offset=10)
    val = subset(tmp_path / "val", "val", 20, 10)
    cfg = knn_config(tmp_path / "knn.yaml", train, val)
    _, events, err = knn_run(["--config", cfg, "--checkpoint", pretrained])
    evals = [e for e in events if e["kind"] == "eval"]
    assert len(evals) == 1 and events[-1]["kind"] == "done", events
    e = evals[0]
    assert e["eval"] == "knn" and e["bank"] == 150 and e["queries"] == 200 and e["k"] == 150
    assert "knn top1" in err and "(k 150, t 0.1, 150 bank images, 200 queries)" in err

    bank, bank_labels = torch_features(pretrained, train)
    queries, query_labels = torch_features(pretrained, val)
    pred = torch_knn_predict(bank, bank_labels, queries, 10, 200, 0.1)
    top1 = 100.0 * float((pred[:, 0] == query_labels).float().mean())
    top5 = 100.0 * float((pred[:, :5] == query_labels[:, None]).any(dim=1).float().mean())
    assert abs(e["top1"] - top1) <= 0.5, (e, top1)
    assert abs(e["top5"] - top5) <= 0.5, (e, top5)


def test_knn_from_backbone_export_and_model_pretrained(tmp_path, pretrained):
    """model.pretrained (here a backbone export) stands in for --checkpoint and gives the same
    numbers as the checkpoint itself; with 4 classes top-5 is null in the event and n/a on
    stderr. The config's kind does not matter (a pretraining recipe serves as well): the
    command makes the job a kNN evaluation."""
    train = subset(tmp_path / "train", "train", 6, 4)
    val = subset(tmp_path / "val", "val", 4, 4)
    export = tmp_path / "backbone.safetensors"
    subprocess.run([str(MOCO_TRAIN), "--export", "backbone", "--checkpoint", pretrained, "--out", export],
                   check=True, cwd=ROOT, capture_output=True)
    cfg = knn_config(tmp_path / "a.yaml", train, val)
    pretrain_cfg = knn_config(tmp_path / "b.yaml", train, val, kind="pretrain")
    _, from_ckpt, err = knn_run(["--config", cfg, "--checkpoint", pretrained])
    _, from_export, _ = knn_run(["--config", pretrain_cfg, "--set", f"model.pretrained={export}"])
    a = [e for e in from_ckpt if e["kind"] == "eval"][0]
    b = [e for e in from_export if e["kind"] == "eval"][0]
    assert a["top1"] == b["top1"] and a["top5"] is None and b["top5"] is None
    assert "top5 n/a" in err


def test_knn_without_a_backbone_is_refused(tmp_path):
    train = subset(tmp_path / "train", "train", 2, 2)
    cfg = knn_config(tmp_path / "knn.yaml", train, train)
    rc, _, err = run_train(["knn", "--config", cfg], check=False)
    assert rc == 1 and "--checkpoint" in err and "model.pretrained" in err


def test_unreadable_images_are_left_out_not_replaced(tmp_path, pretrained):
    """A truncated JPEG in the queries and an empty file in the bank: both are left out with a
    warning, so the result equals the one on the clean folders (the training loader's habit of
    substituting the next readable image would count that image twice)."""
    train = subset(tmp_path / "train", "train", 8, 5)
    val = subset(tmp_path / "val", "val", 6, 5)
    cfg = knn_config(tmp_path / "knn.yaml", train, val)
    _, clean, _ = knn_run(["--config", cfg, "--checkpoint", pretrained])
    good = next((CIFAR / "val" / sorted(os.listdir(CIFAR / "val"))[0]).iterdir())
    (val / sorted(os.listdir(val))[0] / "zz_truncated.jpg").write_bytes(good.read_bytes()[:200])
    (train / sorted(os.listdir(train))[1] / "zz_empty.jpg").write_bytes(b"")
    _, dirty, err = knn_run(["--config", cfg, "--checkpoint", pretrained])
    a = [e for e in clean if e["kind"] == "eval"][0]
    b = [e for e in dirty if e["kind"] == "eval"][0]
    assert (b["bank"], b["queries"]) == (a["bank"], a["queries"]) == (40, 30)
    assert (b["top1"], b["top5"]) == (a["top1"], a["top5"])
    assert "zz_truncated.jpg" in err and "zz_empty.jpg" in err and "left out" in err


def test_sigterm_during_the_monitor_stops_at_the_epoch_checkpoint(tmp_path):
    """SIGTERM while the monitor extracts features: the run stops without another training
    step (its newest checkpoint is the epoch's), exit status 3, and a resume continues."""
    train = subset(tmp_path / "train", "train", 5, 6)
    val = subset(tmp_path / "val", "val", 50, 6)  # 300 queries: the monitor takes a while
    args = small_args(tmp_path, train, ["--set", f"data.val={val}", "--set", "eval.knn.every_epochs=1",
                                        "--set", "optim.epochs=2", "--set", "resources.threads=1",
                                        "--set", "data.workers=1"])
    proc = subprocess.Popen([str(MOCO_TRAIN)] + [str(a) for a in args], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("knn: classifying"):
            proc.send_signal(15)
            break
    rest = proc.stderr.read()
    proc.wait(timeout=300)
    assert proc.returncode == 3, "".join(seen) + rest
    assert "monitor interrupted" in rest
    ckpts = sorted(p.name for p in (tmp_path / "ckpt").glob("ckpt-*.safetensors"))
    assert ckpts[-1] == "ckpt-e0001-s000000003.safetensors", ckpts  # 30 images / batch 10
    rc, events, err = run_train(args + ["--resume", tmp_path / "ckpt"], check=False)
    assert rc == 0, err[-2000:]
    assert min(step_losses(events)) == 4
