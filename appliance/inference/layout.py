"""RKNN outputs back in the float model's layout, so perception's post-processing reads them unchanged.

The RKNN runtimes (rknn-toolkit2's simulator and rknn-toolkit-lite2 on the
board) hand every 4-D output back as NCHW, whatever the source model's layout;
the appliance's post-processing expects the float model's own shapes (NHWC for
MediaPipe's models: a (1, 64, 64, 39) heatmap arrives as (1, 39, 64, 64)).  The
converter records the float model's output shapes beside each ``.rknn``
(``<model>-<soc>.outputs.json``); ``to_model_layout`` puts outputs back into them.

Invariants: an output leaves with exactly the recorded shape and its values in
the float model's order; a 4-D output whose shape is the recorded one's NCHW
form is transposed (even when it equals the recorded shape too, as when H = W = C,
since that is what the runtime gives); any other output is only reshaped when
its element order cannot differ (same shape, or a 4-D one whose channel axis is 1);
anything else is an error naming both shapes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from appliance.errors import ApplianceError

Shape = tuple[int, ...]


def shapes_path(rknn: Path) -> Path:
    """Where the float model's output shapes are recorded for the ``.rknn`` file ``rknn``."""
    return rknn.with_suffix(".outputs.json")


def write_output_shapes(rknn: Path, shapes: Sequence[Sequence[int]]) -> Path:
    path = shapes_path(rknn)
    path.write_text(json.dumps({"output_shapes": [list(map(int, shape)) for shape in shapes]}) + "\n")
    return path


def read_output_shapes(rknn: Path) -> list[Shape]:
    """The recorded output shapes of the float model ``rknn`` was converted from."""
    path = shapes_path(rknn)
    try:
        shapes = json.loads(path.read_text())["output_shapes"]
        return [tuple(int(n) for n in shape) for shape in shapes]
    except FileNotFoundError:
        raise ApplianceError(f"{path} is missing: the output shapes of {rknn.name} are recorded when it is "
                             "converted; convert it again with `make rknn-models`") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ApplianceError(f"{path} is not a list of output shapes ({exc}); convert {rknn.name} again "
                             "with `make rknn-models`") from exc


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
        if len(shape) == 4 and output.shape == _nchw(shape):
            restored.append(output.transpose(0, 2, 3, 1))
        elif _spread(output.shape) == _spread(shape):
            restored.append(output.reshape(shape))
        else:
            raise ApplianceError(f"NPU output {index} has shape {output.shape}; the float model's is {shape} "
                                 "(neither it nor its NCHW form)")
    return restored
