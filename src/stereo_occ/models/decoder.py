"""The Occupancy Networks decoder with conditional batch norm (Mescheder et al. 2019).

A point's coordinates go through a shared per-point MLP (the paper writes its layers as 1x1
convolutions; ``nn.Linear`` on the last axis is the same map), and the image enters only through
*conditional batch norm*: after normalising the features, each block scales and shifts them with a
gamma and beta that a linear map predicts from the code. That is how one network represents a
different occupancy function per image.

Initialisation follows the paper: every CBN starts as the identity (gamma = 1, beta = 0 whatever the
code) and each residual branch's last layer starts at zero, so training begins from a plain shallow
MLP and deepens smoothly.
"""

from __future__ import annotations

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
        net = self.fc_p(points)
        for block in self.blocks:
            net = block(net, code)
        return self.fc_out(F.relu(self.bn(net, code))).squeeze(-1)
