#!/usr/bin/python3
"""convert_checkpoint.py — converts checkpoints between PyTorch MoCo (facebookresearch/moco)
and mocod's safetensors files (DESIGN §4).

    convert_checkpoint.py from-torch IN.pth.tar OUT.safetensors [--force] [--allow-pickle]
    convert_checkpoint.py to-torch   IN.safetensors OUT.pth.tar [--force]

from-torch reads an official MoCo checkpoint (torch.save of {'epoch', 'arch', 'state_dict',
'optimizer'}, keys `module.encoder_q.*` or `encoder_q.*`), a bare state_dict of that kind, or
a plain torchvision ResNet state_dict (`conv1.weight`, or `module.conv1.weight` as main_lincls
saves it), and writes a mocod backbone file: metadata format "mocod-backbone", the encoder's
torchvision names without prefix, the head (`fc.*`) dropped, float32 parameters and BN buffers,
`num_batches_tracked` int64 []. A BatchNorm without `num_batches_tracked` (files from PyTorch
before 0.4.1) gets it as 0, with a note: mocod needs the full torchvision tensor set, and the
counter only matters for BatchNorm's momentum=None mode, which neither MoCo nor mocod uses.
fp16/bf16/fp64 tensors are converted to float32, with a note. The input is untrusted: only
tensors and plain containers are unpickled — torch.load(weights_only=True) on PyTorch 2 and
later; on 1.x (Debian 12 ships 1.13, whose weights-only loader cannot read the floats in an
optimizer's state) torch's own readers with an unpickler restricted to an allowlist. A
TorchScript archive is refused. --allow-pickle lifts the restriction for a file you trust that
holds other objects (an argparse.Namespace, say).

to-torch reads a mocod checkpoint ("mocod-checkpoint"), backbone ("mocod-backbone") or linear
classifier checkpoint ("mocod-lincls") and writes, with torch.save:
    checkpoint, backbone: {'epoch', 'arch', 'state_dict': {'module.encoder_q.<name>': …},
                           'mocod_metadata': {…}} — the backbone only, no head, so that the
                           official detectron2 conversion script and torchvision's resnet
                           (after stripping the prefix, strict=False: only fc.* missing) take it;
    lincls:               {'epoch', 'arch', 'state_dict': {'module.<name>': …} incl. fc.*,
                           'best_acc1', 'mocod_metadata': {…}}, as main_lincls.py saves.
Tensors pass bit-identical (same dtype, same bytes). Optimizer state (optim.*), the other
encoder and the queue are not carried over: a PyTorch optimizer state_dict indexes parameters
by position in a model this file does not describe.

Both directions refuse to replace an existing output unless --force, and write atomically
(a temporary file in the output's folder, fsync, rename). Errors go to stderr as
"convert_checkpoint: error: …" with exit status 1 (2 for usage errors).
"""
import argparse
import collections
import inspect
import json
import os
import struct
import sys
import tempfile

PROG = "convert_checkpoint"
FORMAT_VERSION = "1"
ARCHS = {  # blocks per layer, bottleneck
    "resnet18": ((2, 2, 2, 2), False),
    "resnet34": ((3, 4, 6, 3), False),
    "resnet50": ((3, 4, 6, 3), True),
}
BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
BACKBONE_ROOTS = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")


class ConvertError(Exception):
    """A problem with the input or output, reported to the user as one message."""


def note(msg):
    print(f"{PROG}: note: {msg}", file=sys.stderr)


# ---- the torchvision ResNet tensor set ---------------------------------------------------------

