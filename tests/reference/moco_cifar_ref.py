#!/usr/bin/python3
"""moco_cifar_ref.py — the PyTorch side of the accuracy alignment (docs/accuracy.md).

An independent PyTorch implementation of the recipe in a mocod config file, written from the
official code (facebookresearch/moco main_moco.py, main_lincls.py and the kNN monitor of its
CIFAR-10 demo), reading the same YAML so both sides train the same thing:

  pretrain  MoCo on data.train: torchvision ResNet with the CIFAR stem, SplitBatchNorm emulating
            moco.bn_splits devices with shuffle BN (tests/python/moco_reference.py), the v2
            augmentation as torchvision transforms on float tensors, SGD, cosine schedule per
            epoch; one JSON line per step (loss, contrastive top-1) and an official-format
            checkpoint (`module.encoder_q.*` ...) at the end.
  knn       weighted kNN (k, t from eval.knn) on L2-normalized backbone features (pooled, before
            the head — mocod's choice, see docs/moco-train.md) of the un-augmented train set.
  lincls    main_lincls.py: frozen backbone in eval mode, fc N(0, 0.01), SGD lr/momentum/wd,
            step schedule; top-1/top-5 on the val folder after every epoch.

Randomness is torch's own (seeded), not mocod's Philox streams: the two sides agree in
distribution, not sample for sample, which is why the alignment compares two seeds per side.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import yaml
from torchvision import transforms as T
from torchvision.transforms import functional as TF

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))
from moco_reference import MoCoReference, build_encoder  # noqa: E402

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class RandomSigmaBlur:
    """MoCo v2's GaussianBlur(sigma in [0.1, 2.0]) as mocod applies it: a true Gaussian of that
    sigma, kernel 2*ceil(3*sigma)+1, reflect padding (F.gaussian_blur)."""

    def __call__(self, img):
        sigma = float(torch.empty(1).uniform_(0.1, 2.0))
        k = 2 * math.ceil(3 * sigma) + 1
        return TF.gaussian_blur(img, [k, k], [sigma, sigma])


def to_float_tensor():
    return [T.PILToTensor(), T.ConvertImageDtype(torch.float32)]


def pretrain_transform(size):
    """aug v2 (main_moco.py --aug-plus) on float tensors, the order mocod uses (flip last:
    it commutes with the colour ops)."""
    return T.Compose(to_float_tensor() + [
        T.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.RandomApply([RandomSigmaBlur()], p=0.5),
        T.RandomHorizontalFlip(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def eval_transform(size, resize):
    steps = to_float_tensor()
    if resize != size:
        steps.append(T.Resize(resize, antialias=True))
    steps += [T.CenterCrop(size), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return T.Compose(steps)


def lincls_train_transform(size):
    return T.Compose(to_float_tensor() + [
        T.RandomResizedCrop(size, antialias=True), T.RandomHorizontalFlip(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class TwoViews:
    def __init__(self, t):
        self.t = t

    def __call__(self, x):
        return self.t(x), self.t(x)


def load_recipe(path):
    """The mocod config's values, with the moco_v2 preset's defaults where the file is silent."""
    c = yaml.safe_load(open(path))
    m, mo, d, o = c["model"], c["moco"], c["data"], c["optim"]
    knn = c.get("eval", {}).get("knn", {})
    return dict(arch=m.get("arch", "resnet50"), cifar_stem=bool(m.get("cifar_stem", False)),
                mlp=bool(m.get("mlp", True)), dim=int(m.get("dim", 128)),
                K=int(mo["k"]), m=float(mo["m"]), T=float(mo.get("t", 0.2)),
                bn_splits=int(mo.get("bn_splits", 1)), size=int(d["image_size"]),
                val_resize=int(d.get("val_resize", round(d["image_size"] * 256 / 224))),
                lr=float(o["lr"]), momentum=float(o["momentum"]), wd=float(o["weight_decay"]),
                batch=int(o["batch_size"]), epochs=int(o["epochs"]),
                knn_k=int(knn.get("k", 200)), knn_t=float(knn.get("t", 0.1)))


def log_line(f, **kw):
    f.write(json.dumps(kw) + "\n")
    f.flush()


def pretrain(args):
    r = load_recipe(args.config)
    torch.manual_seed(args.seed)
    model = MoCoReference(r["arch"], r["dim"], r["K"], r["m"], r["T"], r["mlp"], r["cifar_stem"],
                          r["bn_splits"])
    opt = torch.optim.SGD(model.parameters(), r["lr"], momentum=r["momentum"],
                          weight_decay=r["wd"])
    data = torchvision.datasets.ImageFolder(args.train, TwoViews(pretrain_transform(r["size"])))
    loader = torch.utils.data.DataLoader(data, batch_size=r["batch"], shuffle=True,
                                         drop_last=True, num_workers=args.workers,
                                         persistent_workers=args.workers > 0)
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, "steps.jsonl"), "w")
    step, t0 = 0, time.time()
    for epoch in range(r["epochs"]):
        lr = r["lr"] * 0.5 * (1.0 + math.cos(math.pi * epoch / r["epochs"]))
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        for (im_q, im_k), _ in loader:
            perm = torch.randperm(im_k.shape[0])
            logits, labels, _, _ = model(im_q, im_k, perm)
            loss = F.cross_entropy(logits, labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            acc1 = (logits.argmax(1) == 0).float().mean().item() * 100
            log_line(log, step=step, epoch=epoch, loss=loss.item(), acc1=acc1, lr=lr,
                     elapsed=time.time() - t0)
            if step % 10 == 0:
                print(f"epoch {epoch + 1}/{r['epochs']} step {step} loss {loss.item():.4f} "
                      f"acc1 {acc1:.2f} {step * r['batch'] / (time.time() - t0):.1f} img/s",
                      file=sys.stderr, flush=True)
    state = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": r["epochs"], "arch": r["arch"], "state_dict": state,
                "optimizer": opt.state_dict()}, os.path.join(args.out, "checkpoint_final.pth.tar"))


def backbone(r, ckpt_path, num_classes=None):
    """torchvision ResNet (CIFAR stem as configured) holding encoder_q's backbone of an
    official-format checkpoint; fc is Identity (features) or a fresh Linear."""
    net = build_encoder(r["arch"], 10, False, r["cifar_stem"], 1)
    sd = torch.load(ckpt_path, map_location="cpu")["state_dict"]
    pre = "module.encoder_q."
    sd = {k[len(pre):]: v for k, v in sd.items() if k.startswith(pre) and not k[len(pre):].startswith("fc.")}
    feat = net.fc.in_features
    net.fc = nn.Identity() if num_classes is None else nn.Linear(feat, num_classes)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.startswith("fc.") for k in missing), (missing, unexpected)
    return net, sd


@torch.no_grad()
def features(net, folder, transform, batch=256):
    data = torchvision.datasets.ImageFolder(folder, transform)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=False, num_workers=0)
    net.eval()
    out, labels = [], []
    for x, y in loader:
        out.append(F.normalize(net(x), dim=1))
        labels.append(y)
    return torch.cat(out), torch.cat(labels), len(data.classes)


def knn_predict(feature, bank, bank_labels, classes, k, t):
    """The CIFAR-10 demo's knn_predict (bank given as [N, D] rows)."""
    sim = feature @ bank.T
    w, idx = sim.topk(k=min(k, bank.shape[0]), dim=-1)
    labels = torch.gather(bank_labels.expand(feature.shape[0], -1), -1, idx)
    w = (w / t).exp()
    one_hot = torch.zeros(feature.shape[0] * idx.shape[1], classes)
    one_hot = one_hot.scatter(-1, labels.reshape(-1, 1), 1.0)
    scores = (one_hot.view(feature.shape[0], -1, classes) * w.unsqueeze(-1)).sum(1)
    return scores.argsort(dim=-1, descending=True)


