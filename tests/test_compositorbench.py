"""The compositor bench: both compositors over the same real frames, each in its own process, and its table."""

from __future__ import annotations

import json
from pathlib import Path

from appliance.tools import compositorbench


def test_both_compositors_draw_the_same_frames_side_by_side(astronaut_file: Path, capsys) -> None:
    assert compositorbench.main([str(astronaut_file), "--frames", "3", "--rounds", "2", "--screen", "640x360",
                                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rounds"] == 2 and result["frames"] == 3
    ways = result["ways"]
    assert (ways["cpu"]["renderer"], ways["gpu-software"]["renderer"]) == ("numpy", "software")
    for way in ways.values():
        assert way["size"] == [640, 360]
        assert way["composite_p50_ms"] > 0 and way["composite_cpu_p50_ms"] > 0 and way["process_cpu_ms_per_frame"] > 0
    table = compositorbench.format_table(result)
    assert "gpu-software" in table and "numpy" in table


def test_a_source_that_fails_is_one_line_naming_it(capsys) -> None:
    assert compositorbench.main(["/nonexistent/clip.mp4", "--frames", "2", "--rounds", "1"]) == 1
    assert "video not found: /nonexistent/clip.mp4" in capsys.readouterr().err
