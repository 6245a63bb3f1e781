"""moco_ddp_reference.py — MoCo trained data-parallel on R devices, simulated in one process.

What the official facebookresearch/moco does under torch.distributed with R processes (one
device each), written out for tests of `mpirun -np R moco-train align` (DESIGN §4, §6). The
model itself — encoders, momentum update, enqueue — is moco_reference.MoCoReference; this
file only adds what DDP and the official `_batch_shuffle_ddp` / `_batch_unshuffle_ddp` /
`concat_all_gather` do around it. Each simulated device holds its own replica of the whole
MoCo module (main_moco.py wraps the whole module in DistributedDataParallel), with plain
nn.BatchNorm2d, so every device normalizes over its own sub-batch (per-device BN).

One step (main_moco.py train() + builder.py MoCo.forward), per device r of R, n = N / R:
- DDP forward pre-step, broadcast_buffers=True: every replica gets rank 0's buffers (BN
  running stats and num_batches_tracked of encoder_q AND encoder_k, queue, queue_ptr). So the
  BN running stats that survive a step are rank 0's, i.e. they evolve from rank 0's sub-batch
  only; the other ranks' own updates are overwritten at the next forward (and main_moco.py
  saves checkpoints from rank 0).
- q_r = normalize(encoder_q(im_q[r n:(r+1) n])), train-mode BN over device r's rows.
- no grad: momentum update of encoder_k's parameters; `_batch_shuffle_ddp`: x_all =
  all-gather of im_k (rank order = the global batch), idx_shuffle = rank 0's permutation
  (here: `perm`, broadcast), device r takes x_all[idx_shuffle.view(R, -1)[r]];
  k = normalize(encoder_k(that)), train-mode BN over the shuffled sub-batch;
  `_batch_unshuffle_ddp`: all-gather of k, device r takes rows idx_unshuffle.view(R, -1)[r]
  with idx_unshuffle = argsort(idx_shuffle) — its own samples' keys, in its own order.
- logits_r = [q_r·k_r, q_r·queue] / T with the queue as it was before this step's enqueue;
  loss_r = cross-entropy over device r's rows (mean over n).
- `_dequeue_and_enqueue`: keys = all-gather of k_r (global order), written at queue_ptr on
  every device; queue_ptr += N.
- backward of loss_r on each device; DDP all-reduces the gradients to their mean over
  devices; SGD (momentum, coupled weight decay) on every replica, so parameters stay equal.

The returned loss is the mean of the per-device losses (= the mean over the global batch);
logits, q, k are every device's rows in global order; grads are the averaged gradients.

    ref = DDPMoCoReference(model, ranks, lr, momentum, weight_decay)
    loss, logits, q, k, grads = ref.step(im_q, im_k, perm)       # global batch, perm [N]
    ref.state_dict()      # rank 0's state: what a checkpoint (and OUT) holds
"""
import copy

import torch
import torch.nn.functional as F

from moco_reference import SplitBatchNorm, make_optimizer


def check_perm(perm, n):
    """perm must be a permutation of 0..n-1 (the official one comes from torch.randperm)."""
    perm = torch.as_tensor(perm)
    if perm.dim() != 1 or perm.numel() != n or not torch.equal(torch.sort(perm).values,
                                                               torch.arange(n)):
        raise ValueError(f"perm is not a permutation of 0..{n - 1}: {perm.tolist()}")
    return perm.long()


