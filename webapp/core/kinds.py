"""The registry of task kinds and the checking of their parameters.

Operations register themselves (`@task_kind`) when webapp.operations is imported, which
happens once where a process is assembled: create_app and webapp.workers.consumer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webapp.core.models import MAX_TEXT
from webapp.core.userfiles import PathError
from webapp.settings import Settings, parse_bool

if TYPE_CHECKING:
    from webapp.core.runtime import TaskContext

Operation = Callable[[dict[str, Any], "TaskContext"], str | None]
# Checks a path a user gave against their root and returns it normalised (webapp.core.userfiles).
PathCheck = Callable[[Path, str], str]

# What a launch request may carry besides the kind's own fields (`next`: where a form
# on another page goes back to when the launch is refused).
LAUNCH_KEYS = frozenset({"kind", "description", "csrf_token", "next"})


class InvalidParameters(ValueError):
    """A launch request the product refuses; the message says what is allowed.

    `field` names the field at fault, if one is, and `words` says what is wrong with it
    in a sentence for the person filling in the form (the message names the field, for
    scripts). `errors` holds that sentence for every field at fault.
    """

    def __init__(self, message: str, field: str | None = None, words: str | None = None) -> None:
        super().__init__(message)
        self.errors: dict[str, str] = {} if field is None else {field: words or _sentence(message)}


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


@dataclass(frozen=True)
class Field:
    """One parameter of a kind, as a form field, a CLI key=value or a JSON member.

    `type` is str, int, float or bool; `choices` limits text to a few words; `many`
    takes a list (a repeated form field or CLI key); `path` checks the text as a path
    in the owner's folder; `upload` names a file input whose upload fills this field.
    """

    name: str
    type: type = str
    label: str = ""
    help: str = ""
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = 1000
    choices: tuple[str, ...] = ()
    many: bool = False
    path: PathCheck | None = None
    upload: str | None = None
    # Words for the choices whose names are not words for people (`ignore_existing`).
    choice_labels: tuple[tuple[str, str], ...] = ()

    def choice_label(self, choice: str) -> str:
        return dict(self.choice_labels).get(choice, choice)

    @property
    def input_type(self) -> str:
        """How a form asks for it: checkbox, select, checkboxes (one per option), number
        or text. A field filled by an upload also gets a file input (templates/_forms.html)."""
        if self.type is bool:
            return "checkbox"
        if self.choices:
            return "select"
        if self.many:
            return "checkboxes"
        if self.type in (int, float):
            return "number"
        return "text"

    def refuse(self, message: str, words: str) -> InvalidParameters:
        """The refusal of this field: `message` follows its name for scripts, `words` is
        what the form says next to it."""
        return InvalidParameters(f"{self.name}{message}", self.name, words)

    def parse(self, raw: Any, root: Path) -> Any:
        if self.many:
            return self._parse_many(raw, root)
        if raw is None or raw == "":
            if self.required and self.upload:
                raise InvalidParameters(f"upload a file as {self.upload}, or give {self.name}",
                                        self.name, "Choose a file to upload.")
            if self.required:
                raise self.refuse(" is required", "Fill this in.")
            return self.default
        if self.type in (int, float):
            return self._parse_number(raw)
        if self.type is bool:
            return self._parse_bool(raw)
        if not isinstance(raw, str):
            raise self.refuse(" must be text", "Give text here.")
        check_text(self.name, raw)
        if len(raw) > self.max_length:
            raise self.refuse(f" must be at most {self.max_length} characters",
                              f"At most {self.max_length} characters, please.")
        if self.choices and raw not in self.choices:
            raise self.refuse(f" must be one of: {', '.join(self.choices)}",
                              "Choose one of the options.")
        if self.path is not None:
            try:
                return self.path(root, raw)
            except PathError as exc:
                raise self.refuse(f": {exc}", _sentence(str(exc))) from None
        return raw

    def _parse_many(self, raw: Any, root: Path) -> list[Any]:
        items = raw if isinstance(raw, list) else [] if raw is None else [raw]
        # Empty form inputs are simply not filled in.
        one = replace(self, many=False, required=True)
        values = [one.parse(item, root) for item in items if item != ""]
        if self.required and not values:
            raise self.refuse(" needs at least one value", "Choose at least one.")
        if len(set(map(str, values))) != len(values):
            raise self.refuse(" names the same value twice", "Name each one once.")
        return values

    def _parse_bool(self, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        try:
            return parse_bool(str(raw))
        except ValueError:
            raise self.refuse(" must be true or false", "Yes or no.") from None

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
        except (TypeError, ValueError, OverflowError):
            raise self.refuse(f" must be {noun}{bounds}", _sentence(f"{noun}{bounds}")) from None
        if not math.isfinite(value) or not self.minimum <= value <= self.maximum:
            raise self.refuse(f" must be {noun}{bounds}", _sentence(f"{noun}{bounds}"))
        return value


def check_text(name: str, text: str) -> None:
    """Refuse text that a database, a log or a file name cannot hold: JSON can carry a lone
    surrogate (\\ud800), which has no UTF-8 form, and PostgreSQL text holds no NUL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameters(
            f"{name} must be Unicode text: it holds a lone surrogate (such as \\ud800), "
            "half of a character that UTF-8 cannot write", name,
            "This text holds a character that cannot be stored; type it again.") from None
    if "\x00" in text:
        raise InvalidParameters(f"{name} must not hold NUL characters (\\u0000)", name,
                                "This text holds a NUL character, which cannot be stored.")


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
    # What it does, in a sentence: how the form's list of operations explains it.
    summary: str = ""
    # Offered in the forms to administrators only (still launched by anyone's API or CLI).
    for_admins: bool = False
    # Attempts in all: a TransientError is retried, with backoff, while attempts remain.
    max_attempts: int = 1
    # Seconds before the first retry; doubled for each later one.
    retry_delay: float = 5.0
    # Safe to run again from the start after its worker died mid-way.
    retry_safe: bool = False
    # Checks across fields, after each field is parsed, with the owner's folder; raises
    # InvalidParameters.
    check: Callable[[dict[str, Any], Path], None] | None = None
    # What the kind takes from the configuration, handed to it as TaskContext.settings.
    settings: Callable[[Settings], Any] | None = None

    def parse(self, raw: Mapping[str, Any], root: Path) -> dict[str, Any]:
        """Check raw parameters; paths are checked against the owner's folder, root."""
        uploads = {f.upload for f in self.fields if f.upload}
        known = {f.name for f in self.fields} | uploads | LAUNCH_KEYS
        unknown = sorted(set(raw) - known)
        if unknown:
            allowed = ", ".join(f.name for f in self.fields) or "none"
            raise InvalidParameters(
                f"{self.name} does not take {', '.join(unknown)}; its fields are: {allowed}"
            )
        if given := sorted(uploads & set(raw)):
            # An upload reaches here only when it was not a file (JSON, say).
            raise InvalidParameters(
                f"{given[0]} must be a file uploaded as multipart/form-data"
            )
        # Every field is checked, so a form can mark all that are at fault at once; the
        # first refusal is the message.
        params: dict[str, Any] = {}
        refused: list[InvalidParameters] = []
        for one in self.fields:
            try:
                params[one.name] = one.parse(raw.get(one.name), root)
            except InvalidParameters as exc:
                refused.append(exc)
        if refused:
            first = refused[0]
            for other in refused[1:]:
                first.errors |= other.errors
            raise first
        if self.check is not None:
            self.check(params, root)
        return params

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    @property
    def takes_upload(self) -> bool:
        return any(f.upload for f in self.fields)


