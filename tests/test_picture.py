"""An experience's own picture on the kiosk's photo desk (Keepsakes.picture): filed like a photo, deleted like one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.errors import ApplianceError
from appliance.experience.testkit import FakeJobs
from appliance.kiosk.keepsakes import KioskKeepsakes


def desk(tmp_path: Path) -> KioskKeepsakes:
    return KioskKeepsakes(lambda bundle, world, frame, pose, style: None, tmp_path / "photos")


def test_a_picture_is_filed_like_a_photo_and_discarded_like_one(tmp_path: Path) -> None:
    kiosk = desk(tmp_path)
    jobs = FakeJobs(run_at_once=True)
    poster = np.full((1800, 1200, 3), (40, 90, 200), np.uint8)
    job = kiosk.for_jobs(jobs.submit).picture(lambda: poster)
    jobs.deliver()
    keepsake = job.result()
    path = tmp_path / "photos" / f"{keepsake.photo_id}.jpg"
    assert path.is_file() and path.stat().st_mode & 0o777 == 0o600
    assert keepsake.screen.shape == (1280, 853, 3) and keepsake.person_box == (0, 0, 1200, 1800)
    kiosk.discard(keepsake)
    assert not path.exists(), "not kept: gone when the experience lets it go"


def test_a_picture_that_is_not_one_is_the_jobs_error_and_files_nothing(tmp_path: Path) -> None:
    kiosk = desk(tmp_path)
    jobs = FakeJobs(run_at_once=True)
    job = kiosk.for_jobs(jobs.submit).picture(lambda: np.zeros((10, 10), np.float32))
    jobs.deliver()
    with pytest.raises(ApplianceError, match="a picture is BGR uint8"):
        job.result()
    assert not (tmp_path / "photos").exists() or list((tmp_path / "photos").iterdir()) == []


def test_a_picture_whose_experience_left_is_deleted_once_made(tmp_path: Path) -> None:
    kiosk = desk(tmp_path)
    jobs = FakeJobs(run_at_once=False)
    keepsakes = kiosk.for_jobs(jobs.submit)
    job = keepsakes.picture(lambda: np.zeros((600, 400, 3), np.uint8))
    keepsakes.cancel(job)
    made = job.function()
    assert made.photo_id and list((tmp_path / "photos").iterdir()) == []
