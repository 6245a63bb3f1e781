#!/usr/bin/python3
"""ranks_scaling.py — data-parallel scaling from 1 to 2 ranks on this machine: moco-train under
mpirun against PyTorch DistributedDataParallel (gloo), measured in the same run.

Both sides train the demo recipe (configs/demo_moco_v2_cifar10_small.yaml: MoCo v2, ResNet-18
with the CIFAR stem, 32x32, global batch 64, K 512, MLP head, T 0.2, m 0.99, SGD lr 0.06
momentum 0.9 wd 5e-4), first as one process, then as two processes of 32 images each, on all
the machine's cores split evenly between the processes (cores / processes threads each).

- moco-train: `moco-train pretrain` (1 rank: no launcher; 2 ranks: `mpirun -np 2`) for one epoch
  of W + S steps over 64 x (W + S) REAL CIFAR JPEGs (symlinks into datasets/cifar10-small/train):
  every step decodes and augments its images (data.workers loader threads per rank share the
  cores with the compute threads), the real training path. 2 ranks: shuffle BN as the official
  code (all-gather of key images, rank 0's permutation, all-gather of keys), gradient all-reduce,
  rank 0's BN buffers broadcast, a metric reduce and a stop-flag all-reduce per step.
  images/s = S x 64 / (ts of step W+S's metric event - ts of step W's);
  collectives = the epoch summary's collectives_s (rank 0's time inside MPI calls, waiting for
  the other rank included) over its `seconds` (all W + S steps, from the epoch's start).
  Also `moco-train bench` at 1 rank: the same step on SYNTHETIC inputs (no data loading), the
  like-for-like figure against PyTorch's 1-process one (bench has no multi-rank mode).
- PyTorch (Debian's python3-torch): SYNTHETIC inputs (no data loading; that favours PyTorch).
  1 process: tests/python/moco_reference.MoCoReference's forward, cross-entropy, SGD — the step
  of main_moco.py train(). 2 processes: init_process_group("gloo"), the whole MoCo module in
  DistributedDataParallel (broadcast_buffers=True, as main_moco.py), and moco/builder.py's
  forward: _batch_shuffle_ddp (all-gather of im_k, rank 0's randperm broadcast),
  _batch_unshuffle_ddp (all-gather of k), _dequeue_and_enqueue's all-gather of keys; encoders,
  momentum update and enqueue are MoCoReference's own. Collectives = rank 0's time in the
  all-gathers and the broadcast, in DDP's buffer broadcast before the forward, and the part of
  the gradient all-reduce that backward waits for after its last gradient is ready (DDP overlaps
  the rest with backward; measured through a comm hook doing exactly what DDP's default
  allreduce hook does), over the same W + S steps as moco-train's epoch.

Prints images/s at 1 and 2 processes, the scaling ratio (2 / 1), the collectives' share at 2,
for each side, and the ratio moco-train / PyTorch at 2 (and at 1). Exits non-zero on failure.

    nice -n 10 /usr/bin/python3 bench/ranks_scaling.py [--warmup 2] [--steps 6] [--workers 1]

W + S is at most 15 (the 1000 shipped training images). On a quiet 2-core machine the default
run should take about a minute and a half (40 steps at the step rates of docs/performance.md,
plus start-up); a run with --warmup 1 --steps 2 took 200 s on a heavily shared one.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / os.environ.get("MOCO_BUILD", "build")
MOCO_TRAIN = BUILD / "bin" / "moco-train"
DEMO = ROOT / "configs" / "demo_moco_v2_cifar10_small.yaml"
CIFAR = ROOT / "datasets" / "cifar10-small" / "train"
PYDIR = ROOT / "tests" / "python"
sys.path.insert(0, str(PYDIR))

# the demo recipe, for the PyTorch side (moco-train reads the same values from DEMO)
BATCH, IMAGE, K, DIM, M, T, LR, MOMENTUM, WD = 64, 32, 512, 128, 0.99, 0.2, 0.06, 0.9, 5e-4
TIMEOUT = 900  # seconds per run: far above a contended default run; a hang fails the bench


def cores():
    return len(os.sched_getaffinity(0))


def fail(msg):
    sys.exit(f"ranks_scaling: {msg}")


def run(cmd, env=None, what=""):
    """Runs cmd in its own process group; on timeout kills that group (only what we started)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        fail(f"{what} took more than {TIMEOUT} s")
    if proc.returncode != 0:
        fail(f"{what} failed (exit {proc.returncode}):\n{out[-3000:]}")
    return out


# ---- moco-train --------------------------------------------------------------------------


