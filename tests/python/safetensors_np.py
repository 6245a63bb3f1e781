"""safetensors_np.py — a small, strict safetensors reader and writer in struct + numpy.

Debian ships no python3-safetensors, so the Python tests use this instead. It follows the
reference implementation (huggingface/safetensors): the writer sorts tensors by element size
(largest first) then name, pads the JSON header with spaces so the data section starts 8-byte
aligned, and puts "__metadata__" first; the reader is as strict as the reference one (data
offsets must tile the data section exactly, without gaps or overlaps), so a file it accepts
also loads with the official `safetensors` package.

    tensors, metadata = load(path)        # {name: numpy array}, {str: str}
    save(path, {name: array}, metadata)   # arrays of float32/float64/int64/int32/uint8
    load_torch(path) / save_torch(path, state_dict, metadata)
"""
import json
import struct

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
NAMES = {np.dtype(v).str: k for k, v in DTYPES.items()}


def parse(raw):
    """Returns (header dict without metadata, metadata dict, data offset) after validation."""
    if len(raw) < 8:
        raise ValueError("file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError(f"header length {n} beyond the {len(raw)}-byte file")
    header_text = raw[8:8 + n].decode("utf-8")
    if not header_text.startswith("{"):
        raise ValueError("header does not start with '{'")
    header = json.loads(header_text)
    metadata = header.pop("__metadata__", {}) or {}
    if not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("__metadata__ values must be strings")
    data_len = len(raw) - 8 - n
    spans = []
    for name, entry in header.items():
        if entry["dtype"] not in DTYPES:
            raise ValueError(f"tensor {name}: unsupported dtype {entry['dtype']}")
        begin, end = entry["data_offsets"]
        count = int(np.prod(entry["shape"], dtype=np.int64))
        if count * np.dtype(DTYPES[entry["dtype"]]).itemsize != end - begin:
            raise ValueError(f"tensor {name}: shape does not match its byte span")
        spans.append((begin, end, name))
    spans.sort()
    cursor = 0
    for begin, end, name in spans:  # the reference demands an exact tiling of the data
        if begin != cursor:
            raise ValueError(f"tensor {name}: starts at {begin}, expected {cursor}")
        cursor = end
    if cursor != data_len:
        raise ValueError(f"tensors cover {cursor} bytes of a {data_len}-byte data section")
    return header, metadata, 8 + n


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    header, metadata, start = parse(raw)
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        arr = np.frombuffer(raw[start + begin:start + end], dtype=np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<"))
        tensors[name] = arr.reshape(entry["shape"]).astype(DTYPES[entry["dtype"]])
    return tensors, metadata


def encode(tensors, metadata=None, order=None):
    """The file's bytes. `order` (a list of names) overrides the reference data layout."""
    arrays = {k: np.asarray(v, order="C") for k, v in tensors.items()}  # keeps 0-d shapes
    for k, v in arrays.items():
        if v.dtype.newbyteorder("<").str not in NAMES:
            raise ValueError(f"tensor {k}: unsupported numpy dtype {v.dtype}")
    if order is None:
        order = sorted(arrays, key=lambda k: (-arrays[k].dtype.itemsize, k))
    header = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for k in order:
        v = arrays[k]
        header[k] = {"dtype": NAMES[v.dtype.newbyteorder("<").str], "shape": list(v.shape),
                     "data_offsets": [offset, offset + v.nbytes]}
        offset += v.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    body = b"".join(arrays[k].astype(arrays[k].dtype.newbyteorder("<")).tobytes() for k in order)
    return struct.pack("<Q", len(text)) + text + body


def save(path, tensors, metadata=None, order=None):
    with open(path, "wb") as f:
        f.write(encode(tensors, metadata, order))


def load_torch(path):
    import torch

    tensors, metadata = load(path)
    return {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, metadata


def save_torch(path, state_dict, metadata=None):
    save(path, {k: v.detach().cpu().contiguous().numpy() for k, v in state_dict.items()}, metadata)
