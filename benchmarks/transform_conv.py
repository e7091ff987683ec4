"""A transform-domain 1-D convolution (overlap-save with a real DFT done as small GEMMs), for the speed analysis.

Not used by the library: `benchmarks/gemm_bound.py` times it against torch's direct convolution on the encoder's
six layer shapes to show how much a fast-convolution algorithm could take off the arithmetic floor on this CPU.

The frames are cut into blocks of M = L - K + 1 outputs. Each block's L inputs (M frames plus K - 1 frames of
context) go through a real DFT of length L (an L x L matrix: DC and Nyquist share the first complex slot, the other
L/2 - 1 bins are (re, im) pairs), the convolution becomes one (2 Cout x 2 Cin) real matrix per slot (a complex
multiply written out), and an M x L matrix takes the slots back to the M valid outputs. Per output frame and
(Cout, Cin) pair that is 4 (L/2) / M multiply-adds instead of K: 2.46 instead of 7 at L = 32, K = 7, plus the two
transforms, which are shared by all output (input) channels.
"""

from __future__ import annotations

import math

import torch


def real_dft(length: int) -> torch.Tensor:
    """(L, L) float64: rows (re_0, re_L/2), then (re_f, im_f) for f = 1 .. L/2 - 1."""
    n = torch.arange(length, dtype=torch.float64)
    rows = [torch.ones(length, dtype=torch.float64), torch.cos(math.pi * n)]
    for f in range(1, length // 2):
        angle = 2 * math.pi * f * n / length
        rows += [torch.cos(angle), -torch.sin(angle)]
    return torch.stack(rows)


def slot_weights(weight: torch.Tensor, length: int) -> torch.Tensor:
    """Conv1d weight (Cout, Cin, K) -> (L/2, 2 Cout, 2 Cin) float32 per-slot matrices of the cross-correlation."""
    cout, cin, _ = weight.shape
    spectrum = torch.fft.rfft(weight.double(), n=length, dim=-1).conj()  # correlation = product with the conjugate
    half = length // 2
    slots = torch.zeros(half, 2 * cout, 2 * cin, dtype=torch.float64)
    slots[0, :cout, :cin] = spectrum[..., 0].real
    slots[0, cout:, cin:] = spectrum[..., half].real
    for f in range(1, half):
        re, im = spectrum[..., f].real, spectrum[..., f].imag
        slots[f, :cout, :cin], slots[f, :cout, cin:] = re, -im
        slots[f, cout:, :cin], slots[f, cout:, cin:] = im, re
    return slots.float()


class TransformConv1d:
    """`F.conv1d(x, weight, bias, padding=K // 2)` on frames laid out in blocks: (M, C, blocks) -> (M, Cout, blocks)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, length: int = 32):
        kernel = weight.shape[-1]
        if length % 2 or length <= kernel:
            raise ValueError(f"block length {length} must be even and longer than the kernel ({kernel})")
        self.length, self.kernel = length, kernel
        self.outputs = length - kernel + 1
        dft = real_dft(length)
        self.forward_dft = dft.float()
        self.inverse_dft = torch.linalg.inv(dft)[: self.outputs].float().contiguous()
        self.slots = slot_weights(weight, length)
        self.bias = bias.detach().float()
        self.out_channels = weight.shape[0]

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """(M, C, blocks) -> (L, C, blocks): each block with K // 2 frames of its neighbours (zeros at the ends)."""
        m, channels, blocks = x.shape
        pad = self.kernel // 2
        out = x.new_zeros(self.length, channels, blocks)
        out[pad : pad + m] = x
        out[:pad, :, 1:] = x[m - pad :, :, :-1]
        out[pad + m : pad + m + pad, :, :-1] = x[:pad, :, 1:]
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        inputs = self.context(x)
        length, channels, blocks = inputs.shape
        spectra = torch.mm(self.forward_dft, inputs.view(length, channels * blocks)).view(length // 2, 2 * channels, blocks)
        products = torch.bmm(self.slots, spectra)  # (L/2, 2 Cout, blocks)
        y = torch.mm(self.inverse_dft, products.view(length, self.out_channels * blocks))
        return y.view(self.outputs, self.out_channels, blocks).add_(self.bias[:, None])


def to_blocks(x: torch.Tensor, outputs: int) -> torch.Tensor:
    """(C, frames) with frames a multiple of `outputs` -> (outputs, C, blocks)."""
    channels, frames = x.shape
    return x.view(channels, frames // outputs, outputs).permute(2, 0, 1).contiguous()


def from_blocks(y: torch.Tensor) -> torch.Tensor:
    """(outputs, C, blocks) -> (C, frames)."""
    outputs, channels, blocks = y.shape
    return y.permute(1, 2, 0).reshape(channels, blocks * outputs)
