"""data_tools.py — helpers shared by the data-pipeline tests: where the C tools are, running
them, reading their raw outputs, and the real images shipped in the repository."""
import os
import subprocess

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, os.environ.get("MOCO_BUILD", "build"))
MINI = os.path.join(REPO, "datasets", "imagenette2-224-mini")


def tool(name):
    path = os.path.join(BUILD, "tests", "tools", name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: run `make {os.path.relpath(path, REPO)}`")
    return path


def run(name, *args, check=True):
    p = subprocess.run([tool(name)] + [str(a) for a in args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"{name} {args} failed: {p.stderr}")
    return p


def read_f32(path, h, w):
    return np.fromfile(path, dtype=np.float32).reshape(h, w, 3)


def mini_images(split="train", every=1):
    """Sorted paths of the shipped imagenette2-224-mini images (every n-th)."""
    out = []
    root = os.path.join(MINI, split)
    for cls in sorted(os.listdir(root)):
        for f in sorted(os.listdir(os.path.join(root, cls))):
            out.append(os.path.join(root, cls, f))
    return out[::every]
