"""Template filters and helpers for times, durations and attempts: UTC in the markup,
readable text for people. Plain functions rather than macros: the tasks view calls them
for every row, and a Jinja macro call costs several times a function's."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from flask import Flask
from markupsafe import Markup

from webapp.core.kinds import Field, kind_named
from webapp.core.models import Task
from webapp.core.userfiles import UPLOADS


def init_app(app: Flask) -> None:
    app.add_template_filter(iso_utc)
    app.add_template_filter(utc_text)
    app.add_template_filter(duration)
    app.add_template_global(moment)
    app.add_template_global(attempt_note)
    app.add_template_global(status_badge)
    app.add_template_global(kind_title)
    app.add_template_global(parameters)


# An icon and a word as well as a colour, so status never rests on colour alone.
STATUS_LOOKS = {
    "queued": ("◷", "Queued"),
    "running": ("◔", "Running"),
    "completed": ("✓", "Completed"),
    "failed": ("!", "Failed"),
    "cancelled": ("⊘", "Cancelled"),
    "cancelling": ("◌", "Cancelling…"),
}


def status_badge(task: Task) -> Markup:
    key = task.shown_status
    icon, word = STATUS_LOOKS[key]
    return Markup(f'<span class="status status-{key}"><span class="status-icon" '
                  f'aria-hidden="true">{icon}</span>{word}</span>')


def moment(value: datetime | None, clock: bool = False) -> Markup:
    """A `<time>` with the UTC instant; app.js shows it in the user's zone. Empty for None.
    A `clock` moment shows the time of day to the second, without the relative hint."""
    if value is None:
        return Markup("")
    # Both texts are digits and punctuation made here: nothing to escape.
    text = utc_text(value)
    shown = value.strftime("%H:%M:%S") if clock else text
    attribute = " data-clock" if clock else ""
    return Markup(f'<time datetime="{iso_utc(value)}" title="{text}"{attribute}>{shown}</time>')


def attempt_note(task: Task) -> str:
    """" · attempt 2 of 3" for a retried task of a kind that retries; else nothing."""
    kind = kind_named(task.kind)
    if kind is None or kind.max_attempts <= 1 or task.attempts_spent <= 1:
        return ""
    return f" · attempt {task.attempts_spent} of {kind.max_attempts}"


def kind_title(name: str) -> str:
    """The kind in words ("Extract an archive"); its name if it no longer exists."""
    kind = kind_named(name)
    return kind.title if kind is not None else name


def parameters(task: Task) -> list[tuple[str, str]]:
    """The task's parameters as people read them: each field's label and its value in
    words (yes or no, a choice's words, an upload's file name)."""
    kind = kind_named(task.kind)
    if kind is None:
        return [(name, str(value)) for name, value in sorted(task.params.items())]
    return [(one.label or one.name, _value_text(one, task.params.get(one.name)))
            for one in kind.fields if one.name in task.params]


def _value_text(field: Field, value: Any) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_value_text(field, one) for one in value)
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    if field.choices:
        return field.choice_label(text)
    if field.upload and text.startswith(f"{UPLOADS}/"):
        return f"{PurePosixPath(text).name} (uploaded)"
    return text


def iso_utc(moment: datetime | None) -> str:
    """The instant for `<time datetime>`; the browser shows it in the user's zone."""
    return "" if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def utc_text(moment: datetime | None) -> str:
    """What shows before the script turns it into the user's own time zone."""
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return "under a second"
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
