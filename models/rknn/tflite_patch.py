"""Rewrite MediaPipe TFLite graphs into forms rknn-toolkit2 2.5.0 can convert (and keep on the NPU).

rknn-toolkit2's ``load_tflite`` first reads the model with stock TensorFlow
(2.14: ``Interpreter.get_tensor_details``) and then converts it with tf2onnx.
Two things in MediaPipe's models break that path; each rewrite below replaces
the offending construct by builtins that compute exactly the same numbers:

* ``Convolution2DTransposeBias`` (a MediaPipe custom op, both selfie
  segmentation models): neither TensorFlow nor tf2onnx knows it, so loading
  fails with "Encountered unresolved custom op".  See ``rewrite_custom_tconv``.
* Sparse constant tensors feeding a ``DENSIFY`` op (the pose detector and the
  full-range sparse face detector store most 1x1 conv weights this way):
  TensorFlow 2.14's ``get_tensor_details`` dereferences the sparsity metadata
  of such tensors and segfaults the whole process.  See ``densify_constants``.

One more rewrite is not needed to load but keeps ops on the NPU: BlazeFace's
channel-widening PADs, three of which the toolkit would run on the CPU.  See
``channel_pads_to_concat``.

Only used offline at conversion time; the simulator check in simulate.py
compares the result against the *original* model run by ai-edge-litert, so a
wrong rewrite shows up as a diff.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

CUSTOM_TCONV = b"Convolution2DTransposeBias"

# TfLitePadding (C API) -> schema Padding enum.
_C_PADDING_TO_SCHEMA = {1: 0, 2: 1}  # kTfLitePaddingSame -> SAME, kTfLitePaddingValid -> VALID

# schema TensorType -> numpy dtype, for the constant types the rewrites touch.
_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 9: np.int8}


class PatchError(RuntimeError):
    """The model uses an op in a form these rewrites do not understand."""


def _builtin(opcode: Any) -> int:
    """An operator code's builtin, also for files written before schema 2.3.

    Old files (face detection short range, face mesh) only fill the int8
    ``deprecatedBuiltinCode``; the int32 ``builtinCode`` then reads 0 (ADD).
    """
    return max(int(opcode.builtinCode), int(opcode.deprecatedBuiltinCode))


def _opcode_index(model: Any, schema: Any, builtin: int) -> int:
    """Index of the operator code for ``builtin``, appending it if missing."""
    for i, oc in enumerate(model.operatorCodes):
        if _builtin(oc) == builtin and not oc.customCode:
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


def rewrite_custom_tconv(model: Any, schema: Any, label: str) -> int:
    """Replace each ``Convolution2DTransposeBias`` by TRANSPOSE_CONV + ADD; return the count.

    The custom op is a transposed convolution followed by a per-channel bias
    add, with padding and strides in its custom options (TfLitePadding, then
    stride w, stride h).  Builtin TRANSPOSE_CONV v1 (no fused bias: the most
    widely supported form) with the same weights, padding and strides writes an
    intermediate tensor, and a builtin ADD of the bias (broadcast over the last
    axis) writes the op's original output: the same arithmetic, in the same
    order, as the custom kernel.
    """
    ops = [op for graph in model.subgraphs for op in graph.operators
           if model.operatorCodes[op.opcodeIndex].customCode == CUSTOM_TCONV]
    if not ops:
        return 0
    tconv = _opcode_index(model, schema, schema.BuiltinOperator.TRANSPOSE_CONV)
    add = _opcode_index(model, schema, schema.BuiltinOperator.ADD)
    replaced = 0
    for graph in model.subgraphs:
        new_ops = []
        for op in graph.operators:
            if model.operatorCodes[op.opcodeIndex].customCode != CUSTOM_TCONV:
                new_ops.append(op)
                continue
            where = f"{label}: op writing tensor {int(op.outputs[0])}"
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
    return replaced


def _index_vector(union: Any) -> np.ndarray:
    """The values of a SparseIndexVector union (Int32/Uint16/Uint8Vector) as int64."""
    return np.asarray(union.values, dtype=np.int64)


def densify_values(values: np.ndarray, shape: list[int], sparsity: Any, where: str) -> np.ndarray:
    """The dense array a TFLite sparse tensor stands for (what the DENSIFY kernel computes).

    Follows TFLite's FormatConverter for the layout MediaPipe writes: traversal
    order = the tensor's own dimension order and no block map.  Each level keeps,
    for every path so far, its index into the next level's segments and its flat
    dense offset: a DENSE level of size n expands each path n ways; a
    SPARSE_CSR level expands path p to the entries segments[p]..segments[p+1]
    with coordinates from indices.  After the last level, path p holds values[p].
    Values are only moved, never computed, so the result is bit-exact.
    """
    order = [int(d) for d in sparsity.traversalOrder]
    if order != list(range(len(shape))) or sparsity.blockMap is not None and len(sparsity.blockMap):
        raise PatchError(f"{where}: sparse traversal order {order} / block map {sparsity.blockMap} not supported")
    path = np.zeros(1, dtype=np.int64)  # index into the current level
    flat = np.zeros(1, dtype=np.int64)  # dense offset so far
    for level, meta in enumerate(sparsity.dimMetadata):
        size = int(shape[level])
        if meta.format == 0:  # DENSE
            if int(meta.denseSize) != size:
                raise PatchError(f"{where}: dense size {meta.denseSize} != shape[{level}] {size}")
            step = np.arange(size, dtype=np.int64)
            path = (path[:, None] * size + step).reshape(-1)
            flat = (flat[:, None] * size + step).reshape(-1)
        else:  # SPARSE_CSR
            segments, indices = _index_vector(meta.arraySegments), _index_vector(meta.arrayIndices)
            starts, counts = segments[path], segments[path + 1] - segments[path]
            new_path = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
            flat = np.repeat(flat, counts) * size + indices[new_path]
            path = new_path
    if path.size != values.size:
        raise PatchError(f"{where}: sparse metadata addresses {path.size} values, the buffer has {values.size}")
    dense = np.zeros(int(np.prod(shape)), dtype=values.dtype)
    dense[flat] = values[path]
    return dense.reshape(shape)


def densify_constants(model: Any, schema: Any, label: str) -> int:
    """Replace each DENSIFY of a sparse constant by the dense constant itself; return the count.

    DENSIFY only expands a constant's sparse encoding (``densify_values``), so
    storing the dense values in the constant's own buffer, clearing its sparsity
    metadata and pointing DENSIFY's consumers at it gives the same tensor with no
    op at all.  The op's former output is left as an unused tensor.
    """
    densify = schema.BuiltinOperator.DENSIFY
    replaced = 0
    for graph in model.subgraphs:
        kept, renamed = [], {}
        for op in graph.operators:
            if _builtin(model.operatorCodes[op.opcodeIndex]) != densify:
                kept.append(op)
                continue
            src, dst = int(op.inputs[0]), int(op.outputs[0])
            tensor = graph.tensors[src]
            where = f"{label}: DENSIFY of tensor {tensor.name.decode()}"
            if tensor.sparsity is None or tensor.type not in _NUMPY_TYPES:
                raise PatchError(f"{where}: input is not a sparse constant of a known type")
            buf = model.buffers[tensor.buffer]
            values = np.frombuffer(bytes(buf.data), dtype=_NUMPY_TYPES[tensor.type])
            shape = [int(d) for d in tensor.shape]
            dense = densify_values(values, shape, tensor.sparsity, where)
            buf.data = np.frombuffer(dense.tobytes(), dtype=np.uint8).copy()
            tensor.sparsity = None
            renamed[dst] = src
            replaced += 1
        for op in kept:
            op.inputs = np.array([renamed.get(int(i), int(i)) for i in op.inputs], dtype=np.int32)
        graph.outputs = np.array([renamed.get(int(i), int(i)) for i in graph.outputs], dtype=np.int32)
        graph.operators = kept
    return replaced


def channel_pads_to_concat(model: Any, schema: Any, label: str) -> int:
    """Replace each PAD that only appends zero channels by CONCATENATION with a zero constant; return the count.

    BlazeFace (face detection short range) widens its residual branches with
    PADs of [[0, 0], [0, 0], [0, 0], [0, k]] on NHWC tensors.  The toolkit
    places three of them on the CPU ("Unkown op target: 0" while building),
    which would cost the board an NPU -> CPU -> NPU round trip each.
    Concatenating a [1, H, W, k] tensor of zeros on the channel axis writes the
    input's values followed by k zero channels, which is what a constant-0 PAD at
    the end of the channel axis writes: the output is identical element for
    element.
    """
    pad = schema.BuiltinOperator.PAD
    concat = None
    replaced = 0
    for graph in model.subgraphs:
        for op in graph.operators:
            if _builtin(model.operatorCodes[op.opcodeIndex]) != pad or len(op.inputs) != 2:
                continue
            amounts_t = graph.tensors[int(op.inputs[1])]
            data = model.buffers[amounts_t.buffer].data
            if data is None or amounts_t.type != schema.TensorType.INT32:
                continue
            amounts = np.frombuffer(bytes(data), dtype=np.int32).reshape(-1, 2)
            source, out = graph.tensors[int(op.inputs[0])], graph.tensors[int(op.outputs[0])]
            if amounts.shape != (4, 2) or amounts[:3].any() or amounts[3, 0] or amounts[3, 1] <= 0 \
                    or source.type != schema.TensorType.FLOAT32:
                continue
            if concat is None:
                concat = _opcode_index(model, schema, schema.BuiltinOperator.CONCATENATION)
            zeros_shape = [int(d) for d in source.shape[:3]] + [int(amounts[3, 1])]
            zeros = _add_tensor(model, graph, schema, f"{out.name.decode()}/zero_channels", zeros_shape,
                                schema.TensorType.FLOAT32, np.zeros(zeros_shape, np.float32).tobytes())
            opts = schema.ConcatenationOptionsT()
            opts.axis = 3
            op.opcodeIndex = concat
            op.inputs = np.array([int(op.inputs[0]), zeros], dtype=np.int32)
            op.builtinOptionsType = schema.BuiltinOptions.ConcatenationOptions
            op.builtinOptions = opts
            replaced += 1
    return replaced


#: Every rewrite, in the order applied: name -> function(model, schema, label) -> count.
REWRITES = {
    "custom transpose-conv -> TRANSPOSE_CONV + ADD": rewrite_custom_tconv,
    "DENSIFY of sparse constant -> dense constant": densify_constants,
    "channel zero PAD -> CONCATENATION with zeros": channel_pads_to_concat,
}


def rewrite_for_rknn(src: Path, workdir: Path) -> tuple[Path, dict[str, int]]:
    """The file ``load_tflite`` should read, and how many of each rewrite went into it.

    Returns ``src`` itself when no rewrite applies, else a rewritten copy
    written into ``workdir`` under the same file name.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(src))
    counts = {name: rewrite(model, schema, src.name) for name, rewrite in REWRITES.items()}
    counts = {name: n for name, n in counts.items() if n}
    if not counts:
        return src, counts
    dst = workdir / src.name
    dst.parent.mkdir(parents=True, exist_ok=True)
    flatbuffer_utils.write_model(model, str(dst))
    return dst, counts


def pads_before_conv(tflite: Path) -> int:
    """How many PAD ops feed a (depthwise) convolution in ``tflite``.

    rknn-toolkit2 2.5.0 crashes fusing those (see onnx_surgery), so load.py
    sends such models through ONNX, where the pads are folded beforehand.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(tflite))
    ops = schema.BuiltinOperator
    convs, pads = {ops.CONV_2D, ops.DEPTHWISE_CONV_2D}, {ops.PAD, ops.PADV2}
    count = 0
    for graph in model.subgraphs:
        padded = {int(op.outputs[0]) for op in graph.operators
                  if _builtin(model.operatorCodes[op.opcodeIndex]) in pads}
        count += sum(1 for op in graph.operators
                     if _builtin(model.operatorCodes[op.opcodeIndex]) in convs and int(op.inputs[0]) in padded)
    return count
