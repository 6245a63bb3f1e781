#!/usr/bin/python3
"""feature_scale.py — how large a checkpoint's pooled backbone features are, to pick a stable
learning rate for the short linear evaluation of the accuracy alignment (docs/accuracy.md).

Prints the mean and max squared norm of the 512-d features of N augmented training images (the
lincls training transform) and the largest eigenvalue of E[f f^T]: plain softmax regression on
these features is stable for lr below about 2 / (c * that eigenvalue), where c, the largest
curvature of the softmax (the top eigenvalue of diag(p) - p p^T), lies between 1/4 (two classes
in play) and 1/2 (its bound for any number of classes) (heavy-ball momentum
0.9 allows up to ~2x more), which is how lr 0.05 was chosen over the official 30.

  tests/reference/feature_scale.py CKPT.pth.tar [--train DIR] [--config YAML] [--n 1000]
"""
import argparse
import os
import sys

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import moco_cifar_ref as R  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("ckpt", help="official-format checkpoint (moco_cifar_ref.py pretrain output)")
ap.add_argument("--train", default="runs/alignment/data/subset/train")
ap.add_argument("--config", default=os.path.join(HERE, "align_moco_v2_r18_cifar10.yaml"))
ap.add_argument("--n", type=int, default=1000)
a = ap.parse_args()
torch.set_num_threads(1)
r = R.load_recipe(a.config)
ds = torchvision.datasets.ImageFolder(a.train, R.lincls_train_transform(r["size"]))
net, _ = R.backbone(r, a.ckpt, len(ds.classes))
net.fc = torch.nn.Identity()
net.eval()
idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:a.n]
x = torch.stack([ds[int(i)][0] for i in idx])
with torch.no_grad():
    f = torch.cat([net(x[i:i + 250]) for i in range(0, len(x), 250)])
sq = (f * f).sum(1)
lam = torch.linalg.eigvalsh(f.T @ f / len(f))[-1]
print(f"mean ||f||^2 {sq.mean():.2f}  max {sq.max():.2f}  lambda_max(E f f^T) {lam:.2f}  "
      f"-> plain-SGD stable lr < {2 / (0.5 * lam):.3f} .. {2 / (0.25 * lam):.3f}")
