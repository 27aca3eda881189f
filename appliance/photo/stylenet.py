"""The built-in style network (``multistyle26``) painting a large image in strips, so that none of its
full-resolution layers is ever held whole.

The network: three contracting convolutions (full, half, quarter resolution), six residual blocks at a
quarter, three expanding ones back to full; every convolution's output is normalised by its mean and
variance over the whole image (a conditional instance norm), so a strip alone would be normalised wrong.
Run whole on a print at fine strokes (1440 pixels), its first layer alone is 177 MB and onnxruntime holds
two or three such at once: about 400 MB.

Here the model is cut (``Inference.load_parts``) at the convolutions' raw outputs into a chain of
``SEGMENTS``.  Each runs in strips of its source's rows, each strip read with a margin (``Segment.halo``)
of the segment's receptive field, rounded up to its stride, so a strip's rows are those the whole image
would give (its reflected edge stays in the margin), and its output is held whole for the next.  A segment that starts at
a raw convolution output normalises it first, with statistics summed over the held tensor; the first one
starts at the image and contains the first norm, whose statistics need a pass of their own over the strips
(the first convolution alone), so that convolution runs twice and every other once.  The residual blocks
run whole (a quarter of the size in both directions).  What is held: the half-size second layer (44 MB at
1440 pixels), the quarter-size ones, and the expanding layers' few channels.

Invariants: the painting equals the whole network's within float rounding (the statistics are summed in
float64; the tests compare both on a photograph); a segment's strips and margins are multiples of the
strides it contains (the image's sides are multiples of STRIDE: the caller pads them); statistics are fed
with the shape the norm's ``ReduceMean`` gives (1, C, 1, 1); each part releases its working memory after
its last strip (the sessions keep theirs until the caller drops this object: about 70 MB after a print).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain

import numpy as np

from appliance.errors import ApplianceError
from appliance.inference.backend import Inference, Part, PartsRunner
from appliance.memory import hand_back

MODEL = "multistyle26"
IMAGE, WEIGHTS, PAINTING = "image", "style_weights", "stylized"
#: The network's total stride: the image's sides are multiples of it.
STRIDE = 4


def _conv(layer: str) -> str:
    return f"/{layer}/Conv_output_0"


def _stats(layer: str) -> tuple[str, str]:
    """The names of ``layer``'s norm's mean and variance (its two ``ReduceMean``s)."""
    return f"/{layer}/norm/ReduceMean_output_0", f"/{layer}/norm/ReduceMean_1_output_0"


def _moments(strips: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each channel's mean and (biased) variance over every strip (1, C, h, w), summed in float64."""
    totals, squares, count = [], [], 0
    for strip in strips:
        values = strip[0].reshape(strip.shape[1], -1)
        totals.append(np.add.reduce(values, axis=1, dtype=np.float64))
        squares.append(np.add.reduce(np.square(values), axis=1, dtype=np.float64))
        count += values.shape[1]
    mean = np.sum(totals, axis=0) / count
    return mean, np.maximum(np.sum(squares, axis=0) / count - mean * mean, 0.0)


@dataclass(frozen=True)
class Segment:
    """A piece of the network run in strips of its ``source``'s rows, its ``output`` held whole."""

    source: str              # the image, or a raw convolution output (or a sum) held whole
    norms: tuple[str, ...]   # the layers whose norm it applies, in order
    output: str
    rows: int                # a strip's height, in source rows
    halo: int                # source rows read beyond each side of a strip: its receptive field, rounded up
                             # to the stride it contains (a narrower one fails tests/test_stylenet.py)

    def parts(self) -> list[tuple[str | None, Part]]:
        """The parts it runs, each with the layer whose statistics it is the pass for (None: the segment's
        output).  A norm applied to the source itself needs no pass: the source is held, and summed."""
        fed: list[str] = []
        parts: list[tuple[str | None, Part]] = []
        for layer in self.norms:
            if _conv(layer) != self.source:
                parts.append((layer, ((self.source, WEIGHTS, *fed), (_conv(layer),))))
            fed.extend(_stats(layer))
        parts.append((None, ((self.source, WEIGHTS, *fed), (self.output,))))
        return parts


