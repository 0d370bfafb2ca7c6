"""DarkRestorationNet as an ONNX graph, written with the ``onnx`` helpers from folded weights.

The kernels are the model's effective ones (weight norm ``g * v / ||v||`` evaluated by the
layers' own code, as `jaxdark.models.lamba2021_folded.fold_params` does). The graph works in
NCHW, as ONNX
convolutions do, between an NHWC input (B, H, W, 1) and an NHWC output (B, H, W, 3), so it
has the contract of ``model(x)``:

* the two grouped convolutions are ``Conv`` with ``group`` (128 and 4);
* pixel shuffle is ``DepthToSpace`` in ``CRD`` mode, which is PyTorch's channel order;
* pixel unshuffle of the mosaic is ``SpaceToDepth`` (for one channel its order is PyTorch's)
  followed, where the model unshuffles twice, by a ``Gather`` of the channels into the
  model's order; the 2-group channel shuffle is a ``Gather`` too;
* LeakyReLU 0.2, the final clip to [0, 1]; opset 17, IR version 8.

Batch, height and width are symbolic unless given; height and width must be multiples of 32
(ONNX cannot state that, the metadata does).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from jaxdark.export.spec import ExportError, ExportSpec
from jaxdark.models.lamba2021 import LRELU_SLOPE, DarkRestorationNet

OPSET = 17
IR_VERSION = 8
_ELEM = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}
_NP = {"float32": np.float32, "float16": np.float16}


def unshuffle_permutation(r: int) -> np.ndarray:
    """``perm`` with ``pixel_unshuffle(pixel_unshuffle(x, 2), r)[c] = SpaceToDepth(x, 2r)[perm[c]]``
    for a one-channel ``x`` (both orders computed with `jaxdark.models.ops`' own functions)."""
    from jaxdark.models.ops import pixel_unshuffle

    side = 2 * r
    index = np.arange(side * side, dtype=np.float32).reshape(1, side, side, 1)
    # SpaceToDepth(x, side) puts pixel (p, q) of a block in channel p * side + q: its flat index.
    order = pixel_unshuffle(pixel_unshuffle(index, 2), r)
    return np.asarray(order, np.int64).reshape(-1)


def shuffle_permutation(channels: int, groups: int = 2) -> np.ndarray:
    """``perm[new] = old`` of `jaxdark.models.ops.channel_shuffle` (a ``Gather`` index)."""
    from jaxdark.models.lamba2021_folded import channel_shuffle_permutation

    return channel_shuffle_permutation(channels, groups).astype(np.int64)


class _Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self, dtype: str):
        self.dtype = dtype
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, kernel: np.ndarray, bias: np.ndarray | None, hint: str, groups=1) -> str:
        """Stride-1 'same' Conv from an HWIO kernel (kh, kw, in/groups, out)."""
        kh, kw = kernel.shape[:2]
        w = self.const(f"{hint}.w", kernel.transpose(3, 2, 0, 1).astype(_NP[self.dtype]))
        inputs = [x, w]
        if bias is not None:
            inputs.append(self.const(f"{hint}.b", bias.astype(_NP[self.dtype])))
        ph, pw = (kh - 1) // 2, (kw - 1) // 2
        return self.op(
            "Conv",
            inputs,
            hint,
            kernel_shape=[kh, kw],
            pads=[ph, pw, ph, pw],
            strides=[1, 1],
            group=groups,
        )

    def lrelu(self, x: str) -> str:
        return self.op("LeakyRelu", [x], alpha=LRELU_SLOPE)

    def gather(self, x: str, perm: np.ndarray, hint: str) -> str:
        return self.op("Gather", [x, self.const(f"{hint}.index", perm)], hint, axis=1)


