"""Who may be who on the fleet: the one pattern of device ids, and the names reserved for services.

A device id is an MQTT topic level, a certificate CN, the broker's user name and
(forced by the broker) the device's MQTT client id, so one strict pattern is
checked everywhere an id enters: provisioning, the configuration file, operator
commands and topics read back by ingest.  It is ``<site>-<screen>``: lower-case
letters and digits in at least two dash-separated parts (``mall-01-screen-3``
is screen ``screen-3`` of site ``mall-01``; ``--site mall-01`` selects it), at
most 63 characters.

Service identities (operators, ingest, the console) live on the operators'
listener with certificates from the operators' CA; their names are reserved, so
no device certificate can ever carry one: a device id may not start with one of
``RESERVED`` as its first part.
"""

from __future__ import annotations

import re

from appliance.errors import ApplianceError

DEVICE_ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)+$"
DEVICE_ID_MAX = 63
#: First parts of a name that belong to the fleet's services, never to a device.
RESERVED = ("operator", "operators", "ingest", "console", "oivis", "admin", "root", "broker", "service", "fleet")
DEVICE_ID_HELP = ("lower-case letters and digits in dash-separated parts, the site first (e.g. mall-01-screen-3), "
                  f"at most {DEVICE_ID_MAX} characters, not starting with {', '.join(RESERVED)}")

_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
#: The identities of the operators' listener: operators, ingest processes and the console.
SERVICE_PATTERN = r"^(operator|ingest|console)(-[a-z0-9]+)*$"
_SERVICE = re.compile(SERVICE_PATTERN)


def device_id_problem(value: object) -> str | None:
    """Why ``value`` is not a device id, or None when it is one."""
    if not isinstance(value, str):
        return f"{value!r} is not a text"
    if len(value) > DEVICE_ID_MAX:
        return f"{value!r} is longer than {DEVICE_ID_MAX} characters"
    if not _DEVICE_ID.match(value):
        return f"{value!r} is not a device id ({DEVICE_ID_HELP})"
    if value.split("-", 1)[0] in RESERVED:
        return f"{value!r} starts with {value.split('-', 1)[0]!r}, a name reserved for the fleet's services"
    return None


def check_device_id(value: object, where: str) -> str:
    """``value`` when it is a device id; ApplianceError naming ``where`` it came from otherwise."""
    problem = device_id_problem(value)
    if problem is not None:
        raise ApplianceError(f"{where}: {problem}")
    return value  # type: ignore[return-value]


def check_service_name(value: str, where: str) -> str:
    """``value`` when it names an operator or a service (``operator``, ``operator-alice``, ``ingest-2``…)."""
    if not _SERVICE.match(value) or len(value) > DEVICE_ID_MAX:
        raise ApplianceError(f"{where}: {value!r} is not an operator or service name (operator, operator-NAME, "
                             "ingest, ingest-N, console: lower-case letters, digits and dashes)")
    return value


def in_site(device_id: str, site: str) -> bool:
    """What ``--site`` matches: ``mall-01`` holds ``mall-01-screen-3`` (any prefix ending before a dash)."""
    return device_id.startswith(f"{site}-")
