"""The housekeeping beat schedule: daily cleanup at 02:00 in BEAT_TIMEZONE, resources every minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from celery import Celery
from celery.schedules import crontab

from geminivideo.celery_base import build_config
from geminivideo.config import Settings, get_settings
from geminivideo.errors import ConfigError
from geminivideo.ml import celery_app as ml_app
from geminivideo.video import celery_app as video_app


def video_schedule(**values: object) -> dict[str, dict[str, object]]:
    return build_config(video_app.SPEC, Settings(**values))["beat_schedule"]  # type: ignore[arg-type]


def test_defaults_daily_cleanup_and_a_monitor_that_expires_within_its_period() -> None:
    schedule = video_schedule()
    assert set(schedule) == {"cleanup-daily", "monitor-resources"}
    cleanup = schedule["cleanup-daily"]["schedule"]
    assert isinstance(cleanup, crontab) and cleanup.hour == {2} and cleanup.minute == {0}
    assert schedule["monitor-resources"]["schedule"] == timedelta(seconds=60)
    assert schedule["monitor-resources"]["options"] == {"expires": 55}


def test_intervals_come_from_the_settings() -> None:
    schedule = video_schedule(cleanup_interval_s=3600, monitor_interval_s=10)
    assert schedule["cleanup-daily"]["schedule"] == timedelta(hours=1)
    assert schedule["monitor-resources"]["schedule"] == timedelta(seconds=10)
    assert schedule["monitor-resources"]["options"] == {"expires": 5}


def test_beat_probe_sends_each_apps_own_ping() -> None:
    video = video_schedule(beat_probe_interval_s=5)["beat-probe"]
    ml = build_config(ml_app.SPEC, Settings(beat_probe_interval_s=5))["beat_schedule"]["beat-probe"]
    assert (video["task"], ml["task"]) == ("video_ping", "ml_ping")
    assert video["schedule"] == timedelta(seconds=5)


def _next_cleanup_utc(timezone: str, now_utc: datetime) -> datetime:
    app = Celery("tz-probe", set_as_current=False)
    app.conf.update(build_config(video_app.SPEC, Settings(beat_timezone=timezone)))
    cron = app.conf.beat_schedule["cleanup-daily"]["schedule"]
    bound = crontab(minute=cron._orig_minute, hour=cron._orig_hour, app=app, nowfun=lambda: now_utc)
    return now_utc + bound.remaining_estimate(now_utc - timedelta(minutes=1))


@pytest.mark.parametrize(("timezone", "expected_hour_utc"), [("UTC", 2), ("Europe/Berlin", 1), ("Asia/Tokyo", 17)])
def test_cleanup_runs_at_two_in_the_beat_timezone(timezone: str, expected_hour_utc: int) -> None:
    now = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    when = _next_cleanup_utc(timezone, now).astimezone(UTC)
    assert (when.hour, when.minute) == (expected_hour_utc, 0)
    assert timedelta(0) < when - now <= timedelta(days=1)


def test_an_unknown_timezone_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEAT_TIMEZONE", "Mars/Olympus_Mons")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match="BEAT_TIMEZONE"):
            get_settings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
