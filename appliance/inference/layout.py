"""RKNN outputs back in the float model's layout, so perception's post-processing reads them unchanged.

The RKNN runtimes (rknn-toolkit2's simulator and rknn-toolkit-lite2 on the
board) hand every 4-D output back as NCHW, whatever the source model's layout;
the appliance's post-processing expects the float model's own shapes (NHWC for
MediaPipe's TFLite models: a (1, 64, 64, 39) heatmap arrives as (1, 39, 64, 64)).
The shapes are read from the float model the ``.rknn`` was converted from (the
manifest's verified file, which every install has: ``float_output_shapes``) and
``to_model_layout`` puts the outputs back into them.

Invariants: an output leaves with exactly the float model's shape and its values
in the float model's order; a 4-D output whose shape is the float shape's NCHW
form is transposed (even when it equals the float shape too, as when H = W = C,
since that is what the runtime gives); any other output is only reshaped, and
only when its element order cannot differ (the same axes longer than 1, in the
same order: (1, 1, 144, 256) for (1, 144, 256, 1), (1, 63, 1, 1) for (1, 63));
an output whose float shape has free axes (an ONNX model's ``N``, ``h``: NCHW
already, like the runtime) passes unchanged; anything else is an error naming
both shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from appliance.errors import ApplianceError

#: An output shape; None for an axis the model leaves free.
Shape = tuple[int | None, ...]


def float_output_shapes(model: Path) -> list[Shape]:
    """The output shapes of a float model file (.tflite or .onnx), in its output order."""
    if model.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter

        return [tuple(int(n) for n in d["shape"]) for d in Interpreter(model_path=str(model)).get_output_details()]
    if model.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        return [tuple(n if isinstance(n, int) else None for n in o.shape) for o in session.get_outputs()]
    raise ApplianceError(f"cannot read the output shapes of {model}: neither a .tflite nor an .onnx model")


def _nchw(shape: Shape) -> Shape:
    n, h, w, c = shape
    return n, c, h, w


def _spread(shape: Shape) -> Shape:
    """The axes longer than 1: two shapes with the same ones hold their values in the same order."""
    return tuple(n for n in shape if n != 1)


def to_model_layout(outputs: Sequence[np.ndarray], shapes: Sequence[Shape]) -> list[np.ndarray]:
    """``outputs`` (as an RKNN runtime returns them) in the float model's ``shapes``, in order."""
    if len(outputs) != len(shapes):
        raise ApplianceError(f"the NPU model gave {len(outputs)} outputs, the float model has {len(shapes)}")
    restored = []
    for index, (output, shape) in enumerate(zip(outputs, shapes, strict=True)):
        output = np.asarray(output)
        shape = tuple(shape)
        if None in shape:
            restored.append(output)
        elif len(shape) == 4 and output.shape == _nchw(shape):
            restored.append(output.transpose(0, 2, 3, 1))
        elif _spread(output.shape) == _spread(shape):
            restored.append(output.reshape(shape))
        else:
            raise ApplianceError(f"NPU output {index} has shape {output.shape}; the float model's is {shape} "
                                 "(neither it nor its NCHW form)")
    return restored
