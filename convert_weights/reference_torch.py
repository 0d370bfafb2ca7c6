"""Our PyTorch rendering of the reference network, written from its published description.

Module names reproduce the official checkpoint's keys exactly, so the official state
dict loads with ``strict=True``: that is the proof it is the same architecture. Used
only for parity tests and benchmarks (needs torch). Layout NCHW.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class WNConv2d(nn.Module):
    """Conv2d with weight norm over the output axis: ``w = g * v / ||v||``, 'same' padding."""

    def __init__(
        self, cin: int, cout: int, k: int, groups: int = 1, bias: bool = True, a: float = 1.0
    ):
        super().__init__()
        self.groups, self.pad = groups, (k - 1) // 2
        v = torch.empty(cout, cin // groups, k, k)
        nn.init.kaiming_normal_(v, a=a, mode="fan_in", nonlinearity="leaky_relu")
        self.weight_g = nn.Parameter(v.flatten(1).norm(dim=1).reshape(cout, 1, 1, 1))
        self.weight_v = nn.Parameter(v)
        if bias:
            bound = 1.0 / math.sqrt((cin // groups) * k * k)
            self.bias = nn.Parameter(torch.empty(cout).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def weight(self) -> torch.Tensor:
        v = self.weight_v
        norm = v.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
        return v * (self.weight_g / norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.pad, groups=self.groups)


class DenseLayer(nn.Module):
    """x -> cat[x, conv(act(x))]; ``conv`` is Sequential([conv]) or Sequential([act, conv])."""

    def __init__(self, cin: int, growth: int, slope: float | None):
        super().__init__()
        a = 1.0 if slope == 1.0 else 0.2
        conv = WNConv2d(cin, growth, 3, bias=False, a=a)
        layers = [conv] if slope is None else [nn.LeakyReLU(slope), conv]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(x)], dim=1)


class RDB(nn.Module):
    """Residual dense block: dense layers, 1x1 conv back to ``features``, plus the input."""

    def __init__(self, features: int, growth: int, n: int):
        super().__init__()
        slopes = [None] + [0.2] * (n - 2) + [1.0]
        self.dense_layers = nn.Sequential(
            *[DenseLayer(features + i * growth, growth, s) for i, s in enumerate(slopes)]
        )
        self.conv_1x1 = nn.Sequential(WNConv2d(features + n * growth, features, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_1x1(self.dense_layers(x)) + x


class ResBlock(nn.Module):
    """conv2(lrelu(conv1(x))) + x."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Sequential(WNConv2d(c, c, 3, a=0.2), nn.LeakyReLU(0.2))
        self.conv2 = nn.Sequential(WNConv2d(c, c, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """View channels as (groups, C/groups), transpose, flatten (NCHW)."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ReferenceNet(nn.Module):
    """The published network, NCHW: (B, 1, H, W) -> (B, 3, H, W) in [0, 1]."""

    def __init__(self, features: int = 64, growth: int = 32, dense_layers=(4, 5, 5)):
        super().__init__()
        self.conv32x = nn.Sequential(
            nn.Sequential(WNConv2d(1024, 128, 3, groups=128)),
            nn.Sequential(WNConv2d(128, features, 3)),
        )
        for i, n in enumerate(dense_layers):
            setattr(self, f"RDB{i + 1}", RDB(features, growth, n))
        self.n_blocks = len(dense_layers)
        self.rdball = nn.Sequential(WNConv2d(self.n_blocks * features, features, 1, bias=False))
        self.conv_rdb8x = nn.Sequential(WNConv2d(features // 16, 64, 3))
        self.resblock8x = ResBlock(64)
        self.conv32_8_cat = nn.Sequential(
            nn.Sequential(WNConv2d(128, 32, 3, groups=4)),
            nn.Sequential(WNConv2d(32, 192, 3, a=0.2), nn.LeakyReLU(0.2)),
        )
        self.conv2x = nn.Sequential(WNConv2d(4, 12, 5))
        self.conv_2_8_32 = nn.Sequential(WNConv2d(24, 12, 5))

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        low2x = F.pixel_unshuffle(low, 2)
        x32 = self.conv32x(F.pixel_unshuffle(low2x, 16))
        outs, r = [], x32
        for i in range(self.n_blocks):
            r = getattr(self, f"RDB{i + 1}")(r)
            outs.append(r)
        r8 = self.rdball(torch.cat(outs, dim=1)) + x32
        r8 = self.conv_rdb8x(F.pixel_shuffle(r8, 4))
        l8 = self.resblock8x(F.pixel_unshuffle(low2x, 4))
        c = self.conv32_8_cat(channel_shuffle(torch.cat([l8, r8], dim=1), 2))
        c = F.pixel_shuffle(c, 4)
        y = torch.cat([self.conv2x(low2x), c], dim=1)
        return torch.clamp(F.pixel_shuffle(self.conv_2_8_32(y), 2), 0.0, 1.0)


def reference_from_state_dict(state_dict: dict) -> ReferenceNet:
    """A `ReferenceNet` holding ``state_dict`` (NumPy arrays or tensors), loaded strictly."""
    from jaxdark.weights.convert import infer_config

    cfg = infer_config(state_dict)
    net = ReferenceNet(cfg["features"], cfg["growth"], tuple(cfg["dense_layers"]))
    tensors = {k: torch.as_tensor(v) for k, v in state_dict.items()}
    net.load_state_dict(tensors, strict=True)
    return net.eval()