def expected_backbone(arch, cifar_stem):
    """{name: shape} of torchvision's resnet<arch> without fc.*, in torchvision's order."""
    blocks, bottleneck = ARCHS[arch]
    exp = 4 if bottleneck else 1
    out = collections.OrderedDict()

    def conv(name, o, i, k):
        out[name + ".weight"] = (o, i, k, k)

    def bn(name, c):
        for s in BN_SUFFIXES:
            out[f"{name}.{s}"] = () if s == "num_batches_tracked" else (c,)

    conv("conv1", 64, 3, 3 if cifar_stem else 7)
    bn("bn1", 64)
    inplanes = 64
    for li, (n, planes) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        for b in range(n):
            p = f"layer{li}.{b}"
            stride = 2 if (li > 1 and b == 0) else 1
            if bottleneck:
                conv(p + ".conv1", planes, inplanes, 1)
                bn(p + ".bn1", planes)
                conv(p + ".conv2", planes, planes, 3)
                bn(p + ".bn2", planes)
                conv(p + ".conv3", planes * exp, planes, 1)
                bn(p + ".bn3", planes * exp)
            else:
                conv(p + ".conv1", planes, inplanes, 3)
                bn(p + ".bn1", planes)
                conv(p + ".conv2", planes, planes, 3)
                bn(p + ".bn2", planes)
            if b == 0 and (stride != 1 or inplanes != planes * exp):
                conv(p + ".downsample.0", planes * exp, inplanes, 1)
                bn(p + ".downsample.1", planes * exp)
            inplanes = planes * exp
    return out


def infer_arch(names):
    """The arch whose block counts and block kind match the names, or a ConvertError."""
    counts = []
    for li in range(1, 5):
        idx = set()
        for n in names:
            parts = n.split(".")
            if parts[0] == f"layer{li}" and len(parts) > 1 and parts[1].isdigit():
                idx.add(int(parts[1]))
        counts.append(max(idx) + 1 if idx else 0)
    bottleneck = "layer1.0.conv3.weight" in names
    for arch, (blocks, bn) in ARCHS.items():
        if tuple(counts) == blocks and bn == bottleneck:
            return arch
    kind = "bottleneck" if bottleneck else "basic"
    raise ConvertError(f"unknown arch: {kind} blocks per layer {counts} match none of "
                       f"{', '.join(f'{a} {list(b)}' for a, (b, _) in ARCHS.items())} "
                       f"(only resnet50 has bottleneck blocks)")


def check_arch(arch):
    if arch not in ARCHS:
        raise ConvertError(f"unknown arch {arch!r}: mocod supports {', '.join(ARCHS)}")


def check_tensor_set(shapes, arch, cifar_stem, what, extra_ok=()):
    """Raises unless `shapes` ({name: shape}) is exactly the backbone of arch (plus extra_ok)."""
    want = expected_backbone(arch, cifar_stem)
    missing = [n for n in want if n not in shapes]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ConvertError(f"{what}: {len(missing)} tensors of {arch} are missing: "
                           f"{', '.join(missing[:5])}{more}")
    unexpected = [n for n in shapes if n not in want and n not in extra_ok]
    if unexpected:
        raise ConvertError(f"{what}: tensors that {arch} does not have: {', '.join(sorted(unexpected)[:5])}")
    for n, shape in want.items():
        if tuple(shapes[n]) != shape:
            raise ConvertError(f"{what}: {n} has shape {list(shapes[n])}, {arch} needs {list(shape)}")
    return want


# ---- safetensors ---------------------------------------------------------------------------------

ST_DTYPES = {  # safetensors name -> (numpy dtype string, element size); the dtypes torch has
    "F64": ("<f8", 8), "I64": ("<i8", 8),
    "F32": ("<f4", 4), "I32": ("<i4", 4),
    "F16": ("<f2", 2), "BF16": ("<i2", 2), "I16": ("<i2", 2),  # BF16: its bits, as int16
    "I8": ("|i1", 1), "U8": ("|u1", 1), "BOOL": ("|b1", 1),
}


