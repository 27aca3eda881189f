"""Which board this is, read from the device tree (Rockchip boards name their SoC there)."""

from __future__ import annotations

from pathlib import Path

COMPATIBLE = Path("/proc/device-tree/compatible")

#: SoCs with an NPU that rknn-toolkit-lite2 drives.  RK3399 has none (CPU path);
#: RK3399Pro's older NPU needs a different, incompatible toolkit.
RKNN_LITE2_SOCS = ("rk3588", "rk3576", "rk3568", "rk3566", "rk3562")


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
    return soc in RKNN_LITE2_SOCS
