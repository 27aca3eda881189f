"""Rewrite MediaPipe's custom TFLite ops into builtins rknn-toolkit2 can parse.

rknn-toolkit2's ``load_tflite`` first runs the model through stock TensorFlow
(<=2.14) and then tf2onnx; neither knows MediaPipe's
``Convolution2DTransposeBias`` custom op (used by both selfie-segmentation
models), so loading fails with "Encountered unresolved custom op". The op is
just TRANSPOSE_CONV followed by a bias add, so we express it as exactly that:
builtin TRANSPOSE_CONV (v1, no fused bias: the most widely supported form)
writing an intermediate tensor, then a builtin ADD of the bias.

Only used offline at conversion time; the simulator check in simulate.py
compares the result against the *original* model run by ai-edge-litert,
which does know the custom op, so a wrong rewrite shows up as a diff.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

CUSTOM_TCONV = b"Convolution2DTransposeBias"

# TfLitePadding (C API) -> schema Padding enum.
_C_PADDING_TO_SCHEMA = {1: 0, 2: 1}  # kTfLitePaddingSame -> SAME, kTfLitePaddingValid -> VALID


class PatchError(RuntimeError):
    """The model uses the custom op in a form this rewrite does not understand."""


def _opcode_index(model: Any, schema: Any, builtin: int) -> int:
    """Index of the operator code for ``builtin``, appending it if missing."""
    for i, oc in enumerate(model.operatorCodes):
        if oc.builtinCode == builtin and not oc.customCode:
            return i
    oc = schema.OperatorCodeT()
    oc.builtinCode = builtin
    oc.deprecatedBuiltinCode = min(builtin, 127)  # pre-2.3 readers look here
    oc.version = 1
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1


def _add_tensor(model: Any, graph: Any, schema: Any, name: str, shape: list[int],
                ttype: int, data: bytes | None = None) -> int:
    """Append a tensor (constant if ``data`` is given) and return its index."""
    buf = schema.BufferT()
    buf.data = None if data is None else np.frombuffer(data, dtype=np.uint8).copy()
    model.buffers.append(buf)
    t = schema.TensorT()
    t.name = name.encode()
    t.shape = np.array(shape, dtype=np.int32)
    t.type = ttype
    t.buffer = len(model.buffers) - 1
    graph.tensors.append(t)
    return len(graph.tensors) - 1


def needs_patch(tflite: Path) -> bool:
    """Cheap pre-check so unaffected models are passed to rknn untouched."""
    return CUSTOM_TCONV in tflite.read_bytes()


def patch_custom_ops(src: Path, dst: Path) -> int:
    """Write ``src`` to ``dst`` with every custom transpose-conv replaced; return the count."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(src))
    tconv = _opcode_index(model, schema, schema.BuiltinOperator.TRANSPOSE_CONV)
    add = _opcode_index(model, schema, schema.BuiltinOperator.ADD)
    replaced = 0
    for graph in model.subgraphs:
        new_ops = []
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if code.customCode != CUSTOM_TCONV:
                new_ops.append(op)
                continue
            where = f"{src.name}: op writing tensor {int(op.outputs[0])}"
            if len(op.inputs) != 3 or op.customOptions is None or len(op.customOptions) < 12:
                raise PatchError(f"{where}: unexpected inputs/options for {CUSTOM_TCONV.decode()}")
            c_padding, stride_w, stride_h = struct.unpack_from("<iii", bytes(op.customOptions))
            if c_padding not in _C_PADDING_TO_SCHEMA:
                raise PatchError(f"{where}: unknown padding enum {c_padding}")
            data_in, weights, bias = (int(i) for i in op.inputs)
            out = graph.tensors[int(op.outputs[0])]
            out_shape = [int(d) for d in out.shape]
            shape_t = _add_tensor(model, graph, schema, f"{out.name.decode()}/output_shape", [4],
                                  schema.TensorType.INT32, np.array(out_shape, np.int32).tobytes())
            mid_t = _add_tensor(model, graph, schema, f"{out.name.decode()}/no_bias", out_shape, out.type)

            opts = schema.TransposeConvOptionsT()
            opts.padding = _C_PADDING_TO_SCHEMA[c_padding]
            opts.strideW, opts.strideH = stride_w, stride_h
            op.opcodeIndex = tconv
            op.inputs = np.array([shape_t, weights, data_in], dtype=np.int32)
            orig_out = op.outputs
            op.outputs = np.array([mid_t], dtype=np.int32)
            op.builtinOptionsType = schema.BuiltinOptions.TransposeConvOptions
            op.builtinOptions = opts
            op.customOptions = None

            bias_add = schema.OperatorT()
            bias_add.opcodeIndex = add
            bias_add.inputs = np.array([mid_t, bias], dtype=np.int32)
            bias_add.outputs = orig_out
            bias_add.builtinOptionsType = schema.BuiltinOptions.AddOptions
            bias_add.builtinOptions = schema.AddOptionsT()
            new_ops += [op, bias_add]
            replaced += 1
        graph.operators = new_ops
    dst.parent.mkdir(parents=True, exist_ok=True)
    flatbuffer_utils.write_model(model, str(dst))
    return replaced
