"""Load one manifest model into a configured RKNN object, rewriting what the toolkit cannot take.

This is the step between ``rknn.config`` and ``rknn.build`` in convert.py.
Every rewrite is exact (same arithmetic on the same operands) and proven by
simulate.py against the original model:

* TFLite: MediaPipe's custom ops and sparse constants become builtins first
  (tflite_patch).  A model whose convolutions read an explicit PAD (BlazePose:
  the pose detector and landmarks; the full-range face detector) cannot go
  through ``load_tflite``: the toolkit's own ``fuse_pad_into_conv`` build rule
  crashes on it (onnx_surgery).  Those are converted to ONNX with the toolkit's
  bundled tf2onnx the way ``load_tflite`` does it (NHWC input moved to NCHW),
  the pads folded into the convolutions, and loaded with ``load_onnx``.
* ONNX: loaded with ``load_onnx`` at the manifest's fixed input size (batch 1;
  the files leave the batch free), pads folded the same way.  The toolkit
  moves an NCHW image input to NHWC on the NPU side, so the board runner feeds
  the same uint8 NHWC frame as for every other model.  A model whose image
  size the manifest leaves free, or that takes non-image inputs, is refused
  with the reason.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError

try:  # run as a script from models/rknn or as a module
    from onnx_surgery import fold_zero_pads_into_conv, nchw_image_input
    from tflite_patch import pads_before_conv, rewrite_for_rknn
except ImportError:  # pragma: no cover
    from models.rknn.onnx_surgery import fold_zero_pads_into_conv, nchw_image_input
    from models.rknn.tflite_patch import pads_before_conv, rewrite_for_rknn

log = logging.getLogger("rknn.load")

#: The ONNX opset the toolkit's tf2onnx writes for load_tflite (its log: "Using opset <onnx, 18>").
TFLITE_ONNX_OPSET = 18


class UnsupportedModel(ApplianceError):
    """The model cannot run on the NPU as the appliance uses it; the message says why."""


def tflite_to_onnx(tflite: Path) -> Any:
    """``tflite`` as ONNX, converted like ``load_tflite`` does: toolkit's tf2onnx, image input NCHW."""
    import rknn.api.rknn_base  # noqa: F401  (registers the bundled tf2onnx)
    from ai_edge_litert.interpreter import Interpreter
    from rknn.base.convertor.tensorflow2onnx.tf2onnx import convert as tf2onnx

    inputs = [d["name"] for d in Interpreter(model_path=str(tflite)).get_input_details()]
    proto, _ = tf2onnx.from_tflite(str(tflite), inputs_as_nchw=inputs, opset=TFLITE_ONNX_OPSET)
    return proto


def onnx_inputs(model: str, proto: Any) -> tuple[list[str], list[list[int]]]:
    """(input names, fixed NCHW sizes) for ``load_onnx``: the manifest's image size, batch 1."""
    from appliance.inference.manifest import Manifest

    spec = Manifest.load().spec(model)
    if spec.extra_inputs:
        names = ", ".join(extra.name for extra in spec.extra_inputs)
        raise UnsupportedModel(f"{model}: takes non-image float input(s) ({names}); the RKNN path feeds "
                               "one uint8 camera frame, so it stays on the CPU (onnxruntime)")
    if 0 in spec.input_shape:
        raise UnsupportedModel(f"{model}: takes any image size {spec.input_shape}; an RKNN graph is built "
                               "for one fixed size, so it stays on the CPU (onnxruntime)")
    initializers = {init.name for init in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UnsupportedModel(f"{model}: expected one image input, the file has {[i.name for i in inputs]}")
    n, h, w, c = spec.input_shape
    nchw = [n, c, h, w]
    given = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]  # 0 where the file leaves it free
    if len(given) != 4 or any(dim not in (0, want) for dim, want in zip(given, nchw, strict=True)):
        raise UnsupportedModel(f"{model}: input {inputs[0].name} is {given}, not NCHW {nchw}; the toolkit "
                               "takes 4-D ONNX inputs as NCHW")
    return [inputs[0].name], [nchw]


def load_model(rknn: Any, model: str, source: Path, workdir: Path) -> tuple[int, str]:
    """Load ``source`` (a manifest model's file) into ``rknn``; return (toolkit status, step name)."""
    import onnx

    if source.suffix == ".onnx":
        proto = onnx.load(str(source))
        if nchw_image_input(proto):
            log.info("%s: NHWC image input made NCHW (its Transpose removed)", model)
        inputs, sizes = onnx_inputs(model, proto)
        step = "load_onnx"
    else:
        tflite, rewrites = rewrite_for_rknn(source, workdir)
        for what, count in rewrites.items():
            log.info("%s: rewrote %d x %s", model, count, what)
        if not pads_before_conv(tflite):
            return rknn.load_tflite(model=str(tflite)), "load_tflite"
        proto, inputs, sizes = tflite_to_onnx(tflite), None, None
        step = "load_onnx (converted from TFLite)"
    folded = fold_zero_pads_into_conv(proto)
    if folded:
        log.info("%s: folded %d zero Pad(s) into their convolutions", model, folded)
    path = workdir / f"{source.stem}.onnx"
    onnx.save(proto, str(path))
    return rknn.load_onnx(model=str(path), inputs=inputs, input_size_list=sizes), step
