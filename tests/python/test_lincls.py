"""test_lincls.py — linear evaluation (`moco-train lincls`) against PyTorch and end to end.

One step against PyTorch: build/tests/tools/lincls_step runs one lincls step through the library
(pretrained_load_backbone, lincls_train_step) and PyTorch runs the same step as main_lincls.py
does — torchvision ResNet-18 with the CIFAR stem, fc replaced, model.eval(), requires_grad only
on fc, torch.optim.SGD(fc parameters, lr, momentum, weight_decay) — from the same weights, with
random non-trivial BN statistics (moco_reference.randomize_state) so that a BN running in train
mode, or reading the wrong buffer, cannot pass.

Tolerance: max|c - t| / max|t| <= 1e-4 for the loss, the logits, the fc gradients and fc after
the update. Both sides are float32 and sum in different orders (im2col GEMMs vs PyTorch's
convolutions, BLAS reductions), which moves the last bits by ~1e-6 relative through a ResNet-18
(test_resnet_torchvision.py holds the same network to 1e-4 against float64); a real mistake
(train-mode BN, a wrong layout, a missing weight-decay term) gives errors of order 1e-2 or more.
The backbone after the step must be bit-identical to before: nothing may touch it.

End to end, on real images (datasets/cifar10-small): a few pretraining steps, then lincls for
two epochs on a tiny subset — eval events with top1/top5 in [0, 100], lincls-last and
lincls-best written with the documented metadata and a backbone equal to the pretrained one, an
interrupted and resumed run giving the same per-step losses as an uninterrupted one, and clear
errors for a missing or wrong model.pretrained.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_np as stnp  # noqa: E402
from moco_reference import randomize_state  # noqa: E402
from test_pretrain_e2e import CIFAR, DEMO, MOCO_TRAIN, ROOT, run_train  # noqa: E402

BUILD = ROOT / os.environ.get("MOCO_BUILD", "build")
TOOL = BUILD / "tests" / "tools" / "lincls_step"
TOL = 1e-4


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))


def cifar_resnet18(classes):
    net = torchvision.models.resnet18(num_classes=classes)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def topk_correct(logits, labels, k):
    """The engine's rule: rank by logit, ties toward the lower class index; -1 if k > classes."""
    if k > logits.shape[1]:
        return -1
    count = 0
    for row, c in zip(logits, labels):
        ahead = sum(1 for j, v in enumerate(row) if v > row[c] or (v == row[c] and j < c))
        count += ahead < k
    return count


@pytest.mark.parametrize("classes", [7, 3])  # 3: top-5 undefined
def test_one_step_matches_pytorch(tmp_path, classes):
    torch.manual_seed(classes)
    gen = torch.Generator().manual_seed(100 + classes)
    net = cifar_resnet18(classes)
    randomize_state(net, gen)
    with torch.no_grad():  # a trained-looking fc, so that weight decay and momentum matter
        net.fc.weight.normal_(0, 0.05, generator=gen)
        net.fc.bias.normal_(0, 0.05, generator=gen)
    n, size, lr, momentum, wd = 6, 8, 0.5, 0.9, 1e-3
    images = torch.randn(n, 3, size, size, generator=gen)
    labels = torch.randint(0, classes, (n,), generator=gen)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    inputs = {k: v.numpy() for k, v in state.items()}
    inputs.update(images=images.numpy(), labels=labels.numpy(),
                  lr=np.float32(lr), momentum=np.float32(momentum), wd=np.float32(wd))
    stnp.save(tmp_path / "in.safetensors", inputs, {"format": "mocod-backbone"})
    subprocess.run([str(TOOL), "--input", tmp_path / "in.safetensors", "--out", tmp_path / "out.safetensors"],
                   check=True)
    out, _ = stnp.load(tmp_path / "out.safetensors")

    # PyTorch, as main_lincls.py: frozen backbone, eval mode, SGD on fc only.
    net.eval()
    for p in net.parameters():
        p.requires_grad = False
    net.fc.weight.requires_grad = net.fc.bias.requires_grad = True
    opt = torch.optim.SGD([net.fc.weight, net.fc.bias], lr, momentum=momentum, weight_decay=wd)
    logits = net(images)
    loss = F.cross_entropy(logits, labels)
    opt.zero_grad()
    loss.backward()
    grads = {"fc.weight": net.fc.weight.grad.clone(), "fc.bias": net.fc.bias.grad.clone()}
    opt.step()

    errors = {
        "loss": rel_err(out["loss"], loss.item()),
        "logits": rel_err(out["logits"], logits.detach().numpy()),
        "grad.fc.weight": rel_err(out["grad.fc.weight"], grads["fc.weight"].numpy()),
        "grad.fc.bias": rel_err(out["grad.fc.bias"], grads["fc.bias"].numpy()),
        "fc.weight": rel_err(out["fc.weight"], net.fc.weight.detach().numpy()),
        "fc.bias": rel_err(out["fc.bias"], net.fc.bias.detach().numpy()),
    }
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, f"relative errors above {TOL}: {bad} (all: {errors})"
    # Frozen: every backbone tensor, BN running statistics and num_batches_tracked included,
    # leaves the step bit for bit as it came in (and equal to what PyTorch holds after its step).
    for name, before in state.items():
        if name.startswith("fc."):
            continue
        after = out["after." + name]
        assert after.dtype == before.numpy().dtype and np.array_equal(after, before.numpy()), name
        assert torch.equal(net.state_dict()[name], before), name
    assert int(out["correct1"]) == topk_correct(out["logits"], labels.numpy(), 1)
    assert int(out["correct5"]) == topk_correct(out["logits"], labels.numpy(), 5)


