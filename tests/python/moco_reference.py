"""moco_reference.py — a PyTorch MoCo step written from the official semantics, for tests.

Follows facebookresearch/moco (moco/builder.py, main_moco.py) and its CIFAR-10 demo:
- encoders: torchvision ResNet with num_classes=dim; v2 replaces fc by
  Sequential(Linear(feat, feat), ReLU(), fc); optional CIFAR stem (3x3/1 conv1, no max pool);
  SplitBatchNorm (the demo's) in both encoders when bn_splits > 1;
- forward: q = normalize(encoder_q(im_q)); no grad: momentum update of encoder_k's
  parameters, then k = normalize(encoder_k(im_k[perm])) unshuffled with argsort(perm);
  logits = cat([q·k, q·queue]) / T, labels 0; the keys are enqueued after the logits;
- loss = CrossEntropyLoss; optimizer = torch.optim.SGD(lr, momentum, weight_decay) over
  encoder_q's parameters (main_moco.py passes all parameters; encoder_k's never have a grad).
"""
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class SplitBatchNorm(nn.BatchNorm2d):
    """The official CIFAR demo's BatchNorm emulating `num_splits` devices: each sub-batch
    (samples i with i % num_splits == s, via view(-1, C*splits, H, W)) is normalized with its
    own statistics; running stats are the mean of the per-split updates."""

    def __init__(self, num_features, num_splits, **kw):
        super().__init__(num_features, **kw)
        self.num_splits = num_splits

    def forward(self, input):
        N, C, H, W = input.shape
        if self.training or not self.track_running_stats:
            running_mean_split = self.running_mean.repeat(self.num_splits)
            running_var_split = self.running_var.repeat(self.num_splits)
            outcome = F.batch_norm(
                input.view(-1, C * self.num_splits, H, W), running_mean_split, running_var_split,
                self.weight.repeat(self.num_splits), self.bias.repeat(self.num_splits),
                True, self.momentum, self.eps).view(N, C, H, W)
            self.running_mean.data.copy_(running_mean_split.view(self.num_splits, C).mean(dim=0))
            self.running_var.data.copy_(running_var_split.view(self.num_splits, C).mean(dim=0))
            return outcome
        return F.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                            False, self.momentum, self.eps)


def build_encoder(arch, dim, mlp, cifar_stem, bn_splits):
    norm_layer = partial(SplitBatchNorm, num_splits=bn_splits) if bn_splits > 1 else nn.BatchNorm2d
    net = getattr(torchvision.models, arch)(num_classes=dim, norm_layer=norm_layer)
    if cifar_stem:
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    if mlp:
        dim_mlp = net.fc.weight.shape[1]
        net.fc = nn.Sequential(nn.Linear(dim_mlp, dim_mlp), nn.ReLU(), net.fc)
    return net


@torch.no_grad()
def randomize_state(model, gen, params=True):
    """Non-trivial BN parameters and buffers (a fresh model has 1/0 everywhere, which would
    hide mistakes in how they are loaded and used)."""
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            if params:
                mod.weight.copy_(1 + 0.2 * torch.randn(c, generator=gen))
                mod.bias.copy_(0.1 * torch.randn(c, generator=gen))
            mod.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
            mod.running_var.copy_(1 + 0.5 * torch.rand(c, generator=gen))
            mod.num_batches_tracked.fill_(5)


class MoCoReference(nn.Module):
    def __init__(self, arch="resnet18", dim=128, K=64, m=0.99, T=0.1, mlp=False,
                 cifar_stem=True, bn_splits=1):
        super().__init__()
        self.K, self.m, self.T = K, m, T
        self.encoder_q = build_encoder(arch, dim, mlp, cifar_stem, bn_splits)
        self.encoder_k = build_encoder(arch, dim, mlp, cifar_stem, bn_splits)
        for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            pk.data.copy_(pq.data)
            pk.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(dim, K), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _momentum_update_key_encoder(self):
        for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            pk.data = pk.data * self.m + pq.data * (1. - self.m)

    @torch.no_grad()
    def _dequeue_and_enqueue(self, keys):
        n = keys.shape[0]
        ptr = int(self.queue_ptr)
        assert self.K % n == 0
        self.queue[:, ptr:ptr + n] = keys.T
        self.queue_ptr[0] = (ptr + n) % self.K

    def forward(self, im_q, im_k, perm):
        q = F.normalize(self.encoder_q(im_q), dim=1)
        with torch.no_grad():
            self._momentum_update_key_encoder()
            idx_unshuffle = torch.argsort(perm)
            k = F.normalize(self.encoder_k(im_k[perm]), dim=1)
            k = k[idx_unshuffle]
        l_pos = torch.einsum("nc,nc->n", [q, k]).unsqueeze(-1)
        l_neg = torch.einsum("nc,ck->nk", [q, self.queue.clone().detach()])
        logits = torch.cat([l_pos, l_neg], dim=1) / self.T
        labels = torch.zeros(logits.shape[0], dtype=torch.long)
        self._dequeue_and_enqueue(k)
        return logits, labels, q.detach(), k


def make_optimizer(model, lr, momentum, weight_decay):
    return torch.optim.SGD(model.encoder_q.parameters(), lr, momentum=momentum,
                           weight_decay=weight_decay)


def train_step(model, optimizer, im_q, im_k, perm):
    """One MoCo step as main_moco.py's train(); returns loss, logits, q, k and the gradients
    of encoder_q (named as in its state_dict) before the SGD update."""
    model.train()
    logits, labels, q, k = model(im_q, im_k, perm)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.encoder_q.named_parameters()}
    optimizer.step()
    return loss.item(), logits.detach(), q, k, grads