#: A strip as high as any image: the segment runs whole.
WHOLE = 1 << 30
#: The chain, image to painting; strips hold about 32 full-size rows.  Receptive fields in source rows: the
#: first segment 9x9 then 3x3 at stride 2 (5, aligned to 6), the next 3x3 at stride 2 (1, aligned to 2), the
#: expanding ones a 3x3 after a 2x nearest resize (1) and a 9x9 (4); the last is pointwise.
SEGMENTS = (
    Segment(IMAGE, ("contract.0",), _conv("contract.1"), rows=32, halo=6),
    Segment(_conv("contract.1"), ("contract.1",), _conv("contract.2"), rows=16, halo=2),
    Segment(_conv("contract.2"), (), "/Add_5_output_0", rows=WHOLE, halo=0),   # its norms computed inside
    Segment("/Add_5_output_0", (), _conv("expand.0"), rows=8, halo=1),
    Segment(_conv("expand.0"), ("expand.0",), _conv("expand.1"), rows=16, halo=1),
    Segment(_conv("expand.1"), ("expand.1",), _conv("expand.2"), rows=32, halo=4),
    Segment(_conv("expand.2"), ("expand.2",), PAINTING, rows=64, halo=0),
)


class StripedStyles:
    """``multistyle26`` cut for painting in strips (``paint``); loaded with ``Inference.load_parts``."""

    def __init__(self, inference: Inference) -> None:
        #: per segment: the part index of each layer's statistics pass, and of its output
        self._indices: list[tuple[dict[str, int], int]] = []
        every: list[Part] = []
        for segment in SEGMENTS:
            passes: dict[str, int] = {}
            for layer, part in segment.parts():
                if layer is not None:
                    passes[layer] = len(every)
                every.append(part)
            self._indices.append((passes, len(every) - 1))
        self._runner: PartsRunner = inference.load_parts(MODEL, every)

    def paint(self, batch: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The painting (1, 3, H, W, 0..1) of ``batch`` (uint8 NHWC RGB, H and W multiples of STRIDE) in the
        style mix ``weights``: what the whole network gives."""
        height, width = batch.shape[1:3]
        if not height or not width or height % STRIDE or width % STRIDE:
            raise ApplianceError(f"{MODEL} paints in strips an image whose sides are multiples of {STRIDE}, "
                                 f"got {width}x{height}")
        held = batch
        for segment, (passes, final) in zip(SEGMENTS, self._indices, strict=True):
            held = self._segment(segment, passes, final, held, weights)
            hand_back()   # the tensor before, and what the parts' runs freed
        return held

    def _segment(self, segment: Segment, passes: dict[str, int], final: int, source: np.ndarray,
                 weights: np.ndarray) -> np.ndarray:
        feeds = {WEIGHTS: weights}
        for layer in segment.norms:
            if layer in passes:
                mean, variance = _moments(strip for _, _, strip in self._strips(segment, passes[layer], source, feeds))
            else:   # the source itself (a held NCHW tensor), a strip's rows at a time: no whole float64 copy
                mean, variance = _moments(source[:, :, top:top + segment.rows]
                                          for top in range(0, source.shape[2], segment.rows))
            mean_name, variance_name = _stats(layer)
            feeds[mean_name] = mean.astype(np.float32).reshape(1, -1, 1, 1)
            feeds[variance_name] = variance.astype(np.float32).reshape(1, -1, 1, 1)
        strips = self._strips(segment, final, source, feeds)
        first = next(strips)   # a source has rows (the image's sides are checked in paint)
        scale = first[2].shape[2] / (first[1] - first[0])   # the output's rows per source row
        output = np.empty((1, first[2].shape[1], round(_rows(segment, source) * scale), first[2].shape[3]),
                          np.float32)
        for top, bottom, strip in chain([first], strips):
            output[:, :, round(top * scale):round(bottom * scale)] = strip
        return output

    def _strips(self, segment: Segment, part: int, source: np.ndarray, feeds: dict[str, np.ndarray]
                ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Part ``part``'s output (NCHW), strip by strip from the top: the source rows a strip owns (top, bottom)
        and its output's rows for them.  Each strip reuses the working memory of the one before; the last
        releases it."""
        rows = _rows(segment, source)
        for top in range(0, rows, segment.rows):
            bottom = min(rows, top + segment.rows)
            start, stop = max(0, top - segment.halo), min(rows, bottom + segment.halo)
            window = source[:, start:stop] if segment.source == IMAGE else source[:, :, start:stop]
            (strip,) = self._runner.run_part(part, {**feeds, segment.source: window}, release=bottom == rows)
            scale = strip.shape[2] / (stop - start)
            yield top, bottom, strip[:, :, round((top - start) * scale):round((bottom - start) * scale)]


def _rows(segment: Segment, source: np.ndarray) -> int:
    """The source's height: the image is NHWC, the cut tensors NCHW."""
    return source.shape[1] if segment.source == IMAGE else source.shape[2]
