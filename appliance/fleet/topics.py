"""The MQTT topic tree (a contract: keep it exactly).  ``{p}`` is the configured prefix."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "oivis/v1/{device_id}"


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