# ---- end to end ----------------------------------------------------------------------------

def subset(root, split, classes, per_class):
    """A folder of symlinks to real CIFAR images of the first `classes` classes."""
    out = root / split
    for c in sorted(os.listdir(CIFAR / split))[:classes]:
        (out / c).mkdir(parents=True)
        for name in sorted(os.listdir(CIFAR / split / c))[:per_class]:
            (out / c / name).symlink_to(CIFAR / split / c / name)
    return out


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Two MoCo steps on 30 images: a real mocod-checkpoint folder to evaluate."""
    root = tmp_path_factory.mktemp("pre")
    train = subset(root, "train", 6, 5)
    rc, _, err = run_train(["pretrain", "--config", DEMO, "--set", f"data.train={train}",
                            "--set", "optim.batch_size=10", "--set", "moco.k=40",
                            "--set", "log.max_steps=2", "--set", "data.workers=1",
                            "--set", f"checkpoint.dir={root / 'ckpt'}"], check=False)
    assert rc == 3, err[-2000:]
    return root / "ckpt"


def lincls_args(tmp_path, pretrained, classes=6, train_per_class=3, extra=()):
    data = tmp_path / "data"
    if not data.exists():
        subset(data, "train", classes, train_per_class)
        subset(data, "val", classes, 2)
    config = tmp_path / "lincls.yaml"
    config.write_text(
        "kind: lincls\n"
        f"model: {{arch: resnet18, cifar_stem: true, pretrained: '{pretrained}'}}\n"
        f"data: {{train: '{data / 'train'}', val: '{data / 'val'}', image_size: 32, val_resize: 32, workers: 1}}\n"
        "optim: {batch_size: 6, epochs: 2, lr: 0.1}\n"
        f"checkpoint: {{dir: '{tmp_path / 'lin'}'}}\n"
        "log: {print_every: 1}\n")
    return ["lincls", "--config", config] + list(extra)


def test_lincls_end_to_end(tmp_path, pretrained):
    _, events, err = run_train(lincls_args(tmp_path, pretrained))
    assert events[0]["kind"] == "start" and events[0]["job"] == "lincls" and events[0]["classes"] == 6
    assert events[-1]["kind"] == "done" and events[-1]["status"] == "completed"
    evals = [e for e in events if e["kind"] == "eval"]
    assert [e["epoch"] for e in evals] == [0, 1]
    for e in evals:
        assert e["eval"] == "lincls"
        assert 0 <= e["top1"] <= 100 and 0 <= e["top5"] <= 100 and e["top5"] >= e["top1"]
        assert e["loss"] > 0 and e["best_top1"] == max(x["top1"] for x in evals[:evals.index(e) + 1])
    metrics = [e for e in events if e["kind"] == "metric"]
    assert len(metrics) == 6 and all({"loss", "lr", "top1", "top5"} <= set(e) for e in metrics)
    assert "sanity check passed" in err and "ETA" in err

    last, meta = stnp.load(tmp_path / "lin" / "lincls-last.safetensors")
    _, best_meta = stnp.load(tmp_path / "lin" / "lincls-best.safetensors")
    assert meta["format"] == "mocod-lincls" and meta["epoch"] == "2" and meta["arch"] == "resnet18"
    assert meta["cifar_stem"] == "1" and json.loads(meta["config"])["kind"] == "lincls"
    assert float(meta["best_top1"]) == evals[-1]["best_top1"] == float(best_meta["best_top1"])
    assert Path(meta["pretrained"]).parent == pretrained
    assert last["fc.weight"].shape == (6, 512) and "optim.momentum_buffer.fc.weight" in last
    # The backbone in the checkpoint is the pretrained encoder_q, bit for bit.
    pre, _ = stnp.load(meta["pretrained"])
    for name, value in last.items():
        if not name.startswith(("fc.", "optim.")):
            assert np.array_equal(value, pre["encoder_q." + name]), name
    # The whole state loads into torchvision.
    net = cifar_resnet18(6)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in last.items() if not k.startswith("optim.")})


def test_lincls_resume_is_exact_and_top5_undefined_is_null(tmp_path, pretrained):
    """4 classes: top-5 is undefined, reported as null (and n/a), never as a number. A run
    stopped mid-epoch (log.max_steps) and resumed gives the same per-step losses and the same
    evaluation as an uninterrupted one."""
    full_args = lincls_args(tmp_path / "a", pretrained, classes=4, train_per_class=3)
    _, full, err = run_train(full_args)
    assert "top-5 accuracy is undefined with 4 classes" in err and "acc5 n/a" in err
    assert all(e["top5"] is None for e in full if e["kind"] in ("eval", "metric"))
    args = lincls_args(tmp_path / "b", pretrained, classes=4, train_per_class=3)
    rc, first, err = run_train(args + ["--set", "log.max_steps=1"], check=False)
    assert rc == 3 and first[-1]["status"] == "stopped", err[-2000:]
    _, second, err = run_train(args + ["--resume", tmp_path / "b" / "lin"])
    assert "resuming at epoch 1, batch 1" in err and "sanity check passed" in err

    def losses(events):
        return {e["step"]: e["loss"] for e in events if e["kind"] == "metric"}

    assert losses(full) == {**losses(first), **losses(second)} and len(losses(full)) == 4
    assert [e["top1"] for e in full if e["kind"] == "eval"] == [e["top1"] for e in second if e["kind"] == "eval"]


@pytest.mark.parametrize("override,needles", [
    ("model.pretrained=/nonexistent/ckpt.safetensors", ["model.pretrained", "/nonexistent"]),
    ("model.pretrained=", ["model.pretrained is required"]),
    ("model.pretrained=job:12", ["model.pretrained", "only mocod resolves job:<id>"]),
    ("model.arch=resnet34", ["model.arch", "resnet18 with the CIFAR stem", "layer1.2"]),
    ("model.cifar_stem=false", ["model.cifar_stem", "conv1.weight"]),
])
def test_bad_pretrained_is_refused_naming_the_key(tmp_path, pretrained, override, needles):
    rc, events, err = run_train(lincls_args(tmp_path, pretrained, extra=["--set", override]), check=False)
    assert rc == 1, err[-2000:]
    for needle in needles:
        assert needle in err, err
    assert events[-1]["kind"] == "error"


def test_a_file_of_another_format_says_how_to_convert(tmp_path, pretrained):
    other = tmp_path / "raw.safetensors"
    stnp.save(other, {"conv1.weight": np.zeros((64, 3, 3, 3), np.float32)})  # no format metadata
    rc, _, err = run_train(lincls_args(tmp_path, pretrained, extra=["--set", f"model.pretrained={other}"]),
                           check=False)
    assert rc == 1 and "convert_checkpoint.py from-torch" in err and "mocod-backbone" in err, err


def test_non_finite_pretrained_weights_are_refused_naming_the_tensor(tmp_path, pretrained):
    """A diverged pretraining's NaN must be named at load, not surface as a NaN loss that
    blames optim.lr (lincls) or as a meaningless accuracy (knn)."""
    ckpt = sorted(pretrained.glob("ckpt-*.safetensors"))[-1] if pretrained.is_dir() else pretrained
    tensors, meta = stnp.load(ckpt)
    w = tensors["encoder_q.layer3.0.conv2.weight"].copy()
    w.flat[7] = np.nan
    tensors["encoder_q.layer3.0.conv2.weight"] = w
    bad = tmp_path / "nan.safetensors"
    stnp.save(bad, tensors, meta)
    rc, events, err = run_train(lincls_args(tmp_path, pretrained, extra=["--set", f"model.pretrained={bad}"]),
                                check=False)
    assert rc == 1 and "layer3.0.conv2.weight" in err and "non-finite" in err, err[-2000:]
    assert events[-1]["kind"] == "error"

