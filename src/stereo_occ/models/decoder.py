"""The Occupancy Networks decoder with conditional batch norm (Mescheder et al. 2019).

A point's coordinates go through a shared per-point MLP (the paper writes its layers as 1x1
convolutions; ``nn.Linear`` on the last axis is the same map), and the image enters only through
*conditional batch norm*: after normalising the features, each block scales and shifts them with a
gamma and beta that a linear map predicts from the code. That is how one network represents a
different occupancy function per image.

Initialisation follows the paper: every CBN starts as the identity (gamma = 1, beta = 0 whatever the
code) and each residual branch's last layer starts at zero, so training begins from a plain shallow
MLP and deepens smoothly.

Inference takes a shorter path with the same result (:meth:`OccupancyDecoder.forward`): in eval mode
a CBN is a per-channel scale and shift fixed by the code, so it is computed once per code, and the
one that follows ``fc_0`` in each block is folded into ``fc_0``'s weights. Mesh extraction asks
hundreds of thousands of points per code, and the normalisation's separate passes over memory cost
more than the matrix products (measured in bench/bench_extraction.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConditionalBatchNorm(nn.Module):
    """BatchNorm over ``(B, N, C)`` point features whose affine part comes from the code."""

    def __init__(self, code_dim: int, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(channels, affine=False)
        self.gamma = nn.Linear(code_dim, channels)
        self.beta = nn.Linear(code_dim, channels)
        nn.init.zeros_(self.gamma.weight)
        nn.init.ones_(self.gamma.bias)
        nn.init.zeros_(self.beta.weight)
        nn.init.zeros_(self.beta.bias)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        b, n, c = x.shape
        # Statistics over every point of every sample, per channel (BatchNorm1d over B*N rows).
        normed = self.norm(x.reshape(b * n, c)).view(b, n, c)
        return self.gamma(code).unsqueeze(1) * normed + self.beta(code).unsqueeze(1)

    def affine(self, code: Tensor) -> tuple[Tensor, Tensor]:
        """Eval mode as ``x * scale + shift`` with per-sample ``(B, C)`` scale and shift."""
        norm = self.norm
        scale = self.gamma(code) * torch.rsqrt(norm.running_var + norm.eps)
        return scale, self.beta(code) - scale * norm.running_mean


class ConditionalResBlock(nn.Module):
    """CBN -> ReLU -> fc -> CBN -> ReLU -> fc, plus the identity."""

    def __init__(self, code_dim: int, hidden: int) -> None:
        super().__init__()
        self.bn_0 = ConditionalBatchNorm(code_dim, hidden)
        self.fc_0 = nn.Linear(hidden, hidden)
        self.bn_1 = ConditionalBatchNorm(code_dim, hidden)
        self.fc_1 = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.fc_1.weight)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        h = self.fc_0(F.relu(self.bn_0(x, code)))
        return x + self.fc_1(F.relu(self.bn_1(h, code)))

    def folded(self, code: Tensor) -> tuple[Tensor, ...]:
        """Eval-mode parameters for :meth:`forward_folded`: bn_0 as an affine map, bn_1 inside fc_0."""
        s0, t0 = self.bn_0.affine(code)
        s1, t1 = self.bn_1.affine(code)
        weight = s1.unsqueeze(2) * self.fc_0.weight  # (B, C_out, C_in): bn_1(fc_0(h)) in one product
        bias = s1 * self.fc_0.bias + t1
        return s0.unsqueeze(1), t0.unsqueeze(1), weight.transpose(1, 2), bias.unsqueeze(1)

    def forward_folded(self, x: Tensor, params: tuple[Tensor, ...]) -> Tensor:
        s0, t0, weight_t, bias = params
        h = torch.addcmul(t0, x, s0).relu_()
        h = torch.baddbmm(bias, h, weight_t).relu_()
        return torch.addmm(x.flatten(0, 1), h.flatten(0, 1), self.fc_1.weight.t(), beta=1.0).add_(
            self.fc_1.bias
        ).view_as(x)


class OccupancyDecoder(nn.Module):
    """``(B, N, 3)`` points and a ``(B, code_dim)`` code -> ``(B, N)`` occupancy logits.

    The paper's sizes are the defaults: hidden 256, 5 blocks, code 512.
    """

    def __init__(self, code_dim: int = 512, hidden_dim: int = 256, n_blocks: int = 5, point_dim: int = 3) -> None:
        super().__init__()
        self.fc_p = nn.Linear(point_dim, hidden_dim)
        self.blocks = nn.ModuleList(ConditionalResBlock(code_dim, hidden_dim) for _ in range(n_blocks))
        self.bn = ConditionalBatchNorm(code_dim, hidden_dim)
        self.fc_out = nn.Linear(hidden_dim, 1)

    def forward(self, points: Tensor, code: Tensor) -> Tensor:
        if not self.training:
            return self._forward_folded(points, code)
        net = self.fc_p(points)
        for block in self.blocks:
            net = block(net, code)
        return self.fc_out(F.relu(self.bn(net, code))).squeeze(-1)

    def _forward_folded(self, points: Tensor, code: Tensor) -> Tensor:
        """The eval-mode forward with every CBN reduced to per-code affine maps (module docstring)."""
        net = self.fc_p(points)
        for block in self.blocks:
            net = block.forward_folded(net, block.folded(code))
        scale, shift = self.bn.affine(code)
        return self.fc_out(torch.addcmul(shift.unsqueeze(1), net, scale.unsqueeze(1)).relu_()).squeeze(-1)
