"""ONNX graph rewrites that keep rknn-toolkit2 2.5.0 away from its own broken rules.

``fold_zero_pads_into_conv``: the toolkit's ``fuse_pad_into_conv`` build rule
crashes ("ValueError: assignment destination is read-only", in
rknn/api/rules/conv.py ``_p_fuse_pad_into_conv``) on every Pad that feeds a
Conv converted from a TFLite VALID convolution, whose ``pads`` attribute the
toolkit holds in a read-only array.  BlazePose (pose detector and landmarks)
and the full-range face detector pad explicitly before their stride-2 convs,
so none of them built.  Doing the same fusion ourselves, before the toolkit
sees the graph, leaves it nothing to fuse.

Used offline at conversion time only; simulate.py compares the converted model
against the original in LiteRT/onnxruntime, so a wrong rewrite shows up there.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class SurgeryError(RuntimeError):
    """The graph has a construct these rewrites do not understand."""


def _constant(model: Any, name: str) -> np.ndarray | None:
    """The value of initializer or Constant-node output ``name``, else None."""
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
    return None


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def _set_attrs(node: Any, drop: tuple[str, ...], **values: Any) -> None:
    """Remove attributes ``drop`` and those in ``values`` from ``node``, then add ``values``."""
    from onnx import helper

    kept = [a for a in node.attribute if a.name not in drop and a.name not in values]
    del node.attribute[:]
    node.attribute.extend(kept + [helper.make_attribute(name, value) for name, value in values.items()])


def fold_zero_pads_into_conv(model: Any) -> int:
    """Remove each constant-zero spatial Pad read only by Convs into their ``pads``; return the count.

    ONNX Conv zero-pads its input by ``pads`` ([x1_begin, x2_begin, ...,
    x1_end, x2_end, ...]) before convolving, exactly as a Pad with mode
    "constant" and value 0 does; adding the Pad's spatial amounts to the
    Conv's own (0 for a VALID conv) makes the same zeros reach the same
    kernel taps, so every output is computed from identical operands.  Only
    Pads that pad H and W (not N or C), with value 0 and whose every reader
    is a Conv without ``auto_pad``, are folded.
    """
    readers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}
    folded, dropped = 0, []
    for pad in model.graph.node:
        if pad.op_type != "Pad" or pad.output[0] in outputs:
            continue
        convs = readers.get(pad.output[0], [])
        if not convs or any(c.op_type != "Conv" or _attr(c, "auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID")
                            for c in convs):
            continue
        mode = _attr(pad, "mode", b"constant")
        amounts = _constant(model, pad.input[1]) if len(pad.input) > 1 else None
        value = _constant(model, pad.input[2]) if len(pad.input) > 2 and pad.input[2] else np.zeros(1)
        if mode != b"constant" or amounts is None or value is None or np.any(value != 0) or \
                (len(pad.input) > 3 and pad.input[3]) or amounts.size != 8:
            continue
        begin, end = amounts[:4], amounts[4:]
        if begin[0] or begin[1] or end[0] or end[1] or np.any(amounts < 0):
            continue
        for conv in convs:
            old = list(_attr(conv, "pads", [0, 0, 0, 0]))
            if len(old) != 4:
                raise SurgeryError(f"Conv {conv.name}: expected 2-D pads, got {old}")
            new = [old[0] + int(begin[2]), old[1] + int(begin[3]), old[2] + int(end[2]), old[3] + int(end[3])]
            _set_attrs(conv, ("auto_pad",), pads=new)
            conv.input[0] = pad.input[0]
        dropped.append(pad)
        folded += 1
    for pad in dropped:
        model.graph.node.remove(pad)
    return folded


#: ONNX ops that act on each element alone when their scale and zero point are scalars.
_PER_TENSOR_ELEMENTWISE = ("QuantizeLinear", "DequantizeLinear")
_NHWC_TO_NCHW = [0, 3, 1, 2]


def nchw_image_input(model: Any) -> int:
    """Make an NHWC image input NCHW by removing the model's own NHWC->NCHW Transpose; return 1 if done.

    rknn-toolkit2 takes every 4-D ONNX input as NCHW (it reads [1, 256, 256, 3]
    as 256 channels and rejects the 3 mean values), while the TF-exported style
    predictor takes NHWC and transposes inside, after a per-tensor
    QuantizeLinear.  Per-tensor (De)QuantizeLinear maps each element on its
    own, so it commutes with any transposition: declaring the input NCHW and
    dropping the Transpose feeds every later op the very same tensor.
    """
    readers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    initializers = {init.name for init in model.graph.initializer}
    done = 0
    for graph_input in model.graph.input:
        if graph_input.name in initializers:
            continue
        dims = graph_input.type.tensor_type.shape.dim
        if len(dims) != 4 or dims[3].dim_value != 3:
            continue
        name, path = graph_input.name, []
        while len(readers.get(name, [])) == 1 and readers[name][0].op_type in _PER_TENSOR_ELEMENTWISE:
            node = readers[name][0]
            scales = [_constant(model, i) for i in node.input[1:]]
            if any(s is None or s.size != 1 for s in scales):
                break
            path.append(node)
            name = node.output[0]
        nodes = readers.get(name, [])
        if len(nodes) != 1 or nodes[0].op_type != "Transpose" or list(_attr(nodes[0], "perm", [])) != _NHWC_TO_NCHW:
            continue
        transpose = nodes[0]
        if transpose.output[0] in {o.name for o in model.graph.output}:
            continue
        for reader in readers.get(transpose.output[0], []):
            for k, i in enumerate(reader.input):
                if i == transpose.output[0]:
                    reader.input[k] = name
        model.graph.node.remove(transpose)
        n, h, w, c = (dims[i].dim_value or dims[i].dim_param for i in range(4))
        for dim, value in zip(dims, (n, c, h, w), strict=True):
            if isinstance(value, str):
                dim.dim_param = value
            else:
                dim.dim_value = value
        for node in path:  # their outputs are now NCHW: drop stale shape annotations
            stale = [v for v in model.graph.value_info if v.name == node.output[0]]
            for value in stale:
                model.graph.value_info.remove(value)
        done += 1
    return done
