"""Vector quantizer with an EMA-updated codebook, k-means initialisation and cosine or Euclidean distance.

Numerics follow the official VQScore code (a pinned copy of lucidrains' vector-quantize-pytorch):
- cosine: inputs and codewords are L2-normalised, similarity is their dot product, zq is the unit codeword;
- euclidean: similarity is the negative Euclidean distance, zq is the raw codeword;
- exact ties go to the lowest index (`torch.argmax` returns the first maximum).
Tensors here are frames-last-dim: z is (batch, frames, dim).
Under data-parallel training (torch.distributed initialised, several processes) the codebook stays one codebook:
rank 0's k-means initialisation is broadcast, and every EMA step sums the code counts and sums of all ranks, so each
rank applies the same update, the one a single process would make from the whole global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

DISTANCES = ("cosine", "euclidean")


@dataclass
class Quantized:
    """Result of quantizing z: (batch, frames, dim)."""

    zq: torch.Tensor  # (batch, frames, dim); straight-through to z in training
    indices: torch.Tensor  # (batch, frames) int64
    commitment: torch.Tensor  # scalar, MSE(sg(zq), z) over valid frames; 0 outside training


def data_parallel() -> bool:
    """Whether this process is one of several training ranks."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def l2norm(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, p=2, dim=-1)


def laplace_smoothing(counts: torch.Tensor, eps: float) -> torch.Tensor:
    return (counts + eps) / (counts.sum() + counts.numel() * eps)


def similarity(x: torch.Tensor, codebook: torch.Tensor, distance: str) -> torch.Tensor:
    """x: (n, dim) already transformed, codebook: (size, dim) -> (n, size); larger is nearer."""
    if distance == "cosine":
        return x @ codebook.t()
    return -torch.cdist(x, codebook, p=2)


def kmeans(samples: torch.Tensor, num_clusters: int, iters: int, distance: str, generator: torch.Generator | None = None):
    """Lloyd's k-means on samples (n, dim) -> (means (k, dim), counts (k,)).

    Initial means are drawn without replacement when there are enough samples, with replacement otherwise
    (then duplicated means lose all their members and keep their initial value, as in the official code).
    Clusters that end up empty keep their previous mean.
    """
    n = samples.shape[0]
    if n >= num_clusters:
        start = torch.randperm(n, generator=generator, device=samples.device)[:num_clusters]
    else:
        start = torch.randint(0, n, (num_clusters,), generator=generator, device=samples.device)
    means = samples[start]
    counts = torch.zeros(num_clusters, dtype=torch.long, device=samples.device)
    for _ in range(iters):
        buckets = similarity(samples, means, distance).argmax(dim=-1)
        counts = torch.bincount(buckets, minlength=num_clusters)
        sums = torch.zeros_like(means).index_add_(0, buckets, samples)
        new_means = sums / counts.clamp(min=1)[:, None].to(samples.dtype)
        if distance == "cosine":
            new_means = l2norm(new_means)
        means = torch.where((counts == 0)[:, None], means, new_means)
    return means, counts