class DDPMoCoReference:
    def __init__(self, model, ranks, lr, momentum, weight_decay):
        """model: a moco_reference.MoCoReference with plain BatchNorm2d (bn_splits 1), in the
        state every device starts from (DDP broadcasts rank 0's parameters and buffers at
        construction). It is copied, not modified."""
        if any(isinstance(mod, SplitBatchNorm) for mod in model.modules()):
            raise ValueError("each simulated device needs plain BatchNorm2d (bn_splits 1)")
        if ranks < 1:
            raise ValueError("ranks must be at least 1")
        self.ranks = ranks
        self.replicas = [copy.deepcopy(model) for _ in range(ranks)]
        self.optimizers = [make_optimizer(rep, lr, momentum, weight_decay)
                           for rep in self.replicas]

    @torch.no_grad()
    def broadcast_buffers(self):
        """DDP's broadcast_buffers: every replica's buffers := rank 0's."""
        src = dict(self.replicas[0].named_buffers())
        for rep in self.replicas[1:]:
            for name, buf in rep.named_buffers():
                buf.copy_(src[name])

    def step(self, im_q, im_k, perm):
        R = self.ranks
        N = im_q.shape[0]
        if N % R != 0:
            raise ValueError(f"the global batch ({N}) must be divisible by the ranks ({R})")
        n = N // R
        perm = check_perm(perm, N)
        reps = self.replicas
        for rep in reps:
            rep.train()
        self.broadcast_buffers()

        # query encoder: device r on its own rows
        qs = [F.normalize(rep.encoder_q(im_q[r * n:(r + 1) * n]), dim=1)
              for r, rep in enumerate(reps)]
        with torch.no_grad():
            for rep in reps:
                rep._momentum_update_key_encoder()
            # _batch_shuffle_ddp
            x_all = torch.cat([im_k[r * n:(r + 1) * n] for r in range(R)])  # concat_all_gather
            idx_shuffle = perm  # rank 0's torch.randperm, broadcast to all
            idx_unshuffle = torch.argsort(idx_shuffle)
            k_shuffled = [F.normalize(rep.encoder_k(x_all[idx_shuffle.view(R, -1)[r]]), dim=1)
                          for r, rep in enumerate(reps)]
            # _batch_unshuffle_ddp
            k_gather = torch.cat(k_shuffled)  # concat_all_gather
            ks = [k_gather[idx_unshuffle.view(R, -1)[r]] for r in range(R)]

        logits = []
        for rep, q, k in zip(reps, qs, ks):
            l_pos = torch.einsum("nc,nc->n", [q, k]).unsqueeze(-1)
            l_neg = torch.einsum("nc,ck->nk", [q, rep.queue.clone().detach()])
            logits.append(torch.cat([l_pos, l_neg], dim=1) / rep.T)
        keys = torch.cat(ks)  # _dequeue_and_enqueue's concat_all_gather: global order
        for rep in reps:
            rep._dequeue_and_enqueue(keys)

        # each device's loss and gradient; DDP all-reduce: the mean over devices
        losses, grads = [], []
        for rep, lg in zip(reps, logits):
            loss = F.cross_entropy(lg, torch.zeros(lg.shape[0], dtype=torch.long))
            params = list(rep.encoder_q.parameters())
            grads.append(torch.autograd.grad(loss, params))
            losses.append(loss.detach())
        mean_grads = [sum(g[i] for g in grads) / R for i in range(len(grads[0]))]
        for rep, opt in zip(reps, self.optimizers):
            opt.zero_grad()
            for p, g in zip(rep.encoder_q.parameters(), mean_grads):
                p.grad = g.detach().clone()
            opt.step()

        names = [name for name, _ in reps[0].encoder_q.named_parameters()]
        return (float(sum(losses) / R), torch.cat(logits).detach(),
                torch.cat(qs).detach(), keys.detach(),
                {name: g.detach().clone() for name, g in zip(names, mean_grads)})

    def state_dict(self, rank=0):
        """Replica `rank`'s state as it is now. Rank 0's is the run's state (checkpoints are
        written by rank 0; the next forward would give every rank rank 0's buffers)."""
        return {k: v.detach().clone() for k, v in self.replicas[rank].state_dict().items()}


def interleave_for_splits(ranks, n):
    """The single-device batch order under which SplitBatchNorm(ranks) groups the same samples
    as `ranks` devices with n rows each. SplitBatchNorm puts sample j in split j % splits
    (input.view(-1, C * splits, H, W)); device r holds contiguous rows [r n, (r+1) n). With
    sig[j] = (j % R) n + j // R, single-device row j is global row sig[j], so split s holds
    exactly device s's rows. Returns (sig, perm_map) where perm_map(perm) gives the
    single-device permutation that sends the same images to the same BN groups:
    argsort(sig)[perm[sig]]."""
    j = torch.arange(ranks * n)
    sig = (j % ranks) * n + j // ranks
    inv = torch.argsort(sig)

    def perm_map(perm):
        perm = torch.as_tensor(perm).long()
        return inv[perm[sig]]

    return sig, perm_map
