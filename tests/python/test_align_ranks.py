"""test_align_ranks.py — `mpirun -np 2 moco-train align` against a PyTorch reference that
simulates two DDP devices in one process (tests/python/moco_ddp_reference.py, written from the
official facebookresearch/moco semantics: per-device BN, rank 0's shuffle permutation across
devices, gradients averaged over devices, enqueue of all gathered keys, BN buffers broadcast
from rank 0).

Model as in test_align.py: ResNet-18 with the CIFAR stem at 16x16, K 64, dim 32, global batch 8
(4 per rank: BN over 2-sample groups is fragile, see test_align.py), encoder_k different from
encoder_q, non-trivial BN parameters and buffers, queue_ptr starting at K - N so the first
enqueue ends at the queue's end and the second wraps to 0. Every step has its own permutation,
chosen so that every shuffled sub-batch mixes both ranks' rows (and so that neither "no
shuffle" nor the inverse permutation would give the same sub-batches).
- v2 (MLP head, T 0.2), 3 steps; v1 (fc head, T 0.07), 1 step.

Tolerances (test_align.py's reasoning): err = max|c - t| / (max|t| + 1e-12) per tensor, C
against the reference run in float64 (the float32 reference's own error is printed beside it).
- One step from a known state — loss, logits, q, k, every averaged gradient, both encoders'
  parameters and BN buffers, queue: 1e-4 (both float32 implementations are ~1e-5 from
  float64). queue_ptr and num_batches_tracked exact. This applies to the first step and also
  to the last step of the 3-step run re-anchored on C's own state after step 2 (the reference
  runs step 3 from rank 0's --rank-states file): its loss, logits, q, k and gradients must be
  within 1e-4, so the later steps are checked as tightly as the first without the drift that
  three ill-conditioned steps accumulate.
- After two and three steps (losses, parameters, buffers, queue): 1e-3 of the float64 OR the
  float32 reference (a rounding-driven ReLU flip can move either float32 implementation, or
  float64 itself, ~1e-3 from the others; test_align.py has the measurements).
- Ranks agree bit for bit: after every step each rank's parameters, BN buffers, queue and
  queue_ptr (--rank-states) are identical, and rank 0's last one is OUT's.
- Shuffle: each row of `k` is normalize(encoder_k(the sub-batch perm sent it to)) within 1e-4
  (absolute: keys have unit norm), from C's own state before the step; the same row computed
  in the sub-batch of a wrong rule (no shuffle, inverse permutation) is at least 1e-2 away, so
  the check can tell them apart.
- One rank with moco.bn_splits 2 equals two ranks when it is fed the same samples in the same
  BN groups: SplitBatchNorm (the official CIFAR demo's, moco_reference.py, and the C kernel
  alike) puts sample j in split j % 2, two ranks put rows [0, 4) and [4, 8) in their own BN, so
  the single rank gets the batch interleaved (row j = global row sig[j]) and the permutation
  conjugated accordingly (moco_ddp_reference.interleave_for_splits); "the same perm" literally
  would put other samples together. Then loss, parameters, keys and queue (whose enqueued
  blocks hold the keys in sig order) agree within 1e-4 after one step and 1e-3 after three
  (two float32 computations that sum in different orders); the last step rerun on one rank
  from two ranks' own state after step 2 agrees within 1e-4 in loss, logits, q, k, queue and
  every gradient. (Gradients after three independent steps are not compared: ~1e-6
  differences in the state moved third-step gradients by 3e-3 between the two float32 runs.)
  BN running stats legitimately differ: SplitBatchNorm's (and the C kernel's with splits > 1)
  are the mean of the per-split updates, and neither counts num_batches_tracked; under DDP
  every rank keeps rank 0's (one sub-batch's update), counted each step.
- Bad input (a perm row that is not a permutation, N not divisible by the ranks): non-zero
  exit with a message naming the problem within 60 s, and no rank process left running.
"""
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
import mpi_tools  # noqa: E402
import safetensors_np as stnp  # noqa: E402
from moco_ddp_reference import DDPMoCoReference, interleave_for_splits  # noqa: E402
from moco_reference import (MoCoReference, make_optimizer, randomize_state,  # noqa: E402
                            train_step)
from test_align import (DIM, K, LR, M, MOMENTUM, SIZE, TOL_ONE_STEP,  # noqa: E402
                        TOL_THREE_STEPS, WD, make_case, rel_err)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("MOCO_BUILD", "build"))
