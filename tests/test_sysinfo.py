"""The process's memory as the health report and bench read it: current and peak resident set."""

from __future__ import annotations

from pathlib import Path

from appliance.fleet.sysinfo import process_peak_rss_mb, process_rss_mb


def test_the_peak_is_the_kernels_high_water_mark(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t 900000 kB\nVmHWM:\t  307200 kB\nVmRSS:\t  204800 kB\n")
    assert process_peak_rss_mb(status) == 300.0
    status.write_text("Name:\tpython\n")
    assert process_peak_rss_mb(status) is None
    assert process_peak_rss_mb(tmp_path / "absent") is None


def test_this_process_has_peaked_at_least_where_it_is() -> None:
    now = process_rss_mb()
    assert now is not None and process_peak_rss_mb() >= now
