#!/usr/bin/python3
"""data_bench.py — data pipeline throughput: moco-train's C loader path (decode + two MoCo v2
views) against torchvision + PIL running the official main_moco.py --aug-plus pipeline
(TwoCropsTransform, moco.loader.GaussianBlur on PIL), on the same images, one thread each,
measured in the same run. Rates are per CPU-second of each single-threaded side (process
CPU time), so other jobs on a shared machine distort them little. Prints both and their ratio.

    /usr/bin/python3 bench/data_bench.py [--root DIR] [--n N]

DIR defaults to /tmp/imagenette2-224/train, unpacked from ../shared/datasets/imagenette2-224/
train-1.tar.gz when missing. Build first: make build/bin/data_bench.
"""
import argparse
import os
import random
import subprocess
import tarfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHELF = os.path.join(REPO, "..", "shared", "datasets", "imagenette2-224", "train-1.tar.gz")


def ensure_data(root):
    if os.path.isdir(root):
        return
    if root != "/tmp/imagenette2-224/train" or not os.path.exists(SHELF):
        raise SystemExit(f"no image folder at {root}")
    with tarfile.open(SHELF) as t:
        t.extractall("/tmp")


def torchvision_rate(root, n):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    import torchvision.datasets as datasets
    import torchvision.transforms as transforms
    from PIL import ImageFilter

    torch.set_num_threads(1)

    class GaussianBlur:  # moco/loader.py
        def __init__(self, sigma=(0.1, 2.0)):
            self.sigma = sigma

        def __call__(self, x):
            sigma = random.uniform(self.sigma[0], self.sigma[1])
            return x.filter(ImageFilter.GaussianBlur(radius=sigma))

    class TwoCropsTransform:  # moco/loader.py
        def __init__(self, base_transform):
            self.base_transform = base_transform

        def __call__(self, x):
            return [self.base_transform(x), self.base_transform(x)]

    normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    augmentation = [  # main_moco.py, args.aug_plus
        transforms.RandomResizedCrop(224, scale=(0.2, 1.0)),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.RandomApply([GaussianBlur([0.1, 2.0])], p=0.5),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        normalize,
    ]
    ds = datasets.ImageFolder(root, TwoCropsTransform(transforms.Compose(augmentation)))
    torch.manual_seed(0)
    random.seed(0)
    t0 = time.process_time()
    for i in range(n):
        views, _ = ds[i]
    return n / (time.process_time() - t0)


def c_rate(root, n, build):
    exe = os.path.join(REPO, build, "bin", "data_bench")
    out = subprocess.run([exe, root, str(n)], check=True, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1")).stdout
    return float(out.strip().splitlines()[-1].split()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default="/tmp/imagenette2-224/train")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--build", default=os.environ.get("MOCO_BUILD", "build"))
    args = ap.parse_args()
    ensure_data(args.root)
    c_rate(args.root, 20, args.build)  # warm the page cache for both
    ours = c_rate(args.root, args.n, args.build)
    theirs = torchvision_rate(args.root, args.n)
    print(f"data pipeline, MoCo v2 two-view samples per CPU-second, 1 thread each, {args.n} images of {args.root}")
    print(f"  moco-train (libjpeg-turbo + C augment): {ours:9.1f}")
    print(f"  torchvision + PIL (main_moco.py):       {theirs:9.1f}")
    print(f"ratio: {ours / theirs:.2f}x (target >= 4x)")


if __name__ == "__main__":
    main()
