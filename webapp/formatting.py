"""Template filters for times and durations: UTC in the markup, readable text for people."""

from __future__ import annotations

from datetime import datetime

from flask import Flask


def init_app(app: Flask) -> None:
    app.add_template_filter(iso_utc)
    app.add_template_filter(utc_text)
    app.add_template_filter(duration)


def iso_utc(moment: datetime | None) -> str:
    """The instant for `<time datetime>`; the browser shows it in the user's zone."""
    return "" if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def utc_text(moment: datetime | None) -> str:
    """What shows before the script turns it into the user's own time zone."""
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
