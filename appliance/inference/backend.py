"""One small interface for running a model, and the plugins that implement it.

Model-specific pre/post-processing lives above this layer (perception/); a
runner only turns input tensors into output tensors.  Every runner takes raw
uint8 NHWC RGB images, as the RKNN NPU does (normalisation is baked into a
.rknn); a CPU runner applies the manifest's normalisation itself.

Plugins live in appliance/inference/plugins/ and are discovered at start, like
Frigate's detectors: a plugin whose import fails (no ``rknnlite`` on x86) is
recorded with its reason and skipped, never fatal.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, cast

import numpy as np

from appliance.errors import ApplianceError
from appliance.inference import plugins
from appliance.inference.manifest import Manifest, ModelSpec
from appliance.inference.soc import read_soc
from appliance.memory import hand_back

log = logging.getLogger(__name__)
R = TypeVar("R")


class Runner(Protocol):
    """A loaded model: ``run([uint8 NHWC image]) -> [float32 outputs]``."""

    backend: str

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...


#: One part of a model cut in parts: the tensors it starts from, the tensors it ends at.
Part = tuple[Sequence[str], Sequence[str]]


class PartsRunner(Protocol):
    """A model cut into parts (``Inference.load_parts``): ``run_part`` runs one, fed by tensor name (the image
    as uint8 NHWC RGB, an extra input checked, any other tensor float32; feeds it does not take are left out).
    A part keeps the working memory of its runs for the next until a run with ``release`` ends; its session
    holds what it holds until the runner goes."""

    backend: str

    def run_part(self, part: int, feeds: Mapping[str, np.ndarray], release: bool = False) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class BackendOptions:
    """What a plugin may be told: CPU threads, NPU core mask, where per-SoC models are."""

    threads: int = 2
    core_mask: str = "auto"
    soc: str | None = None


class BackendPlugin(Protocol):
    """A module in plugins/ exposing ``PLUGIN`` with this shape."""

    name: str
    priority: int  # higher wins in automatic selection

    def can_run(self, spec: ModelSpec, manifest: Manifest, options: BackendOptions) -> str | None:
        """None when this plugin can run the model here, else the reason it cannot."""

    def load(self, spec: ModelSpec, manifest: Manifest, options: BackendOptions) -> Runner: ...

    def versions(self) -> dict[str, str]:
        """Runtime/driver versions worth logging at start."""


class PartsPlugin(BackendPlugin, Protocol):
    """A plugin that can also cut a model between named tensors (``Inference.load_parts``)."""

    def load_parts(self, spec: ModelSpec, manifest: Manifest, options: BackendOptions,
                   parts: Sequence[Part]) -> PartsRunner: ...


@dataclass
class Registry:
    plugins: dict[str, BackendPlugin] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    @classmethod
    def discover(cls) -> Registry:
        registry = cls()
        for module_info in pkgutil.iter_modules(plugins.__path__):
            try:
                module = importlib.import_module(f"{plugins.__name__}.{module_info.name}")
            except ImportError as exc:
                registry.unavailable[module_info.name] = f"{type(exc).__name__}: {exc}"
                log.info("inference backend %s unavailable: %s", module_info.name, exc)
                continue
            plugin: BackendPlugin = module.PLUGIN
            registry.plugins[plugin.name] = plugin
        return registry

    def describe(self) -> str:
        """Each backend with its runtime's version, and each unavailable one with its reason (for start-up logs)."""
        available = [f"{name} ({', '.join(f'{k} {v}' for k, v in plugin.versions().items()) or 'version unknown'})"
                     for name, plugin in sorted(self.plugins.items())]
        unavailable = [f"{name} unavailable ({reason})" for name, reason in sorted(self.unavailable.items())]
        return "; ".join(available + unavailable)

    def known(self) -> list[str]:
        return sorted([*self.plugins, *self.unavailable])

    def refusal(self, wanted: str) -> str | None:
        """Why the backend named ``wanted`` cannot be asked for here, or None (``auto`` always can)."""
        if wanted == "auto" or wanted in self.plugins:
            return None
        if wanted in self.unavailable:
            return f"backend {wanted!r} cannot be used here: {self.unavailable[wanted]}"
        return f"unknown backend {wanted!r} (known: {', '.join(self.known())}, auto)"

    def choose(self, spec: ModelSpec, manifest: Manifest, wanted: str, options: BackendOptions) -> BackendPlugin:
        """The plugin to run ``spec``: ``wanted`` by name, or the best available for ``auto``."""
        if wanted != "auto":
            refusal = self.refusal(wanted)
            if refusal:
                raise ApplianceError(refusal)
            plugin = self.plugins[wanted]
            reason = plugin.can_run(spec, manifest, options)
            if reason:
                raise ApplianceError(f"backend {wanted!r} cannot run model {spec.name}: {reason}")
            return plugin
        refusals = []
        for plugin in sorted(self.plugins.values(), key=lambda p: -p.priority):
            reason = plugin.can_run(spec, manifest, options)
            if reason is None:
                return plugin
            refusals.append(f"{plugin.name}: {reason}")
        raise ApplianceError(f"no backend can run model {spec.name}: " + "; ".join(refusals))


