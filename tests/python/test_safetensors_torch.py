"""test_safetensors_torch.py — files written by the C writer load in Python (and PyTorch) with
the values C wrote, and files written by Python load in C with identical bytes.

Drives build/tests/tools/st_roundtrip (see tests/tools/st_roundtrip_main.c).
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_np as stnp  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, os.environ.get("MOCO_BUILD", "build"), "tests", "tools", "st_roundtrip")


def run(*args, check=True):
    p = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"st_roundtrip {' '.join(args)} failed: {p.stderr}")
    return p


def expected_fixed():
    """The tensors st_roundtrip write produces, recomputed here (keep in step with the tool)."""
    return {
        "u8": np.array([i * 40 for i in range(7)], dtype=np.uint8),
        "f32": (np.arange(15, dtype=np.float32) * np.float32(0.375) - np.float32(2.0)).reshape(3, 5),
        "i32": np.array([7, -8, 2147483647], dtype=np.int32),
        "i64": np.array([-5, 1 << 40], dtype=np.int64),
        "f64": (1.0 / (np.arange(6, dtype=np.float64) + 1)).reshape(1, 2, 3),
        "scalar": np.array(-0.5, dtype=np.float32),
        "empty": np.zeros((0,), dtype=np.float32),
    }


def test_c_file_reads_in_python(tmp_path):
    path = str(tmp_path / "c.safetensors")
    run("write", path)
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 8 == 0, "data section must start 8-byte aligned"
    header_text = raw[8:8 + n].decode()
    assert header_text.rstrip(" ") == header_text.strip(), "header is padded with spaces only"
    keys = list(json.loads(header_text))
    assert keys == ["__metadata__", "u8", "f32", "i32", "i64", "f64", "scalar", "empty"], \
        "header keys keep the order the tensors were added in"

    tensors, metadata = stnp.load(path)  # strict: offsets tile the data section exactly
    want = expected_fixed()
    assert set(tensors) == set(want)
    for name, arr in want.items():
        assert tensors[name].dtype == arr.dtype, name
        assert tensors[name].shape == arr.shape, name
        assert np.array_equal(tensors[name], arr), name
    assert metadata == {"format": "mocod-test", "note": 'café "quoted"'}

    as_torch, _ = stnp.load_torch(path)
    assert as_torch["i64"].dtype == torch.int64
    assert torch.equal(as_torch["f32"], torch.from_numpy(want["f32"]))


def test_python_file_reads_in_c(tmp_path):
    rng = np.random.default_rng(1)
    tensors = {
        "b": rng.integers(0, 256, size=(5,), dtype=np.uint8),
        "a": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "queue_ptr": np.array([12], dtype=np.int64),
        "d": rng.standard_normal((2, 7)),
        "i": rng.integers(-1000, 1000, size=(9,), dtype=np.int32),
        "s": np.array(3.5, dtype=np.float32),
        "z": np.zeros((3, 0), dtype=np.float32),
    }
    tensors["a"][0, 0, 0, 0] = np.inf  # raw bytes must pass untouched, specials included
    tensors["a"][0, 0, 0, 1] = -0.0
    # Two layouts: the reference one, and data placed in the reverse of the header order.
    for order in (None, list(reversed(list(tensors)))):
        path = str(tmp_path / "py.safetensors")
        stnp.save(path, tensors, {"config": '{"x": 1}'}, order=order)
        out = json.loads(run("dump", path).stdout)
        assert out["metadata"] == {"config": '{"x": 1}'}
        seen = {t["name"]: t for t in out["tensors"]}
        assert set(seen) == set(tensors)
        for name, arr in tensors.items():
            t = seen[name]
            assert t["dtype"] == stnp.NAMES[arr.dtype.str], name
            assert t["shape"] == list(arr.shape), name
            assert bytes.fromhex(t["hex"]) == arr.tobytes(), name


def test_torch_state_dict_survives_c_copy(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                                torch.nn.Linear(4, 2))
    model[1].running_mean.uniform_()
    model[1].num_batches_tracked.fill_(17)
    src, dst = str(tmp_path / "torch.safetensors"), str(tmp_path / "copy.safetensors")
    stnp.save_torch(src, model.state_dict(), {"arch": "test"})
    run("copy", src, dst)
    loaded, metadata = stnp.load_torch(dst)
    assert metadata == {"arch": "test"}
    fresh = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                                torch.nn.Linear(4, 2))
    fresh.load_state_dict(loaded, strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


@pytest.mark.parametrize("mutate, message", [
    (lambda raw: raw[:-3], "truncated"),
    (lambda raw: struct.pack("<Q", 1 << 40) + raw[8:], "header length"),
    (lambda raw: raw.replace(b'"F32"', b'"F16"', 1), "unsupported dtype"),
])
def test_c_rejects_broken_python_files(tmp_path, mutate, message):
    path = str(tmp_path / "bad.safetensors")
    raw = stnp.encode({"x": np.arange(6, dtype=np.float32)})
    with open(path, "wb") as f:
        f.write(mutate(raw))
    p = run("dump", path, check=False)
    assert p.returncode == 1
    assert path in p.stderr and message in p.stderr, p.stderr