def build_onnx(model: Any, spec: ExportSpec, metadata: dict[str, Any]) -> onnx.ModelProto:
    """The ONNX model of ``model`` (a `DarkRestorationNet` of any size) for ``spec``."""
    if not isinstance(model, DarkRestorationNet):
        raise ExportError(
            f"ONNX export supports DarkRestorationNet, not {type(model).__name__}; "
            "use format 'stablehlo' for other networks"
        )
    from jaxdark.models.lamba2021_folded import effective_kernels

    kernels = effective_kernels(model)

    def kb(conv) -> tuple[np.ndarray, np.ndarray | None]:
        bias = None if conv.bias is None else np.asarray(conv.bias[...], np.float32)
        return kernels[id(conv)], bias

    g = _Graph(spec.dtype)

    def conv(x: str, layer, hint: str) -> str:
        w, b = kb(layer)
        return g.conv(x, w, b, hint, layer.groups)

    x = g.op("Transpose", ["mosaic"], "to_nchw", perm=[0, 3, 1, 2])  # (B, 1, H, W)
    low2x = g.op("SpaceToDepth", [x], "low2x", blocksize=2)  # C=1: PyTorch's order
    u32 = g.gather(
        g.op("SpaceToDepth", [x], "s2d32", blocksize=32), unshuffle_permutation(16), "u32"
    )
    x32 = conv(conv(u32, model.conv32x[0], "conv32x.0"), model.conv32x[1], "conv32x.1")

    r = x32
    outs = []
    for n, block in enumerate(model.rdb):
        h = r
        for i, layer in enumerate(block.dense_layers):
            if layer.slope not in (None, 1.0, LRELU_SLOPE):
                raise ExportError(f"dense layer slope {layer.slope} is not supported")
            a = h if layer.slope is None or layer.slope == 1.0 else g.lrelu(h)
            h = g.op("Concat", [h, conv(a, layer.conv, f"rdb{n}.dense{i}")], axis=1)
        r = g.op("Add", [conv(h, block.conv_1x1, f"rdb{n}.conv_1x1"), r])
        outs.append(r)
    r8 = g.op("Add", [conv(g.op("Concat", outs, axis=1), model.rdball, "rdball"), x32])
    r8 = conv(g.op("DepthToSpace", [r8], blocksize=4, mode="CRD"), model.conv_rdb8x, "conv_rdb8x")

    l8 = g.gather(g.op("SpaceToDepth", [x], "s2d8", blocksize=8), unshuffle_permutation(4), "l8")
    res = model.resblock8x
    l8 = g.op("Add", [conv(g.lrelu(conv(l8, res.conv1, "res.conv1")), res.conv2, "res.conv2"), l8])

    cat = g.op("Concat", [l8, r8], axis=1)
    c = g.gather(cat, shuffle_permutation(64 + 64, 2), "shuffle")
    c = conv(c, model.conv32_8_cat[0], "cat.0")
    c = g.lrelu(conv(c, model.conv32_8_cat[1], "cat.1"))
    c = g.op("DepthToSpace", [c], blocksize=4, mode="CRD")  # (B, 12, H/2, W/2)
    y = g.op("Concat", [conv(low2x, model.conv2x, "conv2x"), c], axis=1)
    y = conv(y, model.conv_2_8_32, "conv_2_8_32")
    y = g.op("DepthToSpace", [y], blocksize=2, mode="CRD")  # (B, 3, H, W)
    zero = g.const("zero", np.array(0, _NP[spec.dtype]))
    one = g.const("one", np.array(1, _NP[spec.dtype]))
    y = g.op("Clip", [y, zero, one])
    g.nodes.append(helper.make_node("Transpose", [y], ["rgb"], name="to_nhwc", perm=[0, 2, 3, 1]))

    b, hh, ww, _ = spec.dims()
    graph = helper.make_graph(
        g.nodes,
        "jaxdark_" + type(model).__name__,
        [helper.make_tensor_value_info("mosaic", _ELEM[spec.dtype], [b, hh, ww, 1])],
        [helper.make_tensor_value_info("rgb", _ELEM[spec.dtype], [b, hh, ww, 3])],
        initializer=g.inits,
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="jaxdark",
        producer_version=str(metadata.get("jaxdark_version", "")),
        doc_string=f"{metadata.get('input', '')} -> {metadata.get('output', '')}",
    )
    onnx.helper.set_model_props(proto, {k: _prop(v) for k, v in metadata.items()})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _prop(value: Any) -> str:
    """A metadata value as the string ONNX stores (JSON for lists and None)."""
    import json

    return value if isinstance(value, str) else json.dumps(value)
