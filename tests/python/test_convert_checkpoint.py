"""test_convert_checkpoint.py — tools/convert_checkpoint.py between PyTorch MoCo checkpoints and
mocod's safetensors files.

Official-format checkpoints are made here with torch (a MoCo v1 model: torchvision ResNet with
num_classes=128 as the fc head; a v2 model with the Sequential MLP head; ResNet-50; the CIFAR
stem; with and without `module.`; with optimizer state), with randomized weights and BN
buffers. from-torch must keep exactly the encoder_q backbone, bit for bit; to-torch must give it
back under `module.encoder_q.*` in a form torchvision and the official detectron2 conversion
accept. A checkpoint and a backbone export from the real moco-train go through to-torch too.

Most conversions call the tool's main() in this process (importing torch once); a few run it as
a program to check the exit status and the executable itself.
"""
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_np as stnp  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "convert_checkpoint.py"
sys.path.insert(0, str(TOOL.parent))
import convert_checkpoint as cc  # noqa: E402

BUILD = ROOT / os.environ.get("MOCO_BUILD", "build")
MOCO_TRAIN = BUILD / "bin" / "moco-train"
DEMO = ROOT / "configs" / "demo_moco_v2_cifar10_small.yaml"
CIFAR = ROOT / "datasets" / "cifar10-small"


# ---- helpers -----------------------------------------------------------------------------------

def make_resnet(arch, head, cifar_stem=False, seed=0):
    """A torchvision ResNet as MoCo builds it: head 'v1' (fc to 128), 'v2' (MLP head), or an
    int (a classifier with that many classes, as main_lincls). Weights and BN buffers random."""
    torch.manual_seed(seed)
    if head in ("v1", "v2"):
        net = getattr(torchvision.models, arch)(num_classes=128)
        if head == "v2":
            dim_mlp = net.fc.weight.shape[1]
            net.fc = torch.nn.Sequential(torch.nn.Linear(dim_mlp, dim_mlp), torch.nn.ReLU(), net.fc)
    else:
        net = getattr(torchvision.models, arch)(num_classes=head)
    if cifar_stem:  # the official CIFAR-10 demo
        net.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = torch.nn.Identity()
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(int(torch.randint(0, 10_000, ())))
            elif name.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
            else:
                t.copy_(torch.randn_like(t))
    return net


def backbone_of(net):
    return OrderedDict((k, v.clone()) for k, v in net.state_dict().items() if not k.startswith("fc."))