def image_folder(dst, count):
    """count real images (symlinks), taken round-robin over the classes."""
    classes = sorted(p.name for p in CIFAR.iterdir() if p.is_dir())
    files = {c: sorted(os.listdir(CIFAR / c)) for c in classes}
    if count > sum(len(f) for f in files.values()):
        fail(f"{count} images wanted, {CIFAR} has fewer")
    made, i = 0, 0
    while made < count:
        for c in classes:
            if i < len(files[c]) and made < count:
                (dst / c).mkdir(parents=True, exist_ok=True)
                (dst / c / files[c][i]).symlink_to(CIFAR / c / files[c][i])
                made += 1
        i += 1
    return dst


def moco_pretrain(ranks, folder, tmp, warmup, steps, workers):
    from mpi_tools import mpirun_cmd, mpirun_env

    events = tmp / f"moco-{ranks}.jsonl"
    sets = {"data.train": folder, "optim.epochs": 1, "eval.knn.every_epochs": 0,
            "data.workers": workers, "log.print_every": 1, "checkpoint.dir": tmp / f"ckpt-{ranks}"}
    cmd = [str(MOCO_TRAIN), "pretrain", "--config", str(DEMO), "--events-file", str(events)]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    if ranks > 1:
        cmd, env = mpirun_cmd(ranks, cmd), mpirun_env()
    else:
        env = dict(os.environ)
    run(cmd, env, f"moco-train pretrain on {ranks} rank(s)")
    ev = [json.loads(line) for line in events.read_text().splitlines()]
    start = [e for e in ev if e["kind"] == "start"]
    metrics = {e["step"]: e for e in ev if e["kind"] == "metric"}
    epoch = [e for e in ev if e["kind"] == "log" and e.get("message") == "epoch done"]
    done = [e for e in ev if e["kind"] == "done"]
    total = warmup + steps
    if len(start) != 1 or start[0].get("ranks", 1) != ranks:
        fail(f"moco-train {ranks} rank(s): start event missing or wrong rank count: {start}")
    if sorted(metrics) != list(range(1, total + 1)):
        fail(f"moco-train {ranks} rank(s): metric events for steps {sorted(metrics)}, "
             f"expected 1..{total}")
    if len(epoch) != 1 or not done or done[-1].get("status") != "completed":
        fail(f"moco-train {ranks} rank(s): no completed epoch in the events")
    seconds = metrics[total]["ts"] - metrics[warmup]["ts"]
    threads = re.search(r"OpenMP x(\d+)", start[0].get("backend", ""))
    r = {"img_s": steps * BATCH / seconds, "epoch_s": epoch[0]["seconds"], "steps": total,
         "threads": threads.group(1) if threads else "?"}
    if ranks > 1:
        if "collectives_s" not in epoch[0]:
            fail("moco-train 2 ranks: the epoch summary has no collectives_s")
        r["coll_s"] = epoch[0]["collectives_s"]
    return r


def moco_synthetic(steps):
    """moco-train bench: same recipe, synthetic inputs, 1 rank, all cores (2 warm-up steps)."""
    out = run([str(MOCO_TRAIN), "bench", "--config", str(DEMO), "--steps", str(steps),
               "--set", f"resources.threads={cores()}"], dict(os.environ), "moco-train bench")
    return float(out.strip().splitlines()[-1].split("img/s:")[1])


# ---- PyTorch -----------------------------------------------------------------------------


