"""The speed analysis's fast-convolution algorithm computes the same convolution (so its timing is a fair one)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmarks.transform_conv import TransformConv1d, from_blocks, to_blocks


@pytest.mark.parametrize(("cin", "cout", "length"), [(257, 16, 32), (8, 12, 16), (5, 3, 64)])
def test_equals_direct_convolution(cin, cout, length):
    torch.manual_seed(0)
    weight, bias = torch.randn(cout, cin, 7), torch.randn(cout)
    conv = TransformConv1d(weight, bias, length)
    x = torch.randn(cin, 5 * conv.outputs)
    x[:, 2 * conv.outputs - 1] += 10.0  # a spike at a block edge must reach both blocks
    want = F.conv1d(x[None], weight, bias, padding=3)[0]
    got = from_blocks(conv(to_blocks(x, conv.outputs)))
    assert torch.allclose(got, want, rtol=0, atol=1e-5 * want.abs().max().item())


def test_rejects_odd_or_short_blocks():
    with pytest.raises(ValueError, match="block length 7 must be even and longer than the kernel"):
        TransformConv1d(torch.zeros(1, 1, 7), torch.zeros(1), 7)
