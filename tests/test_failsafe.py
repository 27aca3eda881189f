"""The failsafe state, the quarantine of an experience that keeps failing, and the log gate: scripted time."""

from __future__ import annotations

from appliance.kiosk.failsafe import (
    FAILSAFE_S,
    HEALTHY_S,
    LIMIT,
    WATCHDOG_GRACE_S,
    WINDOW_S,
    Failsafe,
    LogGate,
    Quarantine,
    Streak,
)
from appliance.kiosk.jobs import JobRunner


def test_an_experience_failing_limit_times_within_the_window_is_disabled_for_the_day() -> None:
    quarantine = Quarantine()
    day = "2026-11-30"
    assert [quarantine.failed("rps", t, day, "boom") for t in (0.0, WINDOW_S + 1, 2 * WINDOW_S + 2)] == [False] * 3
    assert not quarantine.disabled("rps", day)   # spread out: never LIMIT within the window
    results = [quarantine.failed("rps", 500.0 + t, day, "boom") for t in range(LIMIT)]
    assert results == [False] * (LIMIT - 1) + [True]
    assert quarantine.disabled("rps", day) and not quarantine.disabled("menu", day)
    assert quarantine.reasons(day) == [f"rps disabled for the rest of the day after {LIMIT} failures within "
                                       f"{WINDOW_S:g} s: boom"]
    assert quarantine.failed("rps", 600.0, day, "again") is False   # already disabled: said once
    assert not quarantine.disabled("rps", "2026-12-01") and quarantine.reasons("2026-12-01") == []


def test_the_failsafe_state_lasts_long_enough_and_a_streak_starves_the_watchdog_only_when_it_lasts() -> None:
    state = Failsafe("rps", "boom", 10.0)
    assert not state.over(10.0 + FAILSAFE_S - 0.01) and state.over(10.0 + FAILSAFE_S)
    streak = Streak()
    for t in range(0, int(WATCHDOG_GRACE_S) + 1, 2):   # a failure every 2 s: one streak
        streak.failed(float(t))
    assert streak.starving(WATCHDOG_GRACE_S + 1)
    assert not streak.starving(WATCHDOG_GRACE_S + HEALTHY_S + 1)   # healthy since: fed again
    streak.failed(100.0)
    assert not streak.starving(100.5)   # a new streak


def test_failures_are_logged_once_a_minute_with_the_count_held_back() -> None:
    gate = LogGate(every_s=60.0)
    assert gate.allow("rps", 0.0) == (True, 0)
    assert [gate.allow("rps", t) for t in (1.0, 2.0, 59.0)] == [(False, 0)] * 3
    assert gate.allow("menu", 3.0) == (True, 0)
    assert gate.allow("rps", 61.0) == (True, 3)


def test_jobs_run_in_order_off_the_loop_and_only_their_open_owners_get_results() -> None:
    import threading

    runner = JobRunner()
    try:
        release, hung = threading.Event(), threading.Event()
        runner.open(1)
        slow = runner.submit(lambda: release.wait(5) and "slow", "slow", 1)
        failing = runner.submit(lambda: 1 / 0, "failing", 1)
        runner.open(2)
        dropped = runner.submit(lambda: "never delivered", "dropped", 2)
        runner.cancel(2)
        runner.open(3)
        runner.submit(lambda: hung.wait(10), "hung", 3)   # another run's job that hangs...
        runner.open(4)
        other = runner.submit(lambda: "other", "other", 4)   # ...holds up no other run's
        assert runner.deliver() == [] and not slow.done
        delivered: list = []
        for _ in range(100):
            delivered += runner.deliver()
            if other in delivered:
                break
            threading.Event().wait(0.02)
        assert delivered == [other] and not slow.done   # run 1 still waits on its first job, in order
        release.set()
        for _ in range(100):
            delivered += runner.deliver()
            if len(delivered) == 3:
                break
            threading.Event().wait(0.02)
        assert delivered == [other, slow, failing] and slow.result() == "slow"
        try:
            failing.result()
        except ZeroDivisionError:
            pass
        else:
            raise AssertionError("the job's exception is raised by result()")
        assert not dropped.done
        runner.cancel(1)
        try:
            runner.submit(lambda: None, "late", 1)
        except ValueError as exc:
            assert "its scene has exited" in str(exc)
        else:
            raise AssertionError("a cancelled owner cannot submit")
    finally:
        hung.set()
        runner.stop()
