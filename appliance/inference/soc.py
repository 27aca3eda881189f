"""Which board this is, read from the device tree (Rockchip boards name their SoC there)."""

from __future__ import annotations

from pathlib import Path

from appliance.errors import ApplianceError

COMPATIBLE = Path("/proc/device-tree/compatible")

#: The SoCs with an NPU that rknn-toolkit-lite2 drives, and its cores (models get a core each only where
#: there are several: RK3588, three).  RK3399 has none (CPU path); RK3399Pro's older NPU needs a different,
#: incompatible toolkit.
NPU_CORES = {"rk3588": 3, "rk3576": 2, "rk3568": 1, "rk3566": 1, "rk3562": 1}


def read_soc(compatible: Path = COMPATIBLE) -> str | None:
    """The SoC name (``rk3588``, ``rk3399`` …) or None off a device-tree machine (x86).

    The file holds NUL-separated strings, most specific first:
    ``radxa,rock-5b\\0rockchip,rk3588\\0``.
    """
    try:
        entries = compatible.read_bytes().split(b"\0")
    except OSError:
        return None
    for entry in entries:
        vendor, _, model = entry.decode("ascii", "replace").partition(",")
        if vendor == "rockchip" and model.startswith("rk"):
            return model
    return None


def has_rknn_npu(soc: str | None) -> bool:
    return soc in NPU_CORES


def core_mask_on(soc: str | None, mask: str) -> str:
    """The core mask to give the runtime on ``soc``: on a one-core NPU every model shares the core (``auto``,
    whatever the configuration asks, so one configuration serves an RK3588 and an RK3566); a mask naming a
    core the SoC lacks is refused with the cores it has."""
    cores = NPU_CORES.get(soc or "", 0)
    if mask == "auto" or cores == 1:
        return "auto"
    if max(int(core) for core in mask.split("_")) >= cores:
        raise ApplianceError(f"NPU core mask {mask!r}: {soc} has {cores} NPU core(s), numbered 0 to {cores - 1}")
    return mask