def read_safetensors(path):
    """({name: numpy array}, {metadata}, {name: safetensors dtype}); arrays keep the file's
    dtype (BF16 as its uint16 bits)."""
    import numpy as np

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConvertError(f"cannot read {path}: {e.strerror}")
    bad = f"{path} is not a safetensors file"
    if len(raw) < 8:
        raise ConvertError(f"{bad}: {len(raw)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ConvertError(f"{bad}: header length {n} runs past the end of the {len(raw)}-byte file")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ConvertError(f"{bad}: the header is not JSON ({e})")
    if not isinstance(header, dict):
        raise ConvertError(f"{bad}: the header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ConvertError(f"{bad}: __metadata__ must map names to strings")
    data = memoryview(raw)[8 + n:]
    tensors, dtypes = {}, {}
    for name, e in header.items():
        if isinstance(e, dict) and e.get("dtype") not in ST_DTYPES and isinstance(e.get("dtype"), str):
            raise ConvertError(f"{path}: tensor {name!r} has dtype {e['dtype']}, which this tool "
                               f"does not read ({', '.join(ST_DTYPES)})")
        try:
            dt, size = ST_DTYPES[e["dtype"]]
            shape = [int(d) for d in e["shape"]]
            begin, end = (int(x) for x in e["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ConvertError(f"{bad}: tensor {name!r} has a bad entry {json.dumps(e)[:200]}")
        count = 1
        for d in shape:
            if d < 0:
                raise ConvertError(f"{bad}: tensor {name!r} has a negative dimension")
            count *= d
        if not 0 <= begin <= end <= len(data) or end - begin != count * size:
            raise ConvertError(f"{bad}: tensor {name!r} has data offsets [{begin}, {end}] that do not "
                               f"fit its shape {shape} or the {len(data)}-byte data section")
        tensors[name] = np.frombuffer(data[begin:end], dtype=dt).reshape(shape)
        dtypes[name] = e["dtype"]
    return tensors, meta, dtypes


def encode_safetensors(tensors, meta):
    """The bytes of a safetensors file, laid out as mocod's writer does: metadata first, 8-byte
    dtypes before 4-byte ones (every tensor aligned to its element size), header padded with
    spaces to a multiple of 8."""
    names = {"<f4": "F32", "<i8": "I64"}
    header = {"__metadata__": dict(meta)}
    order = sorted(tensors, key=lambda k: -tensors[k].dtype.itemsize)  # stable: keeps our order
    offset = 0
    for k in order:
        a = tensors[k]
        header[k] = {"dtype": names[a.dtype.str], "shape": list(a.shape),
                     "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return b"".join([struct.pack("<Q", len(text)), text] + [tensors[k].tobytes() for k in order])


# ---- output ----------------------------------------------------------------------------------------

def check_output(path, force, inp):
    if os.path.abspath(path) == os.path.abspath(inp):
        raise ConvertError(f"output {path} is the input file")
    if os.path.lexists(path) and not force:
        raise ConvertError(f"output {path} already exists (use --force to replace it)")
    if os.path.isdir(path):
        raise ConvertError(f"output {path} is a folder")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConvertError(f"output folder {folder} does not exist")


def write_atomic(path, write):
    """Calls write(file object) on a temporary file beside path, then renames it over path."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".tmp.", dir=folder)
    except OSError as e:
        raise ConvertError(f"cannot write in {folder}: {e.strerror}")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConvertError(f"cannot write {path}: {e.strerror or e}")
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the rename is done


def import_torch():
    try:
        import torch
    except ImportError:
        raise ConvertError("PyTorch is needed: install python3-torch (Debian) and run with /usr/bin/python3")
    return torch


# ---- from-torch ------------------------------------------------------------------------------------

PREFIXES = ("module.encoder_q.", "encoder_q.", "module.", "")


def restricted_pickle_module(torch):
    """A stand-in for the pickle module whose unpickler builds only tensors and plain containers:
    find_class resolves an allowlist (torch's tensor-rebuild functions, storage and dtype types,
    OrderedDict) and refuses everything else, as the Python docs' "Restricting Globals" shows.
    Used before PyTorch 2 (see load_torch_file)."""
    import pickle
    import types

    allowed = {("collections", "OrderedDict"): collections.OrderedDict, ("torch", "Size"): torch.Size}
    for fn in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter"):
        if hasattr(torch._utils, fn):
            allowed[("torch._utils", fn)] = getattr(torch._utils, fn)
    for cls in getattr(torch, "_storage_classes", ()):
        allowed[(cls.__module__, cls.__name__)] = cls
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            allowed[("torch", name)] = getattr(torch, name)

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) in allowed:
                return allowed[(module, name)]
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only tensors and plain "
                                         "containers are read from an untrusted file")

    def load(f, **kwargs):
        return Unpickler(f, **kwargs).load()

    return types.SimpleNamespace(__name__="convert_checkpoint_restricted_pickle",
                                 Unpickler=Unpickler, load=load)


def load_torch_file(torch, path, allow_pickle):
    """torch.load(path) on the CPU. Unless allow_pickle, only tensors and plain containers are
    built: weights_only=True on PyTorch 2 and later; before that torch.load ignores a
    pickle_module unless weights_only, and 1.13's weights-only unpickler cannot read the floats
    of an optimizer's state, so the file goes through torch's own zip/legacy readers with the
    restricted unpickler."""
    if not os.path.isfile(path):
        raise ConvertError(f"input {path} does not exist or is not a file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04" and magic[:1] != b"\x80":
        raise ConvertError(f"{path} is not a PyTorch checkpoint: neither a zip archive (torch.save "
                           "since 1.6) nor a pickle (the legacy format)")
    weights_only_ok = "weights_only" in inspect.signature(torch.load).parameters
    major = int(torch.__version__.split(".")[0])
    try:
        if allow_pickle:
            return torch.load(path, map_location="cpu", **({"weights_only": False} if weights_only_ok else {}))
        if weights_only_ok and major >= 2:
            return torch.load(path, map_location="cpu", weights_only=True)
        ser = torch.serialization
        restricted = restricted_pickle_module(torch)
        with open(path, "rb") as f:
            if magic == b"PK\x03\x04":
                with ser._open_zipfile_reader(f) as zf:
                    if ser._is_torchscript_zip(zf):
                        raise ConvertError(f"{path} is a TorchScript archive, not a checkpoint")
                    return ser._load(zf, "cpu", restricted, encoding="utf-8")
            return ser._legacy_load(f, "cpu", restricted, encoding="utf-8")
    except ConvertError:
        raise
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, …
        text = str(e).strip()
        msg = text.splitlines()[0] if text else type(e).__name__
        hint = ""
        if not allow_pickle and ("refused to load" in text or "weights only" in text.lower()):
            hint = " (--allow-pickle loads it if you trust the file)"
        raise ConvertError(f"cannot load {path} with torch.load: {msg}{hint}")


def find_state_dict(torch, obj, path):
    if isinstance(obj, dict) and "state_dict" in obj:
        sd = obj["state_dict"]
        if not isinstance(sd, dict):
            raise ConvertError(f"{path}: 'state_dict' is a {type(sd).__name__}, not a dict")
        return sd, obj
    if isinstance(obj, dict) and any(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {}
    if isinstance(obj, dict):
        keys = ", ".join(repr(k) for k in list(obj)[:8])
        raise ConvertError(f"{path}: no 'state_dict' and no tensors; its keys: {keys or '(none)'}")
    raise ConvertError(f"{path}: holds a {type(obj).__name__}, not a checkpoint dict")


def from_torch(args):
    torch = import_torch()
    check_output(args.output, args.force, args.input)
    obj = load_torch_file(torch, args.input, args.allow_pickle)
    sd, outer = find_state_dict(torch, obj, args.input)

    prefix = next((p for p in PREFIXES if p + "conv1.weight" in sd), None)
    if prefix is None:
        found = ", ".join(repr(k) for k in list(sd)[:6]) or "(none)"
        raise ConvertError(f"{args.input}: no recognizable ResNet backbone keys; found {len(sd)} keys "
                           f"such as {found}; expected 'module.encoder_q.conv1.weight', "
                           "'encoder_q.conv1.weight', 'module.conv1.weight' or 'conv1.weight' "
                           "with the layer1-4 blocks beside it")
    backbone = collections.OrderedDict()
    head, ignored = [], []
    for k, v in sd.items():
        if not isinstance(k, str) or not k.startswith(prefix):
            continue
        name = k[len(prefix):]
        if name.startswith("fc."):
            head.append(name)
        elif not name.startswith(BACKBONE_ROOTS):
            ignored.append(k)
        else:
            if not isinstance(v, torch.Tensor):
                raise ConvertError(f"{args.input}: {k} is a {type(v).__name__}, not a tensor")
            backbone[name] = v
    src = f"{args.input} ({prefix or 'no prefix'}*)"
    if ignored:
        note(f"ignored {len(ignored)} keys that are not ResNet backbone tensors: "
             f"{', '.join(ignored[:4])}{' …' if len(ignored) > 4 else ''}")

    arch = outer.get("arch") if isinstance(outer, dict) else None
    if arch is not None:
        if not isinstance(arch, str):
            raise ConvertError(f"{args.input}: 'arch' is {arch!r}, not a name")
        check_arch(arch)
    inferred = infer_arch(backbone)
    if arch is not None:
        if arch != inferred:
            raise ConvertError(f"{args.input}: 'arch' says {arch} but the tensors are those of {inferred}")
    else:
        arch = inferred
    cifar_stem = tuple(backbone["conv1.weight"].shape) == (64, 3, 3, 3)

    missing_nbt = [n for n in expected_backbone(arch, cifar_stem)
                   if n.endswith(".num_batches_tracked") and n not in backbone]
    for n in missing_nbt:
        backbone[n] = torch.zeros((), dtype=torch.int64)
    if missing_nbt:
        note(f"{len(missing_nbt)} BatchNorm layers have no num_batches_tracked; written as 0")
    want = check_tensor_set({k: tuple(v.shape) for k, v in backbone.items()}, arch, cifar_stem, src)

    arrays = collections.OrderedDict()
    converted = set()
    for name in want:  # torchvision's order
        t = backbone[name].detach().cpu()
        if name.endswith(".num_batches_tracked"):
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise ConvertError(f"{src}: {name} is {t.dtype}, not an integer")
            t = t.to(torch.int64).reshape(())
        elif t.dtype != torch.float32:
            if not t.is_floating_point():
                raise ConvertError(f"{src}: {name} is {t.dtype}, not a floating-point tensor")
            converted.add(str(t.dtype).replace("torch.", ""))
            t = t.to(torch.float32)
        arrays[name] = t.contiguous().numpy()
    if converted:
        note(f"converted {', '.join(sorted(converted))} tensors to float32")
    meta = {"format": "mocod-backbone", "format_version": FORMAT_VERSION, "arch": arch,
            "cifar_stem": "1" if cifar_stem else "0", "source": "torch",
            "source_file": os.path.basename(args.input)}
    epoch = outer.get("epoch") if isinstance(outer, dict) else None
    if isinstance(epoch, int) and not isinstance(epoch, bool):
        meta["epoch"] = str(epoch)
    data = encode_safetensors(arrays, meta)
    write_atomic(args.output, lambda f: f.write(data))
    dropped = f", head dropped ({', '.join(head)})" if head else ""
    print(f"{PROG}: wrote {args.output}: {arch}{' (CIFAR stem)' if cifar_stem else ''} backbone, "
          f"{len(arrays)} tensors from {prefix or 'unprefixed'}* keys{dropped}", file=sys.stderr)


# ---- to-torch --------------------------------------------------------------------------------------

def to_torch(args):
    torch = import_torch()
    check_output(args.output, args.force, args.input)
    if not os.path.isfile(args.input):
        raise ConvertError(f"input {args.input} does not exist or is not a file")
    tensors, meta, dtypes = read_safetensors(args.input)
    fmt = meta.get("format")
    if fmt == "mocod-checkpoint":
        names = {k[len("encoder_q."):]: k for k in tensors
                 if k.startswith("encoder_q.") and not k.startswith("encoder_q.fc.")}
        out_prefix, keep_head = "module.encoder_q.", False
    elif fmt == "mocod-backbone":
        names = {k: k for k in tensors if not k.startswith("fc.")}
        out_prefix, keep_head = "module.encoder_q.", False
    elif fmt == "mocod-lincls":
        names = {k: k for k in tensors if not k.startswith("optim.")}
        out_prefix, keep_head = "module.", True
    elif fmt is None:
        raise ConvertError(f"{args.input} has no 'format' in its metadata: not a mocod checkpoint, "
                           "backbone or lincls file")
    else:
        raise ConvertError(f"{args.input} has format {fmt!r}; expected mocod-checkpoint, "
                           "mocod-backbone or mocod-lincls")
    if "conv1.weight" not in names:
        raise ConvertError(f"{args.input} ({fmt}) holds no {'encoder_q.' if fmt == 'mocod-checkpoint' else ''}"
                           "conv1.weight: no backbone to convert")
    arch = meta.get("arch")
    if arch is not None:
        check_arch(arch)
    inferred = infer_arch(names)
    if arch is None:
        arch = inferred
    else:
        if arch != inferred:
            raise ConvertError(f"{args.input}: metadata arch {arch} but the tensors are those of {inferred}")
    cifar_stem = tuple(tensors[names["conv1.weight"]].shape) == (64, 3, 3, 3)
    shapes = {n: tensors[k].shape for n, k in names.items()}
    extra = ("fc.weight", "fc.bias") if keep_head else ()
    want = list(check_tensor_set(shapes, arch, cifar_stem, f"{args.input} ({fmt})", extra))
    if keep_head:
        want += [n for n in extra if n in names]

    sd = collections.OrderedDict()
    for n in want:
        t = torch.from_numpy(tensors[names[n]].copy())
        if dtypes[names[n]] == "BF16":
            t = t.view(torch.bfloat16)
        sd[out_prefix + n] = t
    try:
        epoch = int(meta.get("epoch", "0"))
    except ValueError:
        epoch = 0
    obj = {"epoch": epoch, "arch": arch, "state_dict": sd, "mocod_metadata": dict(meta)}
    if keep_head and "best_top1" in meta:  # main_lincls.py saves it as best_acc1
        try:
            obj["best_acc1"] = float(meta["best_top1"])
        except ValueError:
            pass
    write_atomic(args.output, lambda f: torch.save(obj, f))
    print(f"{PROG}: wrote {args.output}: {arch} from {fmt}, {len(sd)} tensors as {out_prefix}*",
          file=sys.stderr)


# ---- command line ----------------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(
        prog=PROG, description="Convert MoCo checkpoints between PyTorch (.pth.tar) and mocod (safetensors).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    a = sub.add_parser("from-torch", help="official MoCo / torchvision checkpoint -> mocod backbone file")
    a.add_argument("input", metavar="IN.pth.tar")
    a.add_argument("output", metavar="OUT.safetensors")
    a.add_argument("--force", action="store_true", help="replace OUT if it exists")
    a.add_argument("--allow-pickle", action="store_true",
                   help="load IN with full unpickling (runs code in the file: only for files you trust)")
    b = sub.add_parser("to-torch", help="mocod checkpoint / backbone / lincls file -> PyTorch .pth.tar")
    b.add_argument("input", metavar="IN.safetensors")
    b.add_argument("output", metavar="OUT.pth.tar")
    b.add_argument("--force", action="store_true", help="replace OUT if it exists")
    args = p.parse_args(argv)
    try:
        (from_torch if args.command == "from-torch" else to_torch)(args)
    except ConvertError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
