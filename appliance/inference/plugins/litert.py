"""CPU backend: LiteRT (TensorFlow Lite) with XNNPACK — x86 machines and RK3399 boards."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from appliance.errors import ApplianceError
from appliance.inference.backend import BackendOptions
from appliance.inference.manifest import Manifest, ModelSpec


class LiteRTRunner:
    """One interpreter; the uint8 input is normalised straight into the input tensor's buffer."""

    backend = "litert"

    def __init__(self, spec: ModelSpec, manifest: Manifest, threads: int) -> None:
        path = manifest.verified_path(spec.name)
        try:
            self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ApplianceError(f"LiteRT could not load model {spec.name} from {path}: {exc}") from exc
        self._inputs = [d["index"] for d in self._interpreter.get_input_details()]
        self._outputs = [d["index"] for d in self._interpreter.get_output_details()]
        self._scale, self._offset = spec.normalisation
        self.name = spec.name

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self._inputs):
            raise ApplianceError(f"model {self.name} takes {len(self._inputs)} input(s), got {len(inputs)}")
        for index, image in zip(self._inputs, inputs, strict=True):
            target = self._interpreter.tensor(index)()
            if target.shape != image.shape:
                raise ApplianceError(f"model {self.name} expects input {target.shape}, got {image.shape}")
            np.multiply(image, np.float32(self._scale), out=target, casting="unsafe")
            if self._offset:
                target += np.float32(self._offset)
            del target  # the interpreter refuses to run while a view of its buffers is alive
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(index) for index in self._outputs]


class LiteRTPlugin:
    name = "litert"
    priority = 10

    def can_run(self, spec: ModelSpec, manifest: Manifest, options: BackendOptions) -> str | None:
        if not spec.filename.endswith(".tflite"):
            return f"LiteRT runs .tflite models, not {spec.filename}"
        return None

    def load(self, spec: ModelSpec, manifest: Manifest, options: BackendOptions) -> LiteRTRunner:
        return LiteRTRunner(spec, manifest, options.threads)

    def versions(self) -> dict[str, str]:
        try:
            return {"ai-edge-litert": version("ai-edge-litert")}
        except PackageNotFoundError:
            return {}


PLUGIN = LiteRTPlugin()
