"""The registry of task kinds and the checking of their parameters."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webapp.runtime import TaskContext

Operation = Callable[[dict[str, Any], "TaskContext"], str | None]

MAX_DESCRIPTION = 500


class InvalidParameters(ValueError):
    """A launch request the product refuses; the message says what is allowed."""


@dataclass(frozen=True)
class Field:
    """One parameter of a kind, as a form field, a CLI key=value or a JSON member."""

    name: str
    type: type = str
    label: str = ""
    help: str = ""
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = 1000

    def parse(self, raw: Any) -> Any:
        if raw is None or raw == "":
            if self.required:
                raise InvalidParameters(f"{self.name} is required")
            return self.default
        if self.type in (int, float):
            return self._parse_number(raw)
        if not isinstance(raw, str):
            raise InvalidParameters(f"{self.name} must be text")
        if len(raw) > self.max_length:
            raise InvalidParameters(f"{self.name} must be at most {self.max_length} characters")
        return raw

    def _parse_number(self, raw: Any) -> int | float:
        noun = "a whole number" if self.type is int else "a number"
        bounds = f" from {self.minimum:g} to {self.maximum:g}"
        try:
            if isinstance(raw, bool):
                raise ValueError
            if self.type is int:
                value: int | float = int(raw) if not isinstance(raw, float) else _exact_int(raw)
            else:
                value = float(raw)
        except (TypeError, ValueError):
            raise InvalidParameters(f"{self.name} must be {noun}{bounds}") from None
        if not math.isfinite(value) or not self.minimum <= value <= self.maximum:
            raise InvalidParameters(f"{self.name} must be {noun}{bounds}")
        return value


def _exact_int(value: float) -> int:
    if not value.is_integer():
        raise ValueError
    return int(value)


@dataclass(frozen=True)
class Kind:
    name: str
    title: str
    run: Operation
    describe: Callable[[dict[str, Any]], str]
    fields: tuple[Field, ...] = field(default_factory=tuple)
    # Attempts in all: a TransientError is retried, with backoff, while attempts remain.
    max_attempts: int = 1
    # Seconds before the first retry; doubled for each later one.
    retry_delay: float = 5.0
    # Safe to run again from the start after its worker died mid-way.
    retry_safe: bool = False

    def parse(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        known = {f.name for f in self.fields} | {"kind", "description", "csrf_token"}
        unknown = sorted(set(raw) - known)
        if unknown:
            allowed = ", ".join(f.name for f in self.fields) or "none"
            raise InvalidParameters(
                f"{self.name} does not take {', '.join(unknown)}; its fields are: {allowed}"
            )
        return {f.name: f.parse(raw.get(f.name)) for f in self.fields}


KINDS: dict[str, Kind] = {}


def task_kind(
    name: str,
    *,
    title: str,
    describe: Callable[[dict[str, Any]], str],
    fields: tuple[Field, ...],
    **policy: Any,
) -> Callable[[Operation], Operation]:
    """Register an operation as a kind users can launch; `policy` sets the retry fields."""

    def register(run: Operation) -> Operation:
        KINDS[name] = Kind(
            name=name, title=title, run=run, describe=describe, fields=fields, **policy
        )
        return run

    return register


def get_kind(name: Any) -> Kind:
    _load_operations()
    if not isinstance(name, str) or name not in KINDS:
        choices = ", ".join(sorted(KINDS))
        shown = name if isinstance(name, str) and name else "(none)"
        raise InvalidParameters(f"Unknown kind {shown!r}; choose one of: {choices}")
    return KINDS[name]


def kind_named(name: str) -> Kind | None:
    """The kind, or None for one that no longer exists (old records may name one)."""
    _load_operations()
    return KINDS.get(name)


def all_kinds() -> list[Kind]:
    _load_operations()
    return sorted(KINDS.values(), key=lambda kind: kind.name)


def _load_operations() -> None:
    # Importing the package registers every operation it holds.
    import webapp.operations  # noqa: F401


def describe(kind: Kind, params: dict[str, Any], given: Any) -> str:
    """The user's own description when given, else the kind's own words."""
    if given is None or given == "":
        return kind.describe(params)[:MAX_DESCRIPTION]
    if not isinstance(given, str):
        raise InvalidParameters("description must be text")
    text = " ".join(given.split())
    if not text or len(text) > MAX_DESCRIPTION:
        raise InvalidParameters(f"description must be 1 to {MAX_DESCRIPTION} characters")
    return text