def torch_worker(rank, world, init, warmup, steps, threads):
    """One PyTorch process; rank 0 prints a JSON line with its measurements."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from moco_reference import MoCoReference, make_optimizer

    torch.set_num_threads(threads)
    coll = [0.0]  # rank 0's seconds in collectives, this step

    def timed(fn, *a, **kw):
        t = time.perf_counter()
        out = fn(*a, **kw)
        coll[0] += time.perf_counter() - t
        return out

    @torch.no_grad()
    def concat_all_gather(tensor):  # moco/builder.py
        tensors_gather = [torch.ones_like(tensor) for _ in range(dist.get_world_size())]
        timed(dist.all_gather, tensors_gather, tensor, async_op=False)
        return torch.cat(tensors_gather, dim=0)

    class DistMoCo(MoCoReference):
        """moco/builder.py MoCo.forward with its DDP shuffle; the rest is MoCoReference's."""

        @torch.no_grad()
        def _batch_shuffle_ddp(self, x):
            batch_size_this = x.shape[0]
            x_gather = concat_all_gather(x)
            num_gpus = x_gather.shape[0] // batch_size_this
            idx_shuffle = torch.randperm(x_gather.shape[0])
            timed(dist.broadcast, idx_shuffle, src=0)
            idx_unshuffle = torch.argsort(idx_shuffle)
            idx_this = idx_shuffle.view(num_gpus, -1)[dist.get_rank()]
            return x_gather[idx_this], idx_unshuffle

        @torch.no_grad()
        def _batch_unshuffle_ddp(self, x, idx_unshuffle):
            batch_size_this = x.shape[0]
            x_gather = concat_all_gather(x)
            num_gpus = x_gather.shape[0] // batch_size_this
            idx_this = idx_unshuffle.view(num_gpus, -1)[dist.get_rank()]
            return x_gather[idx_this]

        @torch.no_grad()
        def _dequeue_and_enqueue(self, keys):
            super()._dequeue_and_enqueue(concat_all_gather(keys))

        def forward(self, im_q, im_k):
            q = F.normalize(self.encoder_q(im_q), dim=1)
            with torch.no_grad():
                self._momentum_update_key_encoder()
                im_k, idx_unshuffle = self._batch_shuffle_ddp(im_k)
                k = F.normalize(self.encoder_k(im_k), dim=1)
                k = self._batch_unshuffle_ddp(k, idx_unshuffle)
            l_pos = torch.einsum("nc,nc->n", [q, k]).unsqueeze(-1)
            l_neg = torch.einsum("nc,ck->nk", [q, self.queue.clone().detach()])
            logits = torch.cat([l_pos, l_neg], dim=1) / self.T
            labels = torch.zeros(logits.shape[0], dtype=torch.long)
            self._dequeue_and_enqueue(k)
            return logits, labels

    torch.manual_seed(0)
    n = BATCH // world
    kw = dict(arch="resnet18", dim=DIM, K=K, m=M, T=T, mlp=True, cifar_stem=True)
    gen = torch.Generator().manual_seed(1 + rank)
    im_q = torch.randn(n, 3, IMAGE, IMAGE, generator=gen)
    im_k = torch.randn(n, 3, IMAGE, IMAGE, generator=gen)
    ar = {"last_call": 0.0, "last_done": 0.0}
    if world == 1:
        model = MoCoReference(**kw)
        opt = make_optimizer(model, LR, MOMENTUM, WD)
        perm = torch.randperm(BATCH)

        def forward():
            return model(im_q, im_k, perm)[:2]
    else:
        dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
        module = DistMoCo(**kw)
        model = torch.nn.parallel.DistributedDataParallel(module)  # broadcast_buffers=True
        opt = make_optimizer(module, LR, MOMENTUM, WD)  # main_moco.py: encoder_q's are the ones with grads

        def allreduce_hook(state, bucket):
            """DDP's default allreduce_hook, plus when the bucket was handed over / finished."""
            ar["last_call"] = time.perf_counter()
            tensor = bucket.buffer().div_(world)
            fut = dist.all_reduce(tensor, async_op=True).get_future()

            def finished(f):
                ar["last_done"] = max(ar["last_done"], time.perf_counter())
                return f.value()[0]
            return fut.then(finished)
        model.register_comm_hook(None, allreduce_hook)
        entered = [0.0]
        module.register_forward_pre_hook(lambda *_: entered.__setitem__(0, time.perf_counter()))

        def forward():
            t = time.perf_counter()
            out = model(im_q, im_k)
            coll[0] += entered[0] - t  # DDP's buffer broadcast (rank 0's buffers to all)
            return out

    model.train()
    times, colls = [], []
    if world > 1:
        dist.barrier()
    for _ in range(warmup + steps):
        coll[0], ar["last_call"], ar["last_done"] = 0.0, 0.0, 0.0
        t0 = time.perf_counter()
        logits, labels = forward()
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad()
        loss.backward()
        if world > 1:  # what backward waited for after its last bucket was ready
            coll[0] += max(0.0, ar["last_done"] - ar["last_call"])
        opt.step()
        times.append(time.perf_counter() - t0)
        colls.append(coll[0])
        if not torch.isfinite(loss):
            raise SystemExit(f"PyTorch rank {rank}: the loss is {loss.item()}")
    if world > 1:
        dist.destroy_process_group()
    if rank == 0:
        print(json.dumps({"img_s": steps * BATCH / sum(times[warmup:]), "epoch_s": sum(times),
                          "coll_s": sum(colls), "steps": warmup + steps,
                          "version": torch.__version__}))