class VectorQuantizer(nn.Module):
    """One codebook of `size` x `dim`, updated by exponential moving averages of assigned frames."""

    def __init__(self, size: int, dim: int, distance: str, decay: float = 0.8, eps: float = 1e-5, kmeans_iters: int = 10):
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; expected one of {DISTANCES}")
        self.size, self.dim, self.distance = size, dim, distance
        self.decay, self.eps, self.kmeans_iters = decay, eps, kmeans_iters
        self.register_buffer("codebook", torch.zeros(size, dim))
        self.register_buffer("codebook_avg", torch.zeros(size, dim))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def extra_repr(self) -> str:
        return f"size={self.size}, dim={self.dim}, distance={self.distance}, decay={self.decay}"

    def transform(self, z: torch.Tensor) -> torch.Tensor:
        return l2norm(z) if self.distance == "cosine" else z

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """z: (batch, frames, dim) raw -> (batch, frames, size) similarities (the official 'distance')."""
        x = self.transform(z)
        return similarity(x.reshape(-1, self.dim), self.codebook, self.distance).reshape(*z.shape[:-1], self.size)

    @torch.no_grad()
    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Codebook index per frame: one matmul (or cdist) and an argmax, no one-hot matrix."""
        return self.logits(z).argmax(dim=-1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return F.embedding(indices, self.codebook)

    @torch.no_grad()
    def init_from(self, samples: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """k-means initialisation from transformed frames (n, dim); a no-op once initialised."""
        if bool(self.initialized):
            return
        means, counts = kmeans(samples.float(), self.size, self.kmeans_iters, self.distance, generator)
        self.codebook.copy_(means)
        self.codebook_avg.copy_(means * counts[:, None].to(means.dtype))
        self.cluster_size.copy_(counts.to(means.dtype))
        if data_parallel():
            for buffer in (self.codebook, self.codebook_avg, self.cluster_size):
                dist.broadcast(buffer, src=0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def ema_update(self, samples: torch.Tensor, indices: torch.Tensor) -> None:
        """One EMA step from transformed frames (n, dim) and their codes (n,)."""
        counts = torch.bincount(indices, minlength=self.size).to(samples.dtype)
        sums = torch.zeros_like(self.codebook).index_add_(0, indices, samples)
        if data_parallel():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.cluster_size.lerp_(counts, 1 - self.decay)
        self.codebook_avg.lerp_(sums, 1 - self.decay)
        smoothed = laplace_smoothing(self.cluster_size, self.eps) * self.cluster_size.sum()
        codebook = self.codebook_avg / smoothed[:, None]
        self.codebook.copy_(l2norm(codebook) if self.distance == "cosine" else codebook)

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None, update: bool = True) -> Quantized:
        """z: (batch, frames, dim); mask: (batch, frames) bool or None.

        In training mode (and with `update`), the codebook is k-means initialised on the first call and
        EMA-updated from the valid frames; zq is straight-through and the commitment loss is returned.
        """
        x = self.transform(z.float())
        valid = x.reshape(-1, self.dim) if mask is None else x[mask]
        if self.training and update:
            self.init_from(valid.detach())
        indices = similarity(x.reshape(-1, self.dim), self.codebook, self.distance).argmax(dim=-1).reshape(z.shape[:-1])
        zq = self.lookup(indices)
        if not self.training:
            return Quantized(zq, indices, x.new_zeros(()))
        valid_idx = indices.reshape(-1) if mask is None else indices[mask]
        if update:
            self.ema_update(valid.detach(), valid_idx)
        zq_valid = zq.reshape(-1, self.dim) if mask is None else zq[mask]
        commitment = F.mse_loss(zq_valid.detach(), valid)
        return Quantized(x + (zq - x).detach(), indices, commitment)

    def training_logits(self, z: torch.Tensor) -> torch.Tensor:
        """`logits` for back-propagation. The Euclidean distance is expanded (||x||^2 - 2 x.c + ||c||^2, as cdist
        itself computes it for large inputs) because cdist's backward is an order of magnitude slower; the floor
        keeps the square root's gradient finite where z sits on a codeword."""
        if self.distance == "cosine":
            return self.logits(z)
        x = z.reshape(-1, self.dim)
        squared = x.pow(2).sum(-1, keepdim=True) - 2 * x @ self.codebook.t() + self.codebook.pow(2).sum(-1)[None]
        return -squared.clamp_min(1e-12).sqrt().reshape(*z.shape[:-1], self.size)

    def cross_entropy(self, z: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy of the similarities of z (batch, frames, dim) against given codes (batch, frames).

        Used by self-distillation: the teacher's codes are the targets, gradients flow into z only.
        """
        logits = self.training_logits(z)
        if mask is not None:
            targets = targets.masked_fill(~mask, -1)
        return F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-1)
