"""The augmentation pipelines of data/augment.c as a whole.

1. Replay: the C tool renders a view and prints every random decision it drew; torchvision's
   functional ops apply the same decisions in the official order (main_moco.py v1 / v2,
   eval Resize+CenterCrop, RandomResizedCrop+flip). Tolerance 1e-5 on normalized values: a
   chain of ops each within 1e-6 of torchvision, magnified by 1/std <= 4.5 in normalize.
2. Statistics of the decisions over thousands of independent streams: gate probabilities,
   factor ranges and means, the jitter order, and RandomResizedCrop boxes against torchvision's
   own get_params. Mean checks allow 5 standard errors (a false alarm about once in 3.5 million
   runs per check); range checks are exact.
"""
import math
import os

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

from data_tools import mini_images, read_f32, run

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
FIELDS = ("top left h w resize_h resize_w jitter o0 o1 o2 o3 b c s hue gray sigma flip").split()


def parse(line):
    vals = line.split()
    return {k: (float(v) if k in ("b", "c", "s", "hue", "sigma") else int(v))
            for k, v in zip(FIELDS, vals)}


def as_tensor(path):
    arr = np.asarray(Image.open(path).convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


def jitter(t, p):
    for op in (p["o0"], p["o1"], p["o2"], p["o3"]):
        if op == 0:
            t = F.adjust_brightness(t, p["b"])
        elif op == 1:
            t = F.adjust_contrast(t, p["c"])
        elif op == 2:
            t = F.adjust_saturation(t, p["s"])
        else:
            t = F.adjust_hue(t, p["hue"])
    return t


def reference_view(path, kind, size, p):
    t = as_tensor(path)
    if kind == "eval":
        resize_to = round(size * 256 / 224)
        t = F.resize(t, resize_to, interpolation=InterpolationMode.BILINEAR, antialias=True)
        assert (p["resize_h"], p["resize_w"]) == tuple(t.shape[1:])
        t = F.center_crop(t, size)
    else:
        t = F.resized_crop(t, p["top"], p["left"], p["h"], p["w"], [size, size],
                           interpolation=InterpolationMode.BILINEAR, antialias=True)
    if kind == "v1":
        if p["gray"]:
            t = F.rgb_to_grayscale(t, 3)
        t = jitter(t, p)
    elif kind == "v2":
        if p["jitter"]:
            t = jitter(t, p)
        if p["gray"]:
            t = F.rgb_to_grayscale(t, 3)
        if p["sigma"] > 0:
            k = 2 * math.ceil(3 * np.float32(p["sigma"])) + 1
            t = F.gaussian_blur(t, [k, k], [p["sigma"], p["sigma"]])
    if p["flip"]:
        t = F.hflip(t)
    return F.normalize(t, MEAN, STD)


@pytest.fixture(scope="module")
def non_square(tmp_path_factory):
    """A real photo cut to 150x224 (portrait) and 224x97 (wide), saved losslessly."""
    src = Image.open(mini_images()[3]).convert("RGB")
    d = tmp_path_factory.mktemp("ns")
    paths = []
    for name, box in (("tall.png", (40, 0, 190, 224)), ("wide.png", (0, 60, 224, 157))):
        path = str(d / name)
        src.crop(box).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("kind,size", [("v2", 224), ("v2", 96), ("v1", 224), ("eval", 224),
                                       ("eval", 64), ("cropflip", 112)])
def test_view_replays_in_torchvision(tmp_path, non_square, kind, size):
    images = mini_images(every=29) + non_square
    for i, path in enumerate(images):
        for sample in range(3):
            out = str(tmp_path / "v.bin")
            line = run("augment_tool", "view", kind, size, path, out, 7, 1, 10 * i + sample,
                       0).stdout
            p = parse(line)
            got = torch.from_numpy(read_f32(out, size, size).copy()).permute(2, 0, 1)
            want = reference_view(path, kind, size, p)
            assert float((got - want).abs().max()) <= 1e-5, (path, p)


def draws(kind, size, ih, iw, count, seed=3):
    out = run("augment_tool", "params", kind, size, ih, iw, seed, count).stdout
    return [parse(line) for line in out.splitlines()]


def near(mean, expect, se):
    return abs(mean - expect) <= 5 * se


def check_rate(values, p):
    n = len(values)
    assert near(np.mean(values), p, math.sqrt(p * (1 - p) / n)), (np.mean(values), p)


def check_uniform(values, lo, hi):
    v = np.asarray(values)
    assert v.min() >= lo and v.max() <= hi, (v.min(), v.max(), lo, hi)
    se = (hi - lo) / math.sqrt(12 * len(v))
    assert near(v.mean(), (lo + hi) / 2, se)
    # both ends actually reached: nothing squeezed into a narrower range
    assert v.min() < lo + 0.01 * (hi - lo) and v.max() > hi - 0.01 * (hi - lo)


def test_v2_decision_statistics():
    d = draws("v2", 224, 224, 224, 20000)
    check_rate([p["jitter"] for p in d], 0.8)
    check_rate([p["gray"] for p in d], 0.2)
    check_rate([p["sigma"] > 0 for p in d], 0.5)
    check_rate([p["flip"] for p in d], 0.5)
    jit = [p for p in d if p["jitter"]]
    for key in ("b", "c", "s"):
        check_uniform([p[key] for p in jit], 0.6, 1.4)
    check_uniform([p["hue"] for p in jit], -0.1, 0.1)
    check_uniform([p["sigma"] for p in d if p["sigma"] > 0], 0.1, 2.0)
    # order: a permutation, each of the 24 equally likely (chi-square, 23 dof; 60 is p~3e-5)
    counts = {}
    for p in jit:
        order = (p["o0"], p["o1"], p["o2"], p["o3"])
        assert sorted(order) == [0, 1, 2, 3]
        counts[order] = counts.get(order, 0) + 1
    assert len(counts) == 24
    expect = len(jit) / 24
    assert sum((c - expect) ** 2 / expect for c in counts.values()) < 60


def test_v1_decision_statistics():
    d = draws("v1", 224, 224, 224, 10000)
    assert all(p["jitter"] for p in d) and all(p["sigma"] == 0 for p in d)
    check_rate([p["gray"] for p in d], 0.2)
    check_rate([p["flip"] for p in d], 0.5)
    check_uniform([p["hue"] for p in d], -0.4, 0.4)
    check_uniform([p["s"] for p in d], 0.6, 1.4)


def torch_rrc_boxes(ih, iw, scale, count):
    torch.manual_seed(0)
    img = torch.zeros(1, ih, iw)
    return [T.RandomResizedCrop.get_params(img, scale, (3 / 4, 4 / 3)) for _ in range(count)]


@pytest.mark.parametrize("kind,scale,ih,iw", [("v2", (0.2, 1.0), 224, 224),
                                              ("cropflip", (0.08, 1.0), 224, 224),
                                              ("v2", (0.2, 1.0), 150, 224),
                                              ("v2", (0.2, 1.0), 12, 300)])
def test_crop_boxes_match_torchvision_distribution(kind, scale, ih, iw):
    ours = draws(kind, 64, ih, iw, 8000)
    theirs = torch_rrc_boxes(ih, iw, scale, 4000)
    a = np.array([(p["top"], p["left"], p["h"], p["w"]) for p in ours], dtype=np.float64)
    b = np.array(theirs, dtype=np.float64)
    for arr in (a, b):  # every box inside the image
        assert (arr[:, 0] >= 0).all() and (arr[:, 1] >= 0).all()
        assert (arr[:, 0] + arr[:, 2] <= ih).all() and (arr[:, 1] + arr[:, 3] <= iw).all()
    stats = {
        "area": lambda x: x[:, 2] * x[:, 3] / (ih * iw),
        "log_ratio": lambda x: np.log(x[:, 3] / x[:, 2]),
        "center_y": lambda x: (x[:, 0] + x[:, 2] / 2) / ih,
        "center_x": lambda x: (x[:, 1] + x[:, 3] / 2) / iw,
        "fallback": lambda x: (x[:, 2] * x[:, 3] == x[:, 2].max() * x[:, 3].max()) * 1.0,
    }
    for name, f in stats.items():
        x, y = f(a), f(b)
        se = math.sqrt(x.var() / len(x) + y.var() / len(y)) + 1e-12
        assert abs(x.mean() - y.mean()) <= 5 * se, (name, x.mean(), y.mean(), se)
    if ih == 12:  # mostly the fallback: full height, width round(12 * 4/3) = 16, centred
        assert (ih, 16, (iw - 16) // 2) in {(int(p["h"]), int(p["w"]), int(p["left"])) for p in ours}


def test_eval_has_no_randomness():
    d = draws("eval", 224, 300, 400, 5)
    assert all(p == d[0] for p in d)
    assert (d[0]["resize_h"], d[0]["resize_w"]) == (256, 341)  # int(256 * 400 / 300)
    assert (d[0]["top"], d[0]["left"]) == (16, 58)            # round(32 / 2), round(117 / 2)
