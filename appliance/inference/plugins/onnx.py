"""CPU backend: ONNX Runtime, for the manifest's .onnx models (age and gender, style transfer).

Each image input arrives as uint8 NHWC RGB, like every runner's; the runner applies the
manifest's per-channel normalisation and, for an NCHW model, transposes.  Inputs the
manifest lists as ``extra_inputs`` (a style's weights, a style vector) are passed to the
model as given, in float32, after checking their shape.  Outputs come back as the model
gives them, in float32.  Only .onnx files are accepted; LiteRT runs the .tflite ones.

Memory: a model whose image size is fixed plans its activations once (onnxruntime's memory
pattern: one block, reused every run); one that takes any size (the built-in styles) does not,
as a pattern is planned and kept per size and holds every activation at once (the styles at a
print's 896 pixels: 430 MB against 157 MB allocated as the run goes, and faster), and its
arena gives back what a run took when the run ends.  The image is normalised straight into the
one float32 tensor the model takes (no float copies of it in between).

Parts (``OnnxParts``): the model cut between named tensors, each part a model of its own (``onnx``'s
extractor) with its own session, so a caller can run a network piece by piece (the built-in styles in
strips: appliance/photo/stylenet.py).  A part is fed only the inputs it declares; the model's image
input is normalised as above, every other feed passes in float32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import onnxruntime

from appliance.errors import ApplianceError
from appliance.inference.backend import BackendOptions, Part
from appliance.inference.manifest import Manifest, ModelSpec


class _OnnxModel:
    """What every session of one manifest model shares: its threads and memory settings, and how its inputs
    are fed (``_feed``: an extra input checked, the model's own other inputs taken as images and normalised,
    any other tensor as float32).  A subclass sets ``_images``, the names of the model's image inputs."""

    backend = "onnx"

    def __init__(self, spec: ModelSpec, threads: int) -> None:
        self.name = spec.name
        self._threads = threads
        self._any_size = 0 in spec.input_shape
        self._run_options = onnxruntime.RunOptions()
        if self._any_size:
            self._run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self._extras = {extra.name: extra for extra in spec.extra_inputs}
        self._images: list[str] = []
        scale, offsets = spec.channel_normalisation
        self._scale = np.float32(scale)
        self._offsets = np.asarray(offsets, np.float32)
        self._nchw = spec.layout == "NCHW"
        self._shape = spec.input_shape

    def _open(self, what: str, model: str | bytes) -> onnxruntime.InferenceSession:
        """A CPU session for ``model`` (a path or a serialised model), with this model's memory settings."""
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.enable_mem_pattern = not self._any_size
        try:
            return onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            where = f" from {model}" if isinstance(model, str) else ""
            raise ApplianceError(f"onnxruntime could not load {what}{where}: {exc}") from exc

    def _feed(self, name: str, value: np.ndarray) -> np.ndarray:
        extra = self._extras.get(name)
        if extra is not None:
            if tuple(value.shape) != extra.shape:
                raise ApplianceError(f"model {self.name} expects {name} {extra.shape}, got {value.shape}")
            return np.asarray(value, np.float32)
        if name in self._images:
            return self._image(value)
        return np.asarray(value, np.float32)

    def _image(self, image: np.ndarray) -> np.ndarray:
        fits = image.ndim == 4 and all(want in (0, got) for want, got in zip(self._shape, image.shape, strict=True))
        if not fits or image.dtype != np.uint8:
            raise ApplianceError(f"model {self.name} expects a uint8 image {self._shape} (0: any), "
                                 f"got {image.dtype} {image.shape}")
        if not self._nchw:
            tensor = np.multiply(image, self._scale, dtype=np.float32)
            tensor += self._offsets
            return tensor
        batch, height, width, channels = image.shape
        tensor = np.empty((batch, channels, height, width), np.float32)
        for channel in range(channels):
            plane = tensor[:, channel]
            np.multiply(image[..., channel], self._scale, out=plane)
            plane += self._offsets[channel]
        return tensor


