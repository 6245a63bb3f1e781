#!/usr/bin/python3
"""moco_step_vs_torch.py — MoCo training-step speed and peak memory: moco-train against PyTorch.

Both sides run the same full MoCo v2 step (query forward and backward, momentum update, key
forward with shuffle, InfoNCE over 1+K, enqueue, SGD) on the same model, batch, image size and
thread count, on synthetic inputs, in the same run of this script. PyTorch is Debian's
python3-torch running tests/python/moco_reference.py (the step the alignment tests compare
against). Each side runs in its own process so that peak RSS is its own.

Prints, per case: images/s of both, the ratio (moco-train / PyTorch), the fraction of the
machine's sgemm rate that moco-train reaches (measured here with torch.mm on the same threads),
and peak memory of both.

    bench/moco_step_vs_torch.py [--threads 2] [--steps 3] [--cases r18c,r50]
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / os.environ.get("MOCO_BUILD", "build")

# name: (arch, cifar_stem, image, batch, K, GFLOP per image for a MoCo v2 step:
#        4 forward passes' worth = query forward + backward (3x) + key forward (1x))
CASES = {
    "r18c": ("resnet18", True, 32, 64, 4096, 4 * 2 * 0.557),
    "r50": ("resnet50", False, 224, 32, 4096, 32.8),
}


def run_measured(cmd, env=None):
    """Runs cmd once; returns (stdout, peak RSS in MiB of that process alone, from wait4)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"{cmd[0]} failed:\n{err.read().decode(errors='replace')[-2000:]}")
    return out, usage.ru_maxrss / 1024.0


TORCH_SIDE = r"""
import sys, time, torch
sys.path.insert(0, sys.argv[1])
from moco_reference import MoCoReference, make_optimizer, train_step
arch, cifar, image, batch, K, steps, threads = sys.argv[2], sys.argv[3] == "1", *map(int, sys.argv[4:9])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = MoCoReference(arch=arch, dim=128, K=K, m=0.999, T=0.2, mlp=True, cifar_stem=cifar)
opt = make_optimizer(model, 0.03, 0.9, 1e-4)
im_q = torch.randn(batch, 3, image, image); im_k = torch.randn(batch, 3, image, image)
perm = torch.randperm(batch)
for _ in range(2): train_step(model, opt, im_q, im_k, perm)
t0 = time.perf_counter()
for _ in range(steps): train_step(model, opt, im_q, im_k, perm)
print(f"img/s: {batch * steps / (time.perf_counter() - t0):.3f}")
"""


def torch_cmd(case, steps, threads):
    arch, cifar, image, batch, k, _ = CASES[case]
    return ["/usr/bin/python3", "-c", TORCH_SIDE, str(ROOT / "tests" / "python"), arch,
            "1" if cifar else "0", str(image), str(batch), str(k), str(steps), str(threads)]


def moco_cmd(case, steps, threads, config):
    arch, cifar, image, batch, k, _ = CASES[case]
    sets = {"model.arch": arch, "model.cifar_stem": str(cifar).lower(), "data.image_size": image,
            "optim.batch_size": batch, "moco.k": k, "resources.threads": threads, "model.mlp": "true"}
    cmd = [str(BUILD / "bin" / "moco-train"), "bench", "--config", str(config), "--steps", str(steps)]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    return cmd


def img_per_s(output):
    return float(output.strip().splitlines()[-1].split("img/s:")[1])


def sgemm_gflops(threads):
    code = ("import torch,time; torch.set_num_threads(%d); a=torch.randn(2048,2048); b=torch.randn(2048,2048);"
            "[a@b for _ in range(3)]; t=time.perf_counter(); [a@b for _ in range(10)];"
            "print(10*2*2048**3/(time.perf_counter()-t)/1e9)" % threads)
    return float(subprocess.check_output(["/usr/bin/python3", "-c", code], text=True))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--cases", default="r18c,r50")
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text("method: moco_v2\nmodel: {dim: 128}\nmoco: {m: 0.999}\n")
        peak = sgemm_gflops(a.threads)
        print(f"machine sgemm (torch.mm 2048^3, {a.threads} threads): {peak:.1f} GFLOP/s")
        for case in a.cases.split(","):
            arch, cifar, image, batch, k, gflop = CASES[case]
            mc = moco_cmd(case, a.steps, a.threads, config)
            tc = torch_cmd(case, a.steps, a.threads)
            ours, ours_mem = run_measured(mc, env)
            theirs, theirs_mem = run_measured(tc, env)
            ours_ips, theirs_ips = img_per_s(ours), img_per_s(theirs)
            print(f"{case}: {arch}{' CIFAR stem' if cifar else ''} {image}x{image} batch {batch} K {k}, "
                  f"{a.threads} threads, {a.steps} timed steps")
            print(f"  moco-train {ours_ips:.2f} img/s, PyTorch {theirs_ips:.2f} img/s, "
                  f"ratio {ours_ips / theirs_ips:.2f}x")
            print(f"  moco-train reaches {ours_ips * gflop / peak * 100:.1f}% of the sgemm rate "
                  f"({ours_ips * gflop:.1f} of {peak:.1f} GFLOP/s); PyTorch {theirs_ips * gflop / peak * 100:.1f}%")
            print(f"  peak RSS: moco-train {ours_mem:.0f} MiB, PyTorch {theirs_mem:.0f} MiB, "
                  f"ratio {ours_mem / theirs_mem:.2f}")


if __name__ == "__main__":
    main()