def official_checkpoint(path, arch="resnet18", head="v2", cifar_stem=False, prefix="module.",
                        wrapped=True, with_arch=True):
    """Saves a MoCo checkpoint as main_moco.py does; returns the encoder_q backbone."""
    q = make_resnet(arch, head, cifar_stem, seed=1)
    sd = OrderedDict()
    sd.update((f"{prefix}encoder_q.{n}", t) for n, t in q.state_dict().items())
    sd.update((f"{prefix}encoder_k.{n}", t + 1) for n, t in q.state_dict().items())  # differs from q
    sd[f"{prefix}queue"] = torch.nn.functional.normalize(torch.randn(128, 64), dim=0)
    sd[f"{prefix}queue_ptr"] = torch.zeros(1, dtype=torch.long)
    if wrapped:
        opt = torch.optim.SGD(q.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
        for p in q.parameters():
            p.grad = torch.randn_like(p)
        opt.step()
        obj = {"epoch": 7, "state_dict": sd, "optimizer": opt.state_dict()}
        if with_arch:
            obj["arch"] = arch
    else:
        obj = sd
    torch.save(obj, path)
    return backbone_of(q)  # after the optimizer step, as saved


def convert(*args, capsys=None):
    """Runs the tool's main() here; returns (exit status, stderr)."""
    rc = cc.main([str(a) for a in args])
    err = capsys.readouterr().err if capsys else ""
    return rc, err


def run_tool(*args):
    p = subprocess.run([str(TOOL)] + [str(a) for a in args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stderr


def same_bits(a, b):
    a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def detectron2_keys(obj):
    """The key mapping of moco/detection/convert-pretrain-to-detectron2.py, written from what it
    does: take obj["state_dict"], keep keys starting with "module.encoder_q.", strip that, put
    "stem." before keys without "layer", layerN -> res(N+1), bnN -> convN.norm, downsample.0 ->
    shortcut, downsample.1 -> shortcut.norm; every value goes through .numpy()."""
    out = {}
    for k, v in obj["state_dict"].items():
        if not k.startswith("module.encoder_q."):
            continue
        k = k.replace("module.encoder_q.", "")
        if "layer" not in k:
            k = "stem." + k
        for t in [1, 2, 3, 4]:
            k = k.replace(f"layer{t}", f"res{t + 1}")
        for t in [1, 2, 3]:
            k = k.replace(f"bn{t}", f"conv{t}.norm")
        k = k.replace("downsample.0", "shortcut")
        k = k.replace("downsample.1", "shortcut.norm")
        out[k] = v.numpy()
    return out


def check_torch_output(path, arch, want, cifar_stem=False):
    """The to-torch file holds `want` (name -> tensor) as module.encoder_q.*, bit for bit, and
    torchvision and the detectron2 mapping take it."""
    obj = torch.load(path, map_location="cpu")
    assert obj["arch"] == arch
    sd = obj["state_dict"]
    assert set(sd) == {"module.encoder_q." + n for n in want}
    for n, t in want.items():
        assert same_bits(sd["module.encoder_q." + n], t), n
    net = getattr(torchvision.models, arch)()
    if cifar_stem:
        net.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    stripped = {k[len("module.encoder_q."):]: v for k, v in sd.items()}
    missing, unexpected = net.load_state_dict(stripped, strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected
    d2 = detectron2_keys(obj)
    assert len(d2) == len(want)
    assert not [k for k in d2 if "module." in k or k.startswith("stem.fc")]
    assert all(k.startswith(("stem.", "res2.", "res3.", "res4.", "res5.")) for k in d2)
    assert "stem.conv1.norm.running_var" in d2 and "res3.0.shortcut.norm.weight" in d2
    return obj


# ---- from-torch -> to-torch round trips ------------------------------------------------------

CASES = {  # id: (arch, head, cifar_stem, prefix, wrapped)
    "v1-r18-module": ("resnet18", "v1", False, "module.", True),
    "v2-r18-cifar-noprefix": ("resnet18", "v2", True, "", True),
    "v2-r50-module": ("resnet50", "v2", False, "module.", True),
    "v1-r18-bare-state-dict": ("resnet18", "v1", False, "module.", False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_official_checkpoint_round_trip(tmp_path, capsys, case):
    arch, head, cifar_stem, prefix, wrapped = CASES[case]
    src = tmp_path / "moco.pth.tar"
    want = official_checkpoint(src, arch, head, cifar_stem, prefix, wrapped)
    st = tmp_path / "backbone.safetensors"
    rc, err = convert("from-torch", src, st, capsys=capsys)
    assert rc == 0, err

    tensors, meta = stnp.load(st)  # strict reader: the file is a valid safetensors file
    tv_keys = {k for k in getattr(torchvision.models, arch)().state_dict() if not k.startswith("fc.")}
    assert set(tensors) == tv_keys == set(want)
    for n, t in want.items():
        assert same_bits(tensors[n], t), n
    assert tensors["bn1.num_batches_tracked"].dtype == np.int64 and tensors["bn1.num_batches_tracked"].shape == ()
    assert meta["format"] == "mocod-backbone" and meta["format_version"] == "1"
    assert meta["arch"] == arch and meta["cifar_stem"] == ("1" if cifar_stem else "0")
    assert meta["source"] == "torch" and meta["source_file"] == "moco.pth.tar"

    out = tmp_path / "back.pth.tar"
    rc, err = convert("to-torch", st, out, capsys=capsys)
    assert rc == 0, err
    obj = check_torch_output(out, arch, want, cifar_stem)
    assert obj["mocod_metadata"]["format"] == "mocod-backbone"
    assert obj["epoch"] == (7 if wrapped else 0)


def test_lincls_and_plain_torchvision_state_dicts(tmp_path, capsys):
    """main_lincls saves a whole classifier under `module.`; a torchvision state_dict has no
    prefix and no 'state_dict' wrapper. Both give the backbone without fc."""
    net = make_resnet("resnet18", 1000, seed=3)
    want = backbone_of(net)
    torch.save({"epoch": 100, "arch": "resnet18", "best_acc1": 60.5,
                "state_dict": {"module." + k: v for k, v in net.state_dict().items()}},
               tmp_path / "lincls.pth.tar")
    torch.save(net.state_dict(), tmp_path / "plain.pth")
    for name in ("lincls.pth.tar", "plain.pth"):
        out = tmp_path / (name + ".safetensors")
        rc, err = convert("from-torch", tmp_path / name, out, capsys=capsys)
        assert rc == 0, err
        assert "head dropped (fc.weight, fc.bias)" in err
        tensors, meta = stnp.load(out)
        assert set(tensors) == set(want) and meta["arch"] == "resnet18"
        assert all(same_bits(tensors[n], t) for n, t in want.items())


def test_the_program_runs_and_arch_is_inferred(tmp_path):
    """Run as an executable; with no 'arch' in the file the tensor set names it."""
    src = tmp_path / "noarch.pth.tar"
    want = official_checkpoint(src, "resnet18", "v1", with_arch=False)
    st = tmp_path / "b.safetensors"
    rc, err = run_tool("from-torch", src, st)
    assert rc == 0, err
    tensors, meta = stnp.load(st)
    assert meta["arch"] == "resnet18" and set(tensors) == set(want)
    rc, err = run_tool("to-torch", st, tmp_path / "b.pth.tar")
    assert rc == 0, err
    check_torch_output(tmp_path / "b.pth.tar", "resnet18", want)


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50"])
@pytest.mark.parametrize("cifar_stem", [False, True])
def test_tensor_set_matches_torchvision(arch, cifar_stem):
    """The tool's own list of names and shapes, and its arch inference, against torchvision."""
    net = getattr(torchvision.models, arch)()
    if cifar_stem:
        net.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    tv = [(k, tuple(v.shape)) for k, v in net.state_dict().items() if not k.startswith("fc.")]
    assert list(cc.expected_backbone(arch, cifar_stem).items()) == tv
    assert cc.infer_arch(dict(tv)) == arch


def test_half_precision_is_widened_and_missing_bn_counters_added(tmp_path, capsys):
    net = make_resnet("resnet18", "v1", seed=4)
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()
          if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": {"module.encoder_q." + k: v for k, v in sd.items()}}, tmp_path / "h.pth.tar")
    rc, err = convert("from-torch", tmp_path / "h.pth.tar", tmp_path / "h.safetensors", capsys=capsys)
    assert rc == 0, err
    assert "float16" in err and "float32" in err
    assert "num_batches_tracked" in err
    tensors, _ = stnp.load(tmp_path / "h.safetensors")
    assert tensors["layer2.0.conv1.weight"].dtype == np.float32
    assert same_bits(tensors["layer2.0.conv1.weight"], sd["layer2.0.conv1.weight"].float())
    assert tensors["layer4.1.bn2.num_batches_tracked"] == 0
    assert tensors["layer4.1.bn2.num_batches_tracked"].dtype == np.int64


def test_lincls_file_to_torch(tmp_path, capsys):
    """A mocod-lincls file (layout of train/lincls.h: the full torchvision state, fc included,
    plus optim.momentum_buffer.fc.*) becomes main_lincls's {'state_dict': {'module.<name>'}}."""
    net = make_resnet("resnet18", 10, cifar_stem=True, seed=7)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    tensors = dict(state, **{"optim.momentum_buffer.fc.weight": np.ones((10, 512), np.float32),
                             "optim.momentum_buffer.fc.bias": np.ones(10, np.float32)})
    src = tmp_path / "lincls-best.safetensors"
    stnp.save(src, tensors, {"format": "mocod-lincls", "format_version": "1", "arch": "resnet18",
                             "epoch": "2", "cifar_stem": "1", "best_top1": "61.25"})
    rc, err = convert("to-torch", src, tmp_path / "l.pth.tar", capsys=capsys)
    assert rc == 0, err
    obj = torch.load(tmp_path / "l.pth.tar", map_location="cpu")
    assert obj["epoch"] == 2 and obj["arch"] == "resnet18" and obj["best_acc1"] == 61.25
    sd = obj["state_dict"]
    assert set(sd) == {"module." + k for k in state}
    assert all(same_bits(sd["module." + k], v) for k, v in state.items())
    fresh = torchvision.models.resnet18(num_classes=10)
    fresh.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    fresh.load_state_dict({k[len("module."):]: v for k, v in sd.items()})  # strict


# ---- refusals ----------------------------------------------------------------------------------

def test_garbage_file_is_refused(tmp_path, capsys):
    bad = tmp_path / "garbage.pth.tar"
    bad.write_bytes(b"this is not a checkpoint\n" * 10)
    rc, err = run_tool("from-torch", bad, tmp_path / "o.safetensors")
    assert rc == 1 and "garbage.pth.tar" in err and "not a PyTorch checkpoint" in err
    rc, err = convert("to-torch", bad, tmp_path / "o.pth.tar", capsys=capsys)
    assert rc == 1 and "not a safetensors file" in err
    assert not (tmp_path / "o.safetensors").exists() and not (tmp_path / "o.pth.tar").exists()


def test_unrelated_keys_are_refused_with_what_was_found(tmp_path, capsys):
    torch.save({"epoch": 1, "state_dict": {"encoder.weight": torch.zeros(3), "decoder.bias": torch.zeros(2)}},
               tmp_path / "other.pth.tar")
    rc, err = convert("from-torch", tmp_path / "other.pth.tar", tmp_path / "o.safetensors", capsys=capsys)
    assert rc == 1
    assert "no recognizable ResNet backbone keys" in err and "'encoder.weight'" in err
    assert "module.encoder_q.conv1.weight" in err
    assert not (tmp_path / "o.safetensors").exists()


def test_missing_tensor_and_wrong_arch_are_named(tmp_path, capsys):
    net = make_resnet("resnet18", "v1", seed=5)
    sd = {"module.encoder_q." + k: v for k, v in net.state_dict().items()}
    del sd["module.encoder_q.layer3.1.conv2.weight"]
    torch.save({"arch": "resnet18", "state_dict": sd}, tmp_path / "m.pth.tar")
    rc, err = convert("from-torch", tmp_path / "m.pth.tar", tmp_path / "o.safetensors", capsys=capsys)
    assert rc == 1 and "layer3.1.conv2.weight" in err and "missing" in err

    sd = {"module.encoder_q." + k: v for k, v in net.state_dict().items()}
    torch.save({"arch": "resnet101", "state_dict": sd}, tmp_path / "a.pth.tar")
    rc, err = convert("from-torch", tmp_path / "a.pth.tar", tmp_path / "o.safetensors", capsys=capsys)
    assert rc == 1 and "unknown arch 'resnet101'" in err
    torch.save({"arch": "resnet34", "state_dict": sd}, tmp_path / "b.pth.tar")
    rc, err = convert("from-torch", tmp_path / "b.pth.tar", tmp_path / "o.safetensors", capsys=capsys)
    assert rc == 1 and "resnet34" in err and "resnet18" in err

    sd["module.encoder_q.layer1.0.bn1.weight"] = [1.0, 2.0]
    torch.save({"state_dict": sd}, tmp_path / "c.pth.tar")
    rc, err = convert("from-torch", tmp_path / "c.pth.tar", tmp_path / "o.safetensors", capsys=capsys)
    assert rc == 1 and "layer1.0.bn1.weight is a list, not a tensor" in err
    assert not (tmp_path / "o.safetensors").exists()


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_code_is_not_run(tmp_path, capsys):
    """The input is untrusted: a pickle that would call open() must be refused unexecuted."""
    marker = tmp_path / "pwned"
    net = make_resnet("resnet18", "v1", seed=6)
    torch.save({"state_dict": {"module.encoder_q." + k: v for k, v in net.state_dict().items()},
                "x": _Exploit(str(marker))}, tmp_path / "evil.pth.tar")
    assert not marker.exists()
    rc, err = convert("from-torch", tmp_path / "evil.pth.tar", tmp_path / "o.safetensors", capsys=capsys)
    assert rc == 1 and "--allow-pickle" in err
    assert not marker.exists()


def test_existing_output_needs_force(tmp_path, capsys):
    src = tmp_path / "moco.pth.tar"
    official_checkpoint(src, "resnet18", "v1")
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"keep me")
    rc, err = run_tool("from-torch", src, out)
    assert rc == 1 and "already exists" in err and "--force" in err
    assert out.read_bytes() == b"keep me"
    rc, err = convert("from-torch", src, out, "--force", capsys=capsys)
    assert rc == 0, err
    assert stnp.load(out)[1]["format"] == "mocod-backbone"
    pth = tmp_path / "out.pth.tar"
    pth.write_bytes(b"keep me too")
    rc, err = convert("to-torch", out, pth, capsys=capsys)
    assert rc == 1 and "already exists" in err and pth.read_bytes() == b"keep me too"
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]  # no temporary file left


def test_to_torch_refuses_files_of_another_format(tmp_path, capsys):
    stnp.save(tmp_path / "nofmt.safetensors", {"conv1.weight": np.zeros((64, 3, 7, 7), np.float32)})
    rc, err = convert("to-torch", tmp_path / "nofmt.safetensors", tmp_path / "o.pth.tar", capsys=capsys)
    assert rc == 1 and "no 'format'" in err
    stnp.save(tmp_path / "x.safetensors", {"a": np.zeros(2, np.float32)}, {"format": "other"})
    rc, err = convert("to-torch", tmp_path / "x.safetensors", tmp_path / "o.pth.tar", capsys=capsys)
    assert rc == 1 and "'other'" in err and "mocod-checkpoint" in err


# ---- files from the real engine --------------------------------------------------------------

@pytest.fixture(scope="module")
def engine_checkpoint(tmp_path_factory):
    if not MOCO_TRAIN.exists():
        pytest.skip(f"{MOCO_TRAIN} is not built (run make)")
    tmp = tmp_path_factory.mktemp("engine")
    folder = tmp / "tiny"
    for c in sorted(os.listdir(CIFAR / "train"))[:2]:
        (folder / c).mkdir(parents=True)
        for name in sorted(os.listdir(CIFAR / "train" / c))[:5]:
            (folder / c / name).symlink_to(CIFAR / "train" / c / name)
    sets = {"data.train": folder, "data.workers": 1, "optim.batch_size": 10, "moco.k": 40,
            "optim.epochs": 1, "checkpoint.dir": tmp / "ckpt", "resources.threads": 1}
    args = [MOCO_TRAIN, "pretrain", "--config", DEMO]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    p = subprocess.run([str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return max((tmp / "ckpt").glob("ckpt-*.safetensors")), tmp


def test_engine_checkpoint_and_export_to_torch(engine_checkpoint, capsys):
    ckpt, tmp = engine_checkpoint
    full, meta = stnp.load(ckpt)
    assert meta["format"] == "mocod-checkpoint"
    want = {k[len("encoder_q."):]: torch.from_numpy(v.copy()) for k, v in full.items()
            if k.startswith("encoder_q.") and not k.startswith("encoder_q.fc.")}

    out = tmp / "ckpt.pth.tar"
    rc, err = convert("to-torch", ckpt, out, capsys=capsys)
    assert rc == 0, err
    obj = check_torch_output(out, "resnet18", want, cifar_stem=True)
    assert obj["epoch"] == int(meta["epoch"]) == 1
    assert obj["mocod_metadata"]["config"] == meta["config"]

    exported = tmp / "backbone.safetensors"
    subprocess.run([str(MOCO_TRAIN), "--export", "backbone", "--checkpoint", str(ckpt), "--out", str(exported)],
                   check=True, capture_output=True)
    out2 = tmp / "export.pth.tar"
    rc, err = convert("to-torch", exported, out2, capsys=capsys)
    assert rc == 0, err
    sd1 = obj["state_dict"]
    sd2 = torch.load(out2, map_location="cpu")["state_dict"]
    assert list(sd1) == list(sd2) and all(same_bits(sd1[k], sd2[k]) for k in sd1)

    # ... and back: from-torch of that file is the export again, tensor for tensor.
    back = tmp / "back.safetensors"
    rc, err = convert("from-torch", out2, back, capsys=capsys)
    assert rc == 0, err
    a, _ = stnp.load(exported)
    b, bmeta = stnp.load(back)
    assert set(a) == set(b) and all(same_bits(a[k], b[k]) for k in a)
    assert bmeta["cifar_stem"] == "1" and bmeta["epoch"] == "0"  # the export keeps no epoch