def torch_run(world, tmp, warmup, steps):
    threads = max(1, cores() // world)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    init = f"file://{tmp}/torch-init-{world}"
    cmds = [[sys.executable, str(Path(__file__).resolve()), "--torch-worker", str(r), str(world),
             init, str(warmup), str(steps), str(threads)] for r in range(world)]
    procs = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True) for c in cmds]
    outs, deadline = [], time.time() + TIMEOUT
    try:
        for p in procs:
            outs.append(p.communicate(timeout=max(1, deadline - time.time()))[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
        fail(f"PyTorch with {world} process(es) took more than {TIMEOUT} s")
    for r, (p, out) in enumerate(zip(procs, outs)):
        if p.returncode != 0:
            for q in procs:
                if q.poll() is None:
                    os.killpg(q.pid, 9)
            fail(f"PyTorch rank {r} of {world} failed (exit {p.returncode}):\n{out[-3000:]}")
    line = [l for l in outs[0].splitlines() if l.startswith("{")]
    if not line:
        fail(f"PyTorch rank 0 of {world} printed no result:\n{outs[0][-3000:]}")
    r = json.loads(line[-1])
    r["threads"] = threads
    return r


# ---- report ------------------------------------------------------------------------------


def share(r):
    return f"{r['coll_s'] / r['steps']:.3f} s/step, {100 * r['coll_s'] / r['epoch_s']:.1f}% of the step"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-worker":
        rank, world, init, warmup, steps, threads = sys.argv[2:8]
        torch_worker(int(rank), int(world), init, int(warmup), int(steps), int(threads))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--warmup", type=int, default=2, help="warm-up steps (W), not timed")
    ap.add_argument("--steps", type=int, default=6, help="timed steps (S)")
    ap.add_argument("--workers", type=int, default=1, help="moco-train data.workers per rank")
    a = ap.parse_args()
    if a.warmup < 1 or a.steps < 1:
        fail("--warmup and --steps must be at least 1")
    total = a.warmup + a.steps
    if total * BATCH > 1000:
        fail(f"W + S = {total} steps need {total * BATCH} images; the shipped set has 1000 (W + S <= 15)")
    if not MOCO_TRAIN.exists():
        fail(f"{MOCO_TRAIN} is missing: build it first (make)")
    if shutil.which("mpirun") is None:
        fail("mpirun is not installed (Debian: openmpi-bin)")
    c = cores()
    print(f"MoCo v2 demo recipe: ResNet-18 CIFAR stem, {IMAGE}x{IMAGE}, global batch {BATCH}, K {K}; "
          f"{c} cores split over the processes; {a.warmup} warm-up + {a.steps} timed steps")
    t_all = time.time()
    with tempfile.TemporaryDirectory(prefix="ranks_scaling-") as tmpdir:
        tmp = Path(tmpdir)
        folder = image_folder(tmp / "train", total * BATCH)
        ours = {1: moco_pretrain(1, folder, tmp, a.warmup, a.steps, a.workers)}
        theirs = {1: torch_run(1, tmp, a.warmup, a.steps)}
        ours[2] = moco_pretrain(2, folder, tmp, a.warmup, a.steps, a.workers)
        theirs[2] = torch_run(2, tmp, a.warmup, a.steps)
        synthetic = moco_synthetic(a.steps)

    print(f"moco-train (REAL JPEGs, {total * BATCH} CIFAR images decoded + augmented per epoch, "
          f"{a.workers} loader thread(s) per rank; OpenMP threads per rank: {ours[1]['threads']} at 1 rank, "
          f"{ours[2]['threads']} at 2)")
    print(f"  1 rank : {ours[1]['img_s']:.2f} img/s")
    print(f"  2 ranks: {ours[2]['img_s']:.2f} img/s  (mpirun -np 2)")
    print(f"  scaling 2/1: {ours[2]['img_s'] / ours[1]['img_s']:.2f}x")
    print(f"  collectives at 2 ranks (rank 0, over the epoch's {ours[2]['steps']} steps): {share(ours[2])}")
    print(f"  1 rank on SYNTHETIC inputs (moco-train bench): {synthetic:.2f} img/s "
          f"(real/synthetic {ours[1]['img_s'] / synthetic:.2f})")
    print(f"PyTorch {theirs[2]['version']} DDP, gloo (SYNTHETIC inputs, "
          f"no data loading; torch threads per process: {theirs[1]['threads']} at 1 process, "
          f"{theirs[2]['threads']} at 2)")
    print(f"  1 process  : {theirs[1]['img_s']:.2f} img/s  (no DDP)")
    print(f"  2 processes: {theirs[2]['img_s']:.2f} img/s  (DistributedDataParallel, shuffle BN)")
    print(f"  scaling 2/1: {theirs[2]['img_s'] / theirs[1]['img_s']:.2f}x")
    print(f"  collectives at 2 processes (rank 0, over the same {theirs[2]['steps']} steps): {share(theirs[2])}")
    print(f"moco-train / PyTorch at 2 ranks: {ours[2]['img_s'] / theirs[2]['img_s']:.2f}x "
          f"(moco-train loading real JPEGs, PyTorch not)")
    print(f"moco-train / PyTorch at 1 rank : {ours[1]['img_s'] / theirs[1]['img_s']:.2f}x real JPEGs vs "
          f"synthetic, {synthetic / theirs[1]['img_s']:.2f}x both synthetic")
    print(f"(whole bench: {time.time() - t_all:.0f} s)")


if __name__ == "__main__":
    main()