def knn(args):
    r = load_recipe(args.config)
    net, _ = backbone(r, args.ckpt)
    tf = eval_transform(r["size"], r["val_resize"])
    bank, bank_labels, classes = features(net, args.train, tf)
    q, q_labels, _ = features(net, args.val, tf)
    top1 = top5 = 0
    for i in range(0, q.shape[0], 500):
        pred = knn_predict(q[i:i + 500], bank, bank_labels, classes, r["knn_k"], r["knn_t"])
        hit = pred[:, :5] == q_labels[i:i + 500, None]
        top1 += hit[:, 0].sum().item()
        top5 += hit.any(1).sum().item()
    res = dict(eval="knn", top1=100.0 * top1 / q.shape[0], top5=100.0 * top5 / q.shape[0])
    print(json.dumps(res))
    if args.out:
        json.dump(res, open(args.out, "w"))


def lincls(args):
    r = load_recipe(args.config)
    torch.manual_seed(args.seed)
    classes = len(torchvision.datasets.ImageFolder(args.train).classes)
    net, pre = backbone(r, args.ckpt, classes)
    for name, p in net.named_parameters():
        p.requires_grad = name.startswith("fc.")
    net.fc.weight.data.normal_(mean=0.0, std=0.01)
    net.fc.bias.data.zero_()
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], args.lr,
                          momentum=0.9, weight_decay=0.0)
    train = torchvision.datasets.ImageFolder(args.train, lincls_train_transform(r["size"]))
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch, shuffle=True,
                                         num_workers=args.workers)
    val = torchvision.datasets.ImageFolder(args.val, eval_transform(r["size"], r["val_resize"]))
    val_loader = torch.utils.data.DataLoader(val, batch_size=256, shuffle=False)
    log = open(args.out, "w") if args.out else sys.stdout
    for epoch in range(args.epochs):
        lr = args.lr * 0.1 ** sum(epoch >= m for m in args.milestones)
        for g in opt.param_groups:
            g["lr"] = lr
        net.eval()  # main_lincls: BN keeps the pretrained statistics while fc trains
        for x, y in loader:
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch == 0:  # main_lincls.py's sanity_check: the backbone must not have moved
            sd = net.state_dict()
            for k, v in pre.items():
                assert torch.equal(sd[k], v), f"{k} changed in linear evaluation"
        n = top1 = top5 = 0
        val_loss = 0.0
        with torch.no_grad():
            for x, y in val_loader:
                out = net(x)
                val_loss += F.cross_entropy(out, y, reduction="sum").item()
                pred = out.topk(5, dim=1).indices
                top1 += (pred[:, 0] == y).sum().item()
                top5 += (pred == y[:, None]).any(1).sum().item()
                n += y.shape[0]
        log_line(log, eval="lincls", epoch=epoch + 1, lr=lr, top1=100.0 * top1 / n,
                 top5=100.0 * top5 / n, loss=val_loss / n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("pretrain", "knn", "lincls"):
        p = sub.add_parser(name)
        p.add_argument("--config", required=True, help="the mocod recipe (YAML)")
        p.add_argument("--train", required=True)
        p.add_argument("--val")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--workers", type=int, default=1)
        p.add_argument("--out", help="pretrain: output folder; knn/lincls: result file")
        if name != "pretrain":
            p.add_argument("--ckpt", required=True, help="official-format checkpoint")
        if name == "lincls":
            p.add_argument("--epochs", type=int, default=100)
            p.add_argument("--lr", type=float, default=30.0)
            p.add_argument("--batch", type=int, default=256)
            p.add_argument("--milestones", type=int, nargs="*", default=[60, 80])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    {"pretrain": pretrain, "knn": knn, "lincls": lincls}[args.cmd](args)


if __name__ == "__main__":
    main()