KINDS: dict[str, Kind] = {}


def task_kind(
    name: str,
    *,
    title: str,
    describe: Callable[[dict[str, Any]], str],
    fields: tuple[Field, ...],
    check: Callable[[dict[str, Any], Path], None] | None = None,
    settings: Callable[[Settings], Any] | None = None,
    summary: str = "",
    for_admins: bool = False,
    **policy: Any,
) -> Callable[[Operation], Operation]:
    """Register an operation as a kind users can launch; `settings` picks what it takes
    from the configuration; `summary` says what it does; `for_admins` offers it in the
    forms to administrators only; `policy` sets the retry fields."""

    def register(run: Operation) -> Operation:
        KINDS[name] = Kind(
            name=name,
            title=title,
            run=run,
            describe=describe,
            fields=fields,
            check=check,
            settings=settings,
            summary=summary,
            for_admins=for_admins,
            **policy,
        )
        return run

    return register


def get_kind(name: Any) -> Kind:
    if not isinstance(name, str) or name not in KINDS:
        choices = ", ".join(sorted(KINDS))
        shown = name if isinstance(name, str) and name else "(none)"
        raise InvalidParameters(f"Unknown kind {shown!r}; choose one of: {choices}")
    return KINDS[name]


def kind_named(name: str) -> Kind | None:
    """The kind, or None for one that no longer exists (old records may name one)."""
    return KINDS.get(name)


def all_kinds() -> list[Kind]:
    return sorted(KINDS.values(), key=lambda kind: kind.name)


def describe(kind: Kind, params: dict[str, Any], given: Any) -> str:
    """The user's own description when given, else the kind's own words."""
    if given is None or given == "":
        return kind.describe(params)[:MAX_TEXT]
    if not isinstance(given, str):
        raise InvalidParameters("description must be text", "description", "Give text here.")
    check_text("description", given)
    text = " ".join(given.split())
    if not text or len(text) > MAX_TEXT:
        raise InvalidParameters(f"description must be 1 to {MAX_TEXT} characters",
                                "description", f"At most {MAX_TEXT} characters, please.")
    return text