@dataclass(frozen=True)
class LaneSettings:
    """One model's own backend and options (``[inference.models.<name>]``), over the defaults."""

    backend: str = "auto"
    options: BackendOptions = BackendOptions()


class Inference:
    """Loads runners for models, choosing a backend per model, and remembers the choices.

    ``lanes`` gives single models their own backend, CPU threads or NPU cores (on RK3588 one
    core per model, so models running in their own threads do not queue for one core);
    every other model gets ``wanted`` and ``options``.
    """

    def __init__(self, wanted: str = "auto", options: BackendOptions | None = None,
                 manifest: Manifest | None = None, registry: Registry | None = None,
                 lanes: dict[str, LaneSettings] | None = None) -> None:
        self.options = _with_soc(options or BackendOptions())
        self.wanted = wanted
        self.manifest = manifest or Manifest.load()
        self.registry = registry or Registry.discover()
        log.info("inference backends: %s", self.registry.describe())
        self.lanes = {name: LaneSettings(lane.backend, _with_soc(lane.options, self.options.soc))
                      for name, lane in (lanes or {}).items()}
        for name in self.lanes:
            self.manifest.spec(name)
        self.chosen: dict[str, str] = {}

    def settings(self, model: str) -> LaneSettings:
        """The backend and options ``model`` is loaded with."""
        return self.lanes.get(model) or LaneSettings(self.wanted, self.options)

    def load(self, model: str) -> Runner:
        return self._load(model, lambda plugin, spec, options: plugin.load(spec, self.manifest, options))

    def load_parts(self, model: str, parts: Sequence[Part]) -> PartsRunner:
        """``model`` cut into ``parts`` (each: the tensors it starts from, those it ends at), each run on its own,
        where its backend can cut a graph (onnx); an ApplianceError where it cannot."""
        def cut(plugin: BackendPlugin, spec: ModelSpec, options: BackendOptions) -> PartsRunner:
            if not hasattr(plugin, "load_parts"):
                raise ApplianceError(f"backend {plugin.name} cannot cut model {model} into parts")
            return cast(PartsPlugin, plugin).load_parts(spec, self.manifest, options, parts)
        return self._load(model, cut)

    def _load(self, model: str, load: Callable[[BackendPlugin, ModelSpec, BackendOptions], R]) -> R:
        spec = self.manifest.spec(model)
        lane = self.settings(model)
        options = lane.options
        plugin = self.registry.choose(spec, self.manifest, lane.backend, options)
        runner = load(plugin, spec, options)
        hand_back()   # what loading freed (a parsed model, its graph rewritten) is not left under the runner
        self.chosen[model] = plugin.name
        log.info("model %s on backend %s (soc %s, %d CPU threads, NPU cores %s; %s)", model, plugin.name,
                 options.soc or "none", options.threads, options.core_mask,
                 ", ".join(f"{k} {v}" for k, v in plugin.versions().items()) or "versions unknown")
        return runner

    @property
    def backend_summary(self) -> str:
        """The backend(s) in use, e.g. ``litert`` or ``rknn+litert``."""
        names = list(dict.fromkeys(self.chosen.values()))
        return "+".join(names) if names else self.wanted


def _with_soc(options: BackendOptions, soc: str | None = None) -> BackendOptions:
    """``options`` naming the board's SoC (read once: ``soc`` when given, else from the device tree)."""
    if options.soc:
        return options
    return BackendOptions(options.threads, options.core_mask, soc or read_soc())