PROGRAM = os.path.join(BUILD, "bin", "moco-train")
RANKS, N = 2, 8
TOL_SHUFFLE, WRONG_MIN = 1e-4, 1e-2
TOL_SELF_EXACT, TOL_SELF_SPLITS = 1e-12, 1e-9
# One thread: on a busy machine (the C ranks, other tests) torch's spinning OpenMP threads
# made the float64 reference 4x slower with two than with one.
TORCH_THREADS = int(os.environ.get("MOCO_TORCH_THREADS", "1"))

needs_program = pytest.mark.skipif(not os.path.exists(PROGRAM), reason=f"{PROGRAM} not built")
needs_mpi = pytest.mark.skipif(mpi_tools.MPIRUN is None, reason="mpirun not installed")


# ---- inputs ---------------------------------------------------------------------------------

def groups(P, ranks):
    """For each image, the set of images in the sub-batch that permutation P sends it to."""
    out = [None] * len(P)
    for idx in torch.as_tensor(P).view(ranks, -1).tolist():
        for i in idx:
            out[i] = frozenset(idx)
    return out


def mixing_perm(n, ranks, gen):
    """A random permutation under which every image's shuffled sub-batch differs from its
    sub-batch without shuffle and from its sub-batch under the inverse permutation."""
    plain = groups(torch.arange(n), ranks)
    while True:
        p = torch.randperm(n, generator=gen)
        g, inv = groups(p, ranks), groups(torch.argsort(p), ranks)
        if all(g[i] != plain[i] and g[i] != inv[i] for i in range(n)):
            return p


def ranks_case(mlp, T, steps, seed):
    model, state, batch = make_case(mlp, 1, T, steps, seed=seed, N=N)
    gen = torch.Generator().manual_seed(seed + 100)
    batch["perm"] = torch.stack([mixing_perm(N, RANKS, gen) for _ in range(steps)])
    return model, state, batch