class OnnxRunner(_OnnxModel):
    """One InferenceSession on the CPU execution provider."""

    def __init__(self, spec: ModelSpec, manifest: Manifest, threads: int) -> None:
        path = manifest.verified_path(spec.name)
        super().__init__(spec, threads)
        self._session = self._open(f"model {spec.name}", str(path))
        names = [given.name for given in self._session.get_inputs()]
        unknown = set(self._extras) - set(names)
        if unknown:
            raise ApplianceError(f"model {spec.name} has no input(s) {', '.join(sorted(unknown))} (it has {names})")
        self._inputs = names
        self._images = [name for name in names if name not in self._extras]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self._inputs):
            raise ApplianceError(f"model {self.name} takes {len(self._inputs)} input(s), got {len(inputs)}")
        feeds = {name: self._feed(name, value) for name, value in zip(self._inputs, inputs, strict=True)}
        return [np.asarray(output, np.float32) for output in self._session.run(None, feeds, self._run_options)]


@lru_cache(maxsize=2)
def _cut(path: str, digest: str, parts: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
         ) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    """The model at ``path`` (its sha256 ``digest`` in the key) cut into ``parts``: its own input names and each
    part serialised.  Kept for the process: cutting costs 0.1 s and the parts a few MB (the weights they need)."""
    try:
        import onnx
        from onnx.utils import Extractor
    except ImportError as exc:
        raise ApplianceError(f"cutting {path} into parts needs the onnx package ({exc}); reinstall the "
                             "appliance (its lock pins onnx)") from exc
    model = onnx.load(path)
    described = {value.name for value in (*model.graph.input, *model.graph.output, *model.graph.value_info)}
    produced = {name for node in model.graph.node for name in node.output} | described
    for name in sorted({name for inputs, outputs in parts for name in (*inputs, *outputs)}):
        if name not in produced:
            raise ApplianceError(f"model {Path(path).stem} has no tensor {name!r} to cut at")
        if name not in described:   # a cut needs each end's type; the shapes may stay unknown
            model.graph.value_info.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    extractor = Extractor(model)
    return (tuple(given.name for given in model.graph.input),
            tuple(extractor.extract_model(list(inputs), list(outputs)).SerializeToString() for inputs, outputs in parts))


class OnnxParts(_OnnxModel):
    """A model cut into parts (backend.PartsRunner): each part a session of its own."""

    def __init__(self, spec: ModelSpec, manifest: Manifest, threads: int, parts: Sequence[Part]) -> None:
        cut = tuple((tuple(inputs), tuple(outputs)) for inputs, outputs in parts)
        images, serialised = _cut(str(manifest.verified_path(spec.name)), spec.sha256, cut)
        super().__init__(spec, threads)
        self._images = [name for name in images if name not in self._extras]
        self._parts = []
        for (inputs, outputs), model in zip(cut, serialised, strict=True):
            session = self._open(f"model {spec.name} from {', '.join(inputs)} to {', '.join(outputs)}", model)
            self._parts.append((session, [given.name for given in session.get_inputs()], outputs))

    def run_part(self, part: int, feeds: Mapping[str, np.ndarray], release: bool = False) -> list[np.ndarray]:
        session, names, outputs = self._parts[part]
        missing = [name for name in names if name not in feeds]
        if missing:
            raise ApplianceError(f"model {self.name} part {part} needs {', '.join(missing)}")
        given = {name: self._feed(name, feeds[name]) for name in names}
        # The arena gives back what the runs took only when asked (``release``): shrinking it after every one
        # of a pass's strips leaves the heap in holes the next strip's tensors do not fit (14 MB more resident
        # a strip, measured), while each run reusing the last one's memory keeps the pass at one strip's worth.
        options = self._run_options if release and self._any_size else None
        try:
            return [np.asarray(output, np.float32) for output in session.run(None, given, options)]
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ApplianceError(f"model {self.name} part {part} (to {', '.join(outputs)}) failed: {exc}") from exc


class OnnxPlugin:
    name = "onnx"
    priority = 5

    def can_run(self, spec: ModelSpec, manifest: Manifest, options: BackendOptions) -> str | None:
        if not spec.filename.endswith(".onnx"):
            return f"onnxruntime runs .onnx models, not {spec.filename}"
        return None

    def load(self, spec: ModelSpec, manifest: Manifest, options: BackendOptions) -> OnnxRunner:
        return OnnxRunner(spec, manifest, options.threads)

    def load_parts(self, spec: ModelSpec, manifest: Manifest, options: BackendOptions,
                   parts: Sequence[Part]) -> OnnxParts:
        return OnnxParts(spec, manifest, options.threads, parts)

    def versions(self) -> dict[str, str]:
        try:
            return {"onnxruntime": version("onnxruntime")}
        except PackageNotFoundError:
            return {}


PLUGIN = OnnxPlugin()
