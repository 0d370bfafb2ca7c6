"""Our PyTorch renderings of DID, SGN and LLPackNet, written from their layer tables.

The zoo's other networks (`jaxdark.models.did`, `.sgn`, `.llpacknet`) have no official
weights; these renderings are the parity check that our layers mean what the reference
definitions' layers mean (tests/models/test_zoo_parity.py). Module names reproduce the
reference definitions' state-dict keys, so a state dict saved by the authors' training
scripts loads into them with ``strict=True``. Layout NCHW. Needs torch.

`state_dict_from_jax(model)` turns a jaxdark model of the three into such a state dict.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convert_weights.reference_torch import WNConv2d


def _conv(cin: int, cout: int, k: int = 3, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


# --------------------------------------------------------------------------- DID


class DIDSqueezeExcite(nn.Module):
    """Dense C -> C/16 -> C (the reference constructs it in every block, never calls it)."""

    def __init__(self, c: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, c // 16), nn.ReLU(), nn.Linear(c // 16, c))


class DIDResBlock(nn.Module):
    """conv3x3, LeakyReLU(0.2), conv3x3, plus the input."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_conv(c, c), nn.LeakyReLU(0.2), _conv(c, c))
        self.squeeze = DIDSqueezeExcite(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class DIDTorch(nn.Module):
    """Unshuffle x2, head conv, residual blocks, conv (+ head), conv x4, shuffle x2, conv."""

    def __init__(self, blocks: int = 32, c: int = 64):
        super().__init__()
        self.head = nn.Sequential(_conv(4, c))
        self.body = nn.Sequential(*[DIDResBlock(c) for _ in range(blocks)], _conv(c, c))
        self.tail = nn.Sequential(nn.Sequential(_conv(c, 4 * c), nn.PixelShuffle(2)), _conv(c, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(F.pixel_unshuffle(x, 2))
        return self.tail(self.body(h) + h)


# --------------------------------------------------------------------------- SGN


class SGNConv(nn.Module):
    """3x3 conv (zero padding 1) + optional LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, act: bool = True):
        super().__init__()
        self.conv2d = nn.Conv2d(cin, cout, 3, padding=1)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2d(x)
        return F.leaky_relu(y, 0.2) if self.act else y


class SGNRes(nn.Module):
    """Three 3x3 convs (activation after the first two), plus the input, LeakyReLU(0.2)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv2d = nn.Sequential(SGNConv(c, c), SGNConv(c, c), SGNConv(c, c, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv2d(x) + x, 0.2)


class SGNTorch(nn.Module):
    """Top (1/8), middle (1/4), bottom (1/2) and main streams, each guiding the next."""

    def __init__(self, s: int = 32, m: int = 2):
        super().__init__()
        self.top1, self.top2, self.top3 = SGNConv(64, 8 * s), SGNRes(8 * s), SGNConv(8 * s, 8 * s)
        self.mid1, self.mid2 = SGNConv(16, 4 * s), SGNConv(6 * s, 4 * s)
        self.mid3, self.mid4 = SGNRes(4 * s), SGNConv(4 * s, 4 * s)
        self.bot1, self.bot2 = SGNConv(4, 2 * s), SGNConv(3 * s, 2 * s)
        self.bot3, self.bot4 = SGNRes(2 * s), SGNConv(2 * s, 2 * s)
        self.main1, self.main2 = SGNConv(1, s), SGNConv(s + s // 2, s)
        self.main3 = nn.ModuleList([SGNConv(s, s) for _ in range(3 + m)])
        self.main4 = SGNConv(s, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = F.pixel_shuffle(self.top3(self.top2(self.top1(F.pixel_unshuffle(x, 8)))), 2)
        mi = self.mid2(torch.cat([self.mid1(F.pixel_unshuffle(x, 4)), t], 1))
        mi = F.pixel_shuffle(self.mid4(self.mid3(mi)), 2)
        b = self.bot2(torch.cat([self.bot1(F.pixel_unshuffle(x, 2)), mi], 1))
        b = F.pixel_shuffle(self.bot4(self.bot3(b)), 2)
        h = self.main2(torch.cat([self.main1(x), b], 1))
        for layer in self.main3:
            h = layer(h)
        return self.main4(h)


# --------------------------------------------------------------------------- LLPackNet


def _wn(cin: int, cout: int, k: int = 3, bias: bool = True, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [WNConv2d(cin, cout, k, bias=bias)]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


class LLPDense(nn.Module):
    """x -> cat[x, relu(conv3x3(x))], 32 new channels."""

    def __init__(self, cin: int):
        super().__init__()
        self.conv = _wn(cin, 32, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(x)], 1)


class LLPRDB(nn.Module):
    """Six dense layers, a 1x1 conv back to C, plus the input."""

    def __init__(self, c: int):
        super().__init__()
        self.dense_layers = nn.Sequential(*[LLPDense(c + 32 * i) for i in range(6)])
        self.conv_1x1 = _wn(c + 192, c, 1, bias=False, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_1x1(self.dense_layers(x)) + x


class LLPackNetTorch(nn.Module):
    """Pack x2 then x8 per plane, RDBs at 1/16, shuffle x2, RDB at 1/8, unpack 8x8, sigmoid."""

    def __init__(self):
        super().__init__()
        self.RDBr, self.RDBg1, self.RDBg2, self.RDBb = (_wn(64, 64) for _ in range(4))
        self.before_identity = _wn(256, 64, 1, bias=False, relu=False)
        self.after_rdb = _wn(192, 64, 1, bias=False, relu=False)
        self.RDB1, self.RDB2, self.RDB3 = LLPRDB(64), LLPRDB(64), LLPRDB(64)
        self.final = nn.Sequential(nn.PixelShuffle(2), LLPRDB(16), _wn(16, 192, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        p = F.pixel_unshuffle(x, 2)
        convs = [self.RDBr, self.RDBg1, self.RDBg2, self.RDBb]
        planes = [conv(F.pixel_unshuffle(p[:, i : i + 1], 8)) for i, conv in enumerate(convs)]
        a = self.before_identity(torch.cat(planes, 1))
        r1 = self.RDB1(a)
        r2 = self.RDB2(r1)
        r3 = self.RDB3(r2)
        y = self.final(self.after_rdb(torch.cat([r1, r2, r3], 1)) + a)
        # channel (i * 8 + j) * 3 + c of block (H/8, W/8) -> pixel (8 * row + i, 8 * col + j)
        y = y.reshape(b, 8, 8, 3, h // 8, w // 8).permute(0, 3, 4, 1, 5, 2)
        return torch.sigmoid(y.reshape(b, 3, h, w))


# --------------------------------------------------------------------------- weights


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a[...], dtype=np.float32))


def _conv_sd(prefix: str, conv) -> dict[str, torch.Tensor]:
    """nnx.Conv (HWIO kernel) -> ``prefix.weight`` (OIHW) and ``prefix.bias``."""
    out = {f"{prefix}.weight": _t(conv.kernel).permute(3, 2, 0, 1).contiguous()}
    if conv.bias is not None:
        out[f"{prefix}.bias"] = _t(conv.bias)
    return out


def _linear_sd(prefix: str, lin) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": _t(lin.kernel).T.contiguous(), f"{prefix}.bias": _t(lin.bias)}


def _wn_sd(prefix: str, conv) -> dict[str, torch.Tensor]:
    """WNConv (v HWIO, g) -> ``prefix.weight_v`` (OIHW), ``prefix.weight_g`` (O,1,1,1), bias."""
    out = {
        f"{prefix}.weight_v": _t(conv.v).permute(3, 2, 0, 1).contiguous(),
        f"{prefix}.weight_g": _t(conv.g).reshape(-1, 1, 1, 1),
    }
    if conv.bias is not None:
        out[f"{prefix}.bias"] = _t(conv.bias)
    return out


def _did_sd(m) -> dict[str, torch.Tensor]:
    sd = _conv_sd("head.0", m.head)
    for i, blk in enumerate(m.body):
        sd |= _conv_sd(f"body.{i}.body.0", blk.conv1) | _conv_sd(f"body.{i}.body.2", blk.conv2)
        sd |= _linear_sd(f"body.{i}.squeeze.fc.0", blk.squeeze_excite.fc1)
        sd |= _linear_sd(f"body.{i}.squeeze.fc.2", blk.squeeze_excite.fc2)
    sd |= _conv_sd(f"body.{len(m.body)}", m.body_out)
    return sd | _conv_sd("tail.0.0", m.upsample) | _conv_sd("tail.1", m.to_rgb)


def _sgn_sd(m) -> dict[str, torch.Tensor]:
    def res(prefix, r):
        return (
            _conv_sd(f"{prefix}.conv2d.0.conv2d", r.conv1.conv)
            | _conv_sd(f"{prefix}.conv2d.1.conv2d", r.conv2.conv)
            | _conv_sd(f"{prefix}.conv2d.2.conv2d", r.conv3)
        )

    plain = {
        "top1": m.top_in, "top3": m.top_out, "mid1": m.mid_in, "mid2": m.mid_fuse,
        "mid4": m.mid_out, "bot1": m.bot_in, "bot2": m.bot_fuse, "bot4": m.bot_out,
        "main1": m.main_in, "main2": m.main_fuse, "main4": m.main_out,
    }  # fmt: skip
    sd: dict[str, torch.Tensor] = {}
    for key, layer in plain.items():
        sd |= _conv_sd(f"{key}.conv2d", layer.conv)
    sd |= res("top2", m.top_res) | res("mid3", m.mid_res) | res("bot3", m.bot_res)
    for i, layer in enumerate(m.main_convs):
        sd |= _conv_sd(f"main3.{i}.conv2d", layer.conv)
    return sd


def _llpacknet_sd(m) -> dict[str, torch.Tensor]:
    def rdb(prefix, r):
        sd = _wn_sd(f"{prefix}.conv_1x1.0", r.fuse)
        for i, layer in enumerate(r.dense):
            sd |= _wn_sd(f"{prefix}.dense_layers.{i}.conv.0", layer)
        return sd

    sd = _wn_sd("RDBr.0", m.plane_r) | _wn_sd("RDBg1.0", m.plane_g1)
    sd |= _wn_sd("RDBg2.0", m.plane_g2) | _wn_sd("RDBb.0", m.plane_b)
    sd |= _wn_sd("before_identity.0", m.merge_planes) | _wn_sd("after_rdb.0", m.merge_rdbs)
    sd |= rdb("RDB1", m.rdb1) | rdb("RDB2", m.rdb2) | rdb("RDB3", m.rdb3)
    return sd | rdb("final.1", m.rdb_fine) | _wn_sd("final.2.0", m.to_blocks)


def torch_rendering(model) -> nn.Module:
    """Our PyTorch rendering of jaxdark ``model`` (did, sgn or llpacknet) with its weights."""
    from jaxdark.models.did import DID
    from jaxdark.models.llpacknet import LLPackNet
    from jaxdark.models.sgn import SGN

    if isinstance(model, DID):
        net, sd = DIDTorch(model.blocks, model.features), _did_sd(model)
    elif isinstance(model, SGN):
        net, sd = SGNTorch(model.start_channels, model.main_blocks), _sgn_sd(model)
    elif isinstance(model, LLPackNet):
        net, sd = LLPackNetTorch(), _llpacknet_sd(model)
    else:
        raise TypeError(f"no PyTorch rendering of {type(model).__name__}")
    net.load_state_dict(sd, strict=True)
    return net.eval()


def state_dict_from_jax(model) -> dict[str, torch.Tensor]:
    """The reference-keyed state dict of jaxdark ``model`` (did, sgn or llpacknet)."""
    return torch_rendering(model).state_dict()