def write_config(tmp, mlp, T, n, k=K):
    cfg = {
        "kind": "pretrain", "method": "moco_v2" if mlp else "moco_v1",
        "model": {"arch": "resnet18", "cifar_stem": True, "mlp": mlp, "dim": DIM},
        "moco": {"k": k, "m": M, "t": T, "shuffle_bn": True, "bn_splits": 1},
        "data": {"train": tmp, "image_size": SIZE},
        "optim": {"lr": LR, "momentum": MOMENTUM, "weight_decay": WD, "batch_size": n},
        "seed": 0,
    }
    path = os.path.join(tmp, "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def run_program(cmd, env=None, timeout=180):
    """Runs cmd in its own process group; on timeout kills that group (mpirun and its ranks)
    and fails the test. Returns (returncode, stdout + stderr, seconds)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail(f"{' '.join(cmd)} still running after {timeout} s (a rank left waiting?)")
    return p.returncode, out + err, time.monotonic() - t0


def run_align(tmp, state, batch, mlp, T, ranks, sets=(), k=K, timeout=180):
    """moco-train align on `ranks` ranks (mpirun when > 1), --rank-states into tmp/states.
    Returns (returncode, output, seconds, OUT path, states dir)."""
    cfg = write_config(tmp, mlp, T, batch["im_q"].shape[1], k)
    paths = {x: os.path.join(tmp, x) for x in ("in.st", "batch.st", "out.st", "states")}
    os.makedirs(paths["states"], exist_ok=True)
    stnp.save_torch(paths["in.st"], state)
    stnp.save_torch(paths["batch.st"], batch)
    args = [PROGRAM, "align", "--config", cfg, "--state", paths["in.st"], "--batch",
            paths["batch.st"], "--out", paths["out.st"], "--rank-states", paths["states"]]
    for s in sets:
        args += ["--set", s]
    if ranks > 1:
        rc, output, secs = run_program(mpi_tools.mpirun_cmd(ranks, args),
                                       env=mpi_tools.mpirun_env(), timeout=timeout)
    else:
        rc, output, secs = run_program(args, timeout=timeout)
    return rc, output, secs, paths["out.st"], paths["states"]


def load_rank_states(states_dir, ranks, steps):
    out = {}
    for r in range(ranks):
        for s in range(1, steps + 1):
            path = os.path.join(states_dir, f"rank{r}-step{s}.safetensors")
            assert os.path.exists(path), f"--rank-states wrote no {path}"
            out[r, s], _ = stnp.load(path)
    return out


# ---- reference runs -------------------------------------------------------------------------

def run_ddp_reference(model, batch, steps, dtype, ranks=RANKS):
    """steps DDP steps from model's state; per step the outputs and rank 0's state after it."""
    torch.set_num_threads(TORCH_THREADS)
    ref = DDPMoCoReference(copy.deepcopy(model).to(dtype), ranks, LR, MOMENTUM, WD)
    res = []
    for s in range(steps):
        loss, logits, q, k, grads = ref.step(batch["im_q"][s].to(dtype),
                                             batch["im_k"][s].to(dtype), batch["perm"][s])
        res.append({"loss": loss, "logits": logits, "q": q, "k": k, "grads": grads,
                    "state": ref.state_dict()})
    return res


def model_from_state(template, tensors, dtype=torch.float64):
    """A copy of template (a MoCoReference) holding the given state (numpy or torch)."""
    model = copy.deepcopy(template)
    sd = {k: torch.as_tensor(np.asarray(tensors[k])).clone() for k in model.state_dict()}
    model.load_state_dict(sd)
    return model.to(dtype)


class Checker:
    """Collects per-tensor errors; failures list the tensors over tolerance."""

    def __init__(self, title):
        self.title, self.lines, self.failures = title, [], []

    def close(self, name, c, ref, tol, alt=None):
        """|c - ref| relative within tol; alt (float32 reference), when given, is also an
        acceptable answer and its own distance from ref is printed."""
        e = rel_err(c, ref)
        line = f"{name:52s} {e:.2e}"
        if alt is not None:
            line += f"  (torch32 {rel_err(alt, ref):.2e})"
            e = min(e, rel_err(c, alt))
        self.lines.append(line + f"  tol {tol:.0e}")
        if not e <= tol:
            self.failures.append(f"{name} ({e:.2e} > {tol:.0e})")

    def exact(self, name, c, ref):
        c, ref = np.asarray(c).reshape(-1), np.asarray(ref).reshape(-1)
        self.lines.append(f"{name:52s} exact {c.tolist()[:1]} vs {ref.tolist()[:1]}")
        if not np.array_equal(c, ref):
            self.failures.append(f"{name} (exact: {c.tolist()[:4]} vs {ref.tolist()[:4]})")

    def state(self, prefix, c, ref, tol, alt=None):
        for name, v in ref.items():
            if name not in c:
                self.failures.append(f"{prefix}{name} missing")
            elif name == "queue_ptr" or name.endswith("num_batches_tracked"):
                self.exact(prefix + name, c[name], v.numpy())
            else:
                self.close(prefix + name, c[name], v.numpy(), tol,
                           None if alt is None else alt[name].numpy())

    def done(self):
        print(f"\n{self.title}\n" + "\n".join(self.lines))
        assert not self.failures, "over tolerance: " + ", ".join(self.failures)


# ---- the reference itself ---------------------------------------------------------------------

def small_case(steps, seed, size=8):
    """A v2 case (test_align.make_case, mixing permutations) with the images cut to 8x8: the
    reference's self-checks run in float64 and need no C, so they are kept cheap."""
    model, _, batch = ranks_case(True, 0.2, steps, seed)
    batch["im_q"] = batch["im_q"][..., :size, :size].contiguous().double()
    batch["im_k"] = batch["im_k"][..., :size, :size].contiguous().double()
    return model.double(), batch


def test_ddp_reference_one_rank_is_train_step():
    """R = 1: the DDP simulation is moco_reference.train_step: the same ops in the same order,
    so identical in float32 (checked to 1e-12)."""
    torch.set_num_threads(TORCH_THREADS)
    model, batch = small_case(2, seed=21)
    model, batch = model.float(), {k: v.float() if v.is_floating_point() else v
                                   for k, v in batch.items()}
    ref = DDPMoCoReference(model, 1, LR, MOMENTUM, WD)
    opt = make_optimizer(model, LR, MOMENTUM, WD)
    chk = Checker("DDP reference, 1 rank, vs train_step (float32, same ops)")
    for s in range(2):
        a = ref.step(batch["im_q"][s], batch["im_k"][s], batch["perm"][s])
        b = train_step(model, opt, batch["im_q"][s], batch["im_k"][s], batch["perm"][s])
        chk.close(f"step {s + 1} loss", a[0], b[0], TOL_SELF_EXACT)
        for i, what in ((1, "logits"), (2, "q"), (3, "k")):
            chk.close(f"step {s + 1} {what}", a[i].numpy(), b[i].numpy(), TOL_SELF_EXACT)
        for name in b[4]:
            chk.close(f"step {s + 1} grad {name}", a[4][name].numpy(), b[4][name].numpy(),
                      TOL_SELF_EXACT)
    chk.state("", ref.state_dict(), model.state_dict(), TOL_SELF_EXACT)
    chk.done()


def test_ddp_reference_two_ranks_is_split_batchnorm():
    """R = 2 equals one device with SplitBatchNorm(2) fed the interleaved batch and conjugated
    permutation: loss, gradients, q, k, parameters and queue (its blocks in sig order) within
    1e-9 in float64. BN buffers: after step 1 the mean of the two replicas' own updates (before
    DDP's broadcast) is SplitBatchNorm's, while rank 0's alone is not."""
    torch.set_num_threads(TORCH_THREADS)
    steps, n = 2, N
    model, batch = small_case(steps, seed=22)
    split = MoCoReference("resnet18", DIM, K, M, 0.2, mlp=True, cifar_stem=True, bn_splits=2)
    split = split.double()
    split.load_state_dict(model.state_dict())
    sig, perm_map = interleave_for_splits(RANKS, n // RANKS)
    ref = DDPMoCoReference(model, RANKS, LR, MOMENTUM, WD)
    opt = make_optimizer(split, LR, MOMENTUM, WD)
    chk = Checker("DDP reference, 2 ranks, vs SplitBatchNorm(2) on one device (float64)")
    ptr0 = int(model.queue_ptr)
    for s in range(steps):
        a = ref.step(batch["im_q"][s], batch["im_k"][s], batch["perm"][s])
        b = train_step(split, opt, batch["im_q"][s][sig], batch["im_k"][s][sig],
                       perm_map(batch["perm"][s]))
        chk.close(f"step {s + 1} loss", a[0], b[0], TOL_SELF_SPLITS)
        chk.close(f"step {s + 1} q", a[2][sig].numpy(), b[2].numpy(), TOL_SELF_SPLITS)
        chk.close(f"step {s + 1} k", a[3][sig].numpy(), b[3].numpy(), TOL_SELF_SPLITS)
        before = queue_columns(ptr0, s, sig)  # the queue this step's logits saw
        chk.close(f"step {s + 1} logits", a[1][sig][:, np.r_[0, 1 + before]].numpy(),
                  b[1].numpy(), TOL_SELF_SPLITS)
        for name in b[4]:
            chk.close(f"step {s + 1} grad {name}", a[4][name].numpy(), b[4][name].numpy(),
                      TOL_SELF_SPLITS)
        if s == 0:
            own = [ref.state_dict(r) for r in range(RANKS)]
            sb = split.state_dict()
            differs = 0.0
            for name, v in sb.items():
                if name.endswith("running_mean") or name.endswith("running_var"):
                    mean = sum(o[name] for o in own) / RANKS
                    chk.close(f"step 1 mean over replicas {name}", mean.numpy(), v.numpy(),
                              TOL_SELF_SPLITS)
                    differs = max(differs, rel_err(own[0][name].numpy(), v.numpy()))
            assert differs > 1e-3, "rank 0's BN buffers equal SplitBatchNorm's: test is blind"
        for r in range(1, RANKS):  # identical parameters on every simulated device
            for (name, p0), p in zip(ref.replicas[0].named_parameters(),
                                     ref.replicas[r].parameters()):
                assert torch.equal(p0, p), f"replica {r} {name} differs"
    sa, sb = ref.state_dict(), split.state_dict()
    for name, v in sb.items():
        if name.startswith("encoder_") and ("running_" in name or "num_batches" in name):
            continue  # BN buffers legitimately differ (see above)
        if name == "queue":  # each step's block holds the keys in sig order
            chk.close("queue (blocks in sig order)",
                      sa[name].numpy()[:, queue_columns(ptr0, steps, sig)], v.numpy(),
                      TOL_SELF_SPLITS)
        elif name == "queue_ptr":
            chk.exact(name, sa[name], v.numpy())
        else:
            chk.close(name, sa[name].numpy(), v.numpy(), TOL_SELF_SPLITS)
    chk.done()


# ---- moco-train on two ranks --------------------------------------------------------------------

CASES = {"v2-3steps": (True, 0.2, 3, 31), "v1-1step": (False, 0.07, 1, 41)}


@pytest.fixture(scope="module")
def two_rank_run():
    """The C run of a case on two ranks and its reference runs, computed once per module."""
    runs, tmp = {}, tempfile.mkdtemp(prefix="align_ranks_")

    def get(case):
        if case in runs:
            return runs[case]
        mlp, T, steps, seed = CASES[case]
        model, state, batch = ranks_case(mlp, T, steps, seed)
        work = os.path.join(tmp, case)
        os.makedirs(work)
        rc, output, secs, out_path, states_dir = run_align(work, state, batch, mlp, T, RANKS)
        assert rc == 0, output
        out, _ = stnp.load(out_path)
        runs[case] = {
            "mlp": mlp, "T": T, "steps": steps, "model": model, "state": state,
            "batch": batch, "out": out, "states_dir": states_dir,
            "states": load_rank_states(states_dir, RANKS, steps), "seconds": secs,
            "ref64": run_ddp_reference(model, batch, steps, torch.float64),
            "ref32": run_ddp_reference(model, batch, steps, torch.float32)}
        print(f"\n{case}: mpirun -np 2 moco-train align, {steps} steps: {secs:.1f} s")
        return runs[case]

    yield get
    shutil.rmtree(tmp, ignore_errors=True)


def check_one_step(chk, label, out, ref, alt, tol):
    """loss, logits, q, k and averaged gradients of one step against a reference step."""
    chk.close(f"{label} logits", out["logits"], ref["logits"].numpy(), tol,
              None if alt is None else alt["logits"].numpy())
    chk.close(f"{label} q", out["q"], ref["q"].numpy(), tol,
              None if alt is None else alt["q"].numpy())
    chk.close(f"{label} k", out["k"], ref["k"].numpy(), tol,
              None if alt is None else alt["k"].numpy())
    got = {n[len("grad.encoder_q."):] for n in out if n.startswith("grad.")}
    if got != set(ref["grads"]):
        chk.failures.append(f"gradient names differ: {sorted(got ^ set(ref['grads']))}")
    for name, g in ref["grads"].items():
        chk.close(f"{label} grad.encoder_q.{name}", out["grad.encoder_q." + name], g.numpy(),
                  tol, None if alt is None else alt["grads"][name].numpy())


@needs_program
@needs_mpi
@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_match_ddp_reference(case, two_rank_run):
    """Loss of every step, rank 0's state after every step (--rank-states, and OUT after the
    last), queue_ptr and num_batches_tracked exact; logits, q, k and averaged gradients of the
    last step (re-anchored on C's own state when it is not the first)."""
    run = two_rank_run(case)
    out, states, steps = run["out"], run["states"], run["steps"]
    ref64, ref32 = run["ref64"], run["ref32"]
    chk = Checker(f"{case}: 2 ranks vs the DDP reference (float64; torch32 for scale)")
    assert out["loss"].shape == (steps,)
    for s in range(steps):
        tol = TOL_ONE_STEP if s == 0 else TOL_THREE_STEPS
        alt = None if s == 0 else ref32[s]["loss"]
        chk.close(f"step {s + 1} loss", out["loss"][s], ref64[s]["loss"], tol, alt)
        state = out if s == steps - 1 else states[0, s + 1]
        chk.state(f"step {s + 1} ", state, ref64[s]["state"], tol,
                  None if s == 0 else ref32[s]["state"])
    if steps == 1:
        check_one_step(chk, "step 1", out, ref64[0], None, TOL_ONE_STEP)
    else:
        # the last step again, from C's own state before it (rank 0's --rank-states file):
        # its outputs at one-step tolerance. (The SGD momentum buffer is not in that file, so
        # the parameters after this step are not compared here; above they are, at 1e-3.)
        start = model_from_state(run["model"], states[0, steps - 1])
        s = steps - 1
        batch = {k: v[s:s + 1] for k, v in run["batch"].items()}
        again = run_ddp_reference(start, batch, 1, torch.float64)[0]
        chk.close(f"step {steps} (from C's step-{steps - 1} state) loss", out["loss"][s],
                  again["loss"], TOL_ONE_STEP)
        check_one_step(chk, f"step {steps} (from C's step-{steps - 1} state)", out, again, None,
                       TOL_ONE_STEP)
    chk.done()


@needs_program
@needs_mpi
@pytest.mark.parametrize("case", list(CASES))
def test_ranks_hold_identical_state_after_every_step(case, two_rank_run):
    """Both ranks' --rank-states files hold the same tensors, bit for bit, after every step
    (DDP: same averaged gradients, same gathered keys, rank 0's BN buffers broadcast)."""
    run = two_rank_run(case)
    states, steps, out = run["states"], run["steps"], run["out"]
    names = set(run["state"])
    for s in range(1, steps + 1):
        a, b = states[0, s], states[1, s]
        assert names <= set(a), f"rank 0 step {s} lacks {sorted(names - set(a))}"
        assert set(a) == set(b), f"step {s}: ranks hold different tensors"
        for name in a:
            assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
            assert a[name].tobytes() == b[name].tobytes(), \
                f"step {s}: {name} differs between ranks (max |diff| " \
                f"{np.max(np.abs(a[name].astype(np.float64) - b[name]))})"
        if s > 1:  # the files are per step, not one state written S times
            assert states[0, s]["queue"].tobytes() != states[0, s - 1]["queue"].tobytes()
    last = states[0, steps]
    for name in names:
        assert last[name].tobytes() == np.asarray(out[name]).tobytes(), \
            f"OUT's {name} is not rank 0's state after the last step"
    extra = sorted(set(os.listdir(run["states_dir"])) - {
        f"rank{r}-step{s}.safetensors" for r in range(RANKS) for s in range(1, steps + 1)})
    assert not extra, f"unexpected files from --rank-states: {extra}"


def subbatch_keys(model, im_k, P, ranks):
    """Key of every image when device r encodes images P.view(ranks, -1)[r] in train mode
    (encoder_k after the momentum update), indexed by image."""
    model = copy.deepcopy(model)
    model.train()
    keys = torch.empty(im_k.shape[0], model.queue.shape[0], dtype=torch.float64)
    with torch.no_grad():
        model._momentum_update_key_encoder()
        for idx in torch.as_tensor(P).view(ranks, -1):
            keys[idx] = torch.nn.functional.normalize(model.encoder_k(im_k[idx]), dim=1)
    return keys


@needs_program
@needs_mpi
@pytest.mark.parametrize("case", list(CASES))
def test_keys_come_from_the_sub_batch_the_permutation_chose(case, two_rank_run):
    """Each key of the last step is encoder_k (train-mode BN) over the sub-batch rank 0's
    permutation sent its image to, normalized, and put back at its image's row; computed in
    torch from C's own state before that step, for the right rule and two wrong ones."""
    run = two_rank_run(case)
    steps = run["steps"]
    s = steps - 1
    before = run["state"] if steps == 1 else run["states"][0, steps - 1]
    model = model_from_state(run["model"], before)
    im_k = run["batch"]["im_k"][s].double()
    perm = run["batch"]["perm"][s]
    k = np.asarray(run["out"]["k"], dtype=np.float64)
    right = subbatch_keys(model, im_k, perm, RANKS).numpy()
    wrong = {"no shuffle": subbatch_keys(model, im_k, torch.arange(N), RANKS).numpy(),
             "inverse perm": subbatch_keys(model, im_k, torch.argsort(perm), RANKS).numpy()}
    pos = torch.argsort(perm)
    lines, bad = [], []
    for i in range(N):
        e = float(np.max(np.abs(k[i] - right[i])))
        ew = {w: float(np.max(np.abs(k[i] - v[i]))) for w, v in wrong.items()}
        lines.append(f"key {i}: rank {int(pos[i]) // (N // RANKS)} sub-batch "
                     f"{sorted(perm.view(RANKS, -1)[int(pos[i]) // (N // RANKS)].tolist())}: "
                     f"{e:.2e}; " + ", ".join(f"{w} {x:.2e}" for w, x in ew.items()))
        if not e <= TOL_SHUFFLE:
            bad.append(f"key {i} is {e:.2e} from its sub-batch's")
        for w, x in ew.items():
            if not x >= WRONG_MIN:
                bad.append(f"key {i} also matches the {w} sub-batch ({x:.2e}): test is blind")
    print(f"\n{case} step {steps}, perm {perm.tolist()}\n" + "\n".join(lines))
    assert not bad, "; ".join(bad)


def interleaved(batch, steps=None):
    """The single-rank bn_splits 2 batch holding the same samples in the same BN groups."""
    sig, perm_map = interleave_for_splits(RANKS, N // RANKS)
    sl = slice(None) if steps is None else steps
    return {"im_q": batch["im_q"][sl][:, sig], "im_k": batch["im_k"][sl][:, sig],
            "perm": torch.stack([perm_map(p) for p in batch["perm"][sl]])}


def queue_columns(ptr0, steps, sig):
    """Column c of the single rank's queue is column cols[c] of the two ranks' after `steps`
    enqueues from ptr0: each enqueued block holds the keys in sig order."""
    cols = np.arange(K)
    for s in range(steps):
        b0 = (ptr0 + s * N) % K
        cols[b0:b0 + N] = b0 + sig.numpy()
    return cols


def run_one_rank_splits(tmp, state, batch, run):
    rc, output, secs, out_path, states_dir = run_align(
        tmp, state, batch, run["mlp"], run["T"], 1, sets=["moco.bn_splits=2"])
    assert rc == 0, output
    out, _ = stnp.load(out_path)
    return out, load_rank_states(states_dir, 1, batch["im_q"].shape[0]), secs


@needs_program
@needs_mpi
def test_one_rank_with_bn_splits_equals_two_ranks(two_rank_run):
    """v2, 3 steps. (1) the same three steps on one rank: step-1 loss and state within 1e-4,
    later losses, final parameters and queue, last-step q/k/logits within 1e-3 (gradients are
    not compared after three steps: ~1e-6 differences in the state move third-step gradients
    by ~3e-3 between two float32 runs, as test_align.py describes); (2) the last step on one
    rank from two ranks' own state after step 2: loss, logits, q, k, gradients, queue within
    1e-4."""
    run = two_rank_run("v2-3steps")
    steps, batch, out2, states2 = run["steps"], run["batch"], run["out"], run["states"]
    sig, _ = interleave_for_splits(RANKS, N // RANKS)
    ptr0 = int(run["state"]["queue_ptr"][0])
    chk = Checker("1 rank bn_splits 2 (interleaved) vs 2 ranks")
    with tempfile.TemporaryDirectory() as tmp:
        out1, states1, secs1 = run_one_rank_splits(tmp, run["state"], interleaved(batch), run)
    with tempfile.TemporaryDirectory() as tmp:
        start = {k: torch.from_numpy(np.array(v)) for k, v in states2[0, steps - 1].items()}
        last1, _, secs2 = run_one_rank_splits(
            tmp, start, interleaved(batch, slice(steps - 1, steps)), run)
    chk.title += f" ({secs1:.1f} s + {secs2:.1f} s)"

    def compare_state(label, c1, c2, done, tol):
        cols = queue_columns(ptr0, done, sig)
        for name in run["state"]:
            if name == "queue":
                chk.close(f"{label} queue (blocks in sig order)", c1[name], c2[name][:, cols],
                          tol)
            elif name == "queue_ptr":
                chk.exact(f"{label} queue_ptr", c1[name], c2[name])
            elif "running_" in name:
                continue  # mean over splits vs rank 0's: legitimately different
            elif name.endswith("num_batches_tracked"):
                # SplitBatchNorm never counts; each rank's nn.BatchNorm2d counts every step
                chk.exact(f"{label} {name} (1 rank, splits)", c1[name], run["state"][name])
                chk.exact(f"{label} {name} (2 ranks)", c2[name], run["state"][name] + done)
            else:
                chk.close(f"{label} {name}", c1[name], c2[name], tol)

    # (1) three steps from the same start
    for s in range(steps):
        chk.close(f"step {s + 1} loss", out1["loss"][s], out2["loss"][s],
                  TOL_ONE_STEP if s == 0 else TOL_THREE_STEPS)
    compare_state("step 1", states1[0, 1], states2[0, 1], 1, TOL_ONE_STEP)
    compare_state(f"step {steps}", out1, out2, steps, TOL_THREE_STEPS)
    before = queue_columns(ptr0, steps - 1, sig)  # the queue the last step's logits saw
    chk.close(f"step {steps} q", out1["q"], out2["q"][sig], TOL_THREE_STEPS)
    chk.close(f"step {steps} k", out1["k"], out2["k"][sig], TOL_THREE_STEPS)
    chk.close(f"step {steps} logits", out1["logits"], out2["logits"][sig][:, np.r_[0, 1 + before]],
              TOL_THREE_STEPS)
    # (2) the last step from the same state: the queue it sees is two ranks' own
    label = f"step {steps} from 2 ranks' step-{steps - 1} state:"
    chk.close(f"{label} loss", last1["loss"][0], out2["loss"][steps - 1], TOL_ONE_STEP)
    chk.close(f"{label} q", last1["q"], out2["q"][sig], TOL_ONE_STEP)
    chk.close(f"{label} k", last1["k"], out2["k"][sig], TOL_ONE_STEP)
    chk.close(f"{label} logits", last1["logits"], out2["logits"][sig], TOL_ONE_STEP)
    grads = [n for n in out2 if n.startswith("grad.")]
    if set(grads) != {n for n in last1 if n.startswith("grad.")}:
        chk.failures.append("gradient names differ")
    for name in grads:
        chk.close(f"{label} {name}", last1[name], out2[name], TOL_ONE_STEP)
    b0 = (ptr0 + (steps - 1) * N) % K
    cols = np.arange(K)
    cols[b0:b0 + N] = b0 + sig.numpy()
    chk.close(f"{label} queue (new block in sig order)", last1["queue"], out2["queue"][:, cols],
              TOL_ONE_STEP)
    differs = max(rel_err(out1[n], out2[n]) for n in run["state"] if "running_" in n)
    chk.lines.append(f"BN running stats, largest difference (expected): {differs:.2e}")
    if not differs > TOL_THREE_STEPS:
        chk.failures.append("BN running stats of 1 rank with bn_splits equal 2 ranks': the two "
                            "should keep different statistics (mean over splits vs rank 0's)")
    chk.done()


# ---- bad input ----------------------------------------------------------------------------------

def processes_mentioning(text):
    """Pids of processes whose command line contains text (mpirun, its ranks)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except (OSError, ValueError):
            pass
    return found


def bad_run(batch, n, k, state):
    """Runs a refused input on two ranks: the run must end within 60 s and leave no rank."""
    with tempfile.TemporaryDirectory() as tmp:
        rc, output, secs, _, _ = run_align(tmp, state, batch, True, 0.2, RANKS, k=k, timeout=60)
        deadline = time.monotonic() + 10
        while processes_mentioning(tmp) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = processes_mentioning(tmp)
    assert not left, f"processes still running after mpirun returned: {left}"
    return rc, output, secs


@needs_program
@needs_mpi
@pytest.mark.parametrize("bad", ["repeated", "out-of-range"])
def test_perm_that_is_not_a_permutation_is_refused(bad):
    model, state, batch = ranks_case(True, 0.2, 2, 51)
    row = batch["perm"][1].clone()  # the second step's row: the whole file is checked
    if bad == "repeated":
        row[3] = row[5]
    else:
        row[3] = N
    batch["perm"][1] = row
    rc, output, secs = bad_run(batch, N, K, state)
    print(f"\nrc {rc} after {secs:.1f} s:\n{output}")
    assert rc != 0, output
    assert "perm" in output and "permutation" in output, output


@needs_program
@needs_mpi
def test_batch_not_divisible_by_ranks_is_refused():
    n, k = 5, 60  # k a multiple of n: the only problem is 5 rows over 2 ranks
    torch.manual_seed(61)
    gen = torch.Generator().manual_seed(62)
    model = MoCoReference("resnet18", DIM, k, M, 0.2, mlp=True, cifar_stem=True)
    with torch.no_grad():
        randomize_state(model.encoder_q, gen)
    state = {kk: v.detach().clone() for kk, v in model.state_dict().items()}
    batch = {"im_q": torch.randn(1, n, 3, SIZE, SIZE, generator=gen),
             "im_k": torch.randn(1, n, 3, SIZE, SIZE, generator=gen),
             "perm": torch.randperm(n, generator=gen).view(1, n)}
    rc, output, secs = bad_run(batch, n, k, state)
    print(f"\nrc {rc} after {secs:.1f} s:\n{output}")
    assert rc != 0, output
    low = output.lower()
    assert "5" in output and "rank" in low and ("divisible" in low or "multiple" in low), output
