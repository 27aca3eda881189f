"""The MQTT topic tree (a contract: keep it exactly).  ``{p}`` is the configured prefix."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.errors import ApplianceError

DEFAULT_PREFIX = "oivis/v1/{device_id}"
DEVICE_SEGMENT = "{device_id}"


def check_template(template: str) -> str:
    """A prefix template whose ``{device_id}`` is one whole topic level (so ``+`` can stand for it)."""
    if template.split("/").count(DEVICE_SEGMENT) != 1 or template.count("{") != 1:
        raise ApplianceError(f"topic prefix {template!r}: {DEVICE_SEGMENT} must be one whole level, once "
                             f"(like {DEFAULT_PREFIX})")
    return template


def device_of(topic: str, template: str = DEFAULT_PREFIX) -> str | None:
    """The device id in ``topic`` under the prefix ``template``, or None when the topic is not under it."""
    levels = check_template(template).split("/")
    parts = topic.split("/")
    if len(parts) <= len(levels):   # a device topic has at least one level below the prefix
        return None
    under = parts[:len(levels)]
    if any(part != level for part, level in zip(under, levels, strict=True) if level != DEVICE_SEGMENT):
        return None
    return under[levels.index(DEVICE_SEGMENT)] or None


@dataclass(frozen=True)
class Topics:
    prefix: str

    @classmethod
    def for_device(cls, device_id: str, template: str = DEFAULT_PREFIX) -> Topics:
        return cls(template.format(device_id=device_id))

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def health(self) -> str:
        return f"{self.prefix}/health"

    @property
    def events(self) -> str:
        return f"{self.prefix}/events"

    @property
    def events_stored(self) -> str:
        """Fleet → device, retained: ``{"seq": n}``, every event up to seq n is stored (or known gone)."""
        return f"{self.prefix}/events/stored"

    @property
    def desired(self) -> str:
        return f"{self.prefix}/state/desired"

    @property
    def reported(self) -> str:
        return f"{self.prefix}/state/reported"

    def command(self, name: str) -> str:
        return f"{self.prefix}/cmd/{name}"

    @property
    def commands(self) -> str:
        """Subscription filter for every command."""
        return f"{self.prefix}/cmd/+"

    @property
    def command_results(self) -> str:
        return f"{self.prefix}/cmd-res"
