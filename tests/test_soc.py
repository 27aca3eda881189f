"""The SoC's NPU cores: a per-model core mask is kept on an RK3588, shared on one-core NPUs, refused past the
cores a SoC has."""

from __future__ import annotations

import pytest

from appliance.errors import ApplianceError
from appliance.inference.soc import core_mask_on


def test_an_rk3588_keeps_each_models_core() -> None:
    assert [core_mask_on("rk3588", mask) for mask in ("0", "1", "2", "0_1_2", "auto")] == \
        ["0", "1", "2", "0_1_2", "auto"]


@pytest.mark.parametrize("soc", ["rk3566", "rk3568", "rk3562"])
def test_a_one_core_npu_is_shared_whatever_the_mask(soc: str) -> None:
    assert {core_mask_on(soc, mask) for mask in ("0", "1", "2", "0_1_2", "auto")} == {"auto"}


def test_a_core_the_soc_lacks_is_refused_with_the_cores_it_has() -> None:
    assert core_mask_on("rk3576", "1") == "1"
    with pytest.raises(ApplianceError, match="'2': rk3576 has 2 NPU core\\(s\\), numbered 0 to 1"):
        core_mask_on("rk3576", "2")
