"""NPU backend: Rockchip RKNN through rknn-toolkit-lite2 (RK3588/3576/3568/3566/3562).

Importing this module fails on machines without ``rknnlite`` (every x86 machine);
the registry records that and skips the plugin.  A model runs here only when a
``.rknn`` converted for this SoC exists (models/rknn/convert.py builds them):
``<models>/cache/rknn/<model>-<soc>.rknn``.  Normalisation is baked into that
file, so the NPU gets the raw uint8 NHWC image; outputs go back to the shapes
of the float model it was converted from (4-D ones come back NCHW; layout.py).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from rknnlite.api import RKNNLite

from appliance.errors import ApplianceError
from appliance.inference.backend import BackendOptions
from appliance.inference.layout import Shape, float_output_shapes, to_model_layout
from appliance.inference.manifest import Manifest, ModelSpec
from appliance.inference.soc import core_mask_on, has_rknn_npu

#: init_runtime(core_mask=...) values by name; one model per core is how throughput scales.
CORE_MASKS = {
    "auto": RKNNLite.NPU_CORE_AUTO,
    "0": RKNNLite.NPU_CORE_0,
    "1": RKNNLite.NPU_CORE_1,
    "2": RKNNLite.NPU_CORE_2,
    "0_1": RKNNLite.NPU_CORE_0_1,
    "0_1_2": RKNNLite.NPU_CORE_0_1_2,
}


def rknn_path(manifest: Manifest, spec: ModelSpec, soc: str) -> Path:
    return manifest.cache_dir / "rknn" / f"{spec.name}-{soc}.rknn"


class RKNNRunner:
    backend = "rknn"

    def __init__(self, spec: ModelSpec, path: Path, core_mask: str, output_shapes: list[Shape]) -> None:
        if core_mask not in CORE_MASKS:
            raise ApplianceError(f"unknown NPU core mask {core_mask!r} (known: {', '.join(CORE_MASKS)})")
        self.name = spec.name
        self._output_shapes = output_shapes
        self._rknn = RKNNLite()
        if self._rknn.load_rknn(str(path)) != 0:
            raise ApplianceError(f"RKNNLite could not load {path}")
        status = self._rknn.init_runtime(core_mask=CORE_MASKS[core_mask])
        if status != 0:
            raise ApplianceError(
                f"RKNNLite init_runtime failed for {path} (status {status}); an 'Invalid RKNN model "
                "version' in the log above means librknnrt is older than the toolkit that built the model"
            )

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = self._rknn.inference(inputs=inputs, data_format="nhwc")
        if outputs is None:
            raise ApplianceError(f"RKNN inference failed for model {self.name} (the runtime returned None)")
        return [np.asarray(output, dtype=np.float32) for output in to_model_layout(outputs, self._output_shapes)]


class RKNNPlugin:
    name = "rknn"
    priority = 20

    def can_run(self, spec: ModelSpec, manifest: Manifest, options: BackendOptions) -> str | None:
        if not has_rknn_npu(options.soc):
            return f"this SoC ({options.soc or 'not a Rockchip board'}) has no RKNN NPU"
        path = rknn_path(manifest, spec, options.soc)
        if not path.is_file():
            return f"no {path.name} converted for {options.soc} in {path.parent}"
        return None

    def load(self, spec: ModelSpec, manifest: Manifest, options: BackendOptions) -> RKNNRunner:
        return RKNNRunner(spec, rknn_path(manifest, spec, options.soc), core_mask_on(options.soc, options.core_mask),
                          float_output_shapes(manifest.verified_path(spec.name)))

    def versions(self) -> dict[str, str]:
        try:
            return {"rknn-toolkit-lite2": version("rknn-toolkit-lite2")}
        except PackageNotFoundError:
            return {}


PLUGIN = RKNNPlugin()
