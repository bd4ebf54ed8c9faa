"""Finding tasks: a search of the tasks view (words of the description, kinds, a creation
time range) read from the query string, and the SQL it adds to the listing's queries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, column, func, literal_column, select, table

from webapp.core.kinds import all_kinds
from webapp.core.models import Task, iso

# A search box's worth: longer input is refused rather than cut, so a shared URL never
# means less than it says.
MAX_QUERY_LENGTH = 200
MAX_WORDS = 10
# A search reads at most this many matches: the newest, with their count. A common word
# would otherwise make every search of a long history visit every match to count it.
MAX_MATCHES = 1000

# A word is a run of letters and digits; anything else (punctuation, operators of
# tsquery and FTS5, quotes, NUL) only separates words, so no input is ever syntax.
_WORD = re.compile(r"[^\W_]+")
# The words of descriptions (migration 0009f): a column on PostgreSQL, a table on SQLite;
# neither in the models.
_POSTGRESQL_WORDS = literal_column("tasks.task_words")
_SQLITE_WORDS = table("task_words", column("rowid"))


class InvalidSearch(ValueError):
    """A search the tasks view refuses; the message says what is allowed."""


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Search:
    """What a search asks for; empty, it asks for nothing and the listing is unfiltered."""

    query: str = ""
    kinds: tuple[str, ...] = ()
    # Creation times: `created_from` inclusive, `created_to` exclusive. `start` and `end`
    # keep them as the user wrote them, for URLs and forms.
    created_from: datetime | None = None
    created_to: datetime | None = None
    start: str = ""
    end: str = ""

    @property
    def words(self) -> list[str]:
        return words_of(self.query)

    def __bool__(self) -> bool:
        return bool(self.words or self.kinds or self.created_from or self.created_to)

    def matches(self, kind: str, description: str, created_at: datetime) -> bool:
        """The rule of `conditions` for one loaded task."""
        if self.kinds and kind not in self.kinds:
            return False
        if self.created_from and created_at < self.created_from:
            return False
        if self.created_to and created_at >= self.created_to:
            return False
        if not self.words:
            return True
        *whole, last = self.words
        present = words_of(description)
        return (all(word in present for word in whole)
                and any(word.startswith(last) for word in present))

    def query_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.query:
            args["q"] = self.query
        if self.kinds:
            args["kind"] = list(self.kinds)
        if self.start:
            args["from"] = self.start
        if self.end:
            args["to"] = self.end
        return args

    def to_json(self) -> dict[str, Any]:
        return {"q": self.query, "words": self.words, "kinds": list(self.kinds),
                "from": iso(self.created_from), "to": iso(self.created_to)}

    def conditions(self, dialect: str, owner_id: int | None) -> list[ColumnElement[bool]]:
        """WHERE clauses of the search, for a query of `tasks` (of one owner's, when
        owner_id is given: on SQLite the words index holds owners too)."""
        words = self.words_match(dialect, owner_id)
        return self.fields() + ([] if words is None else [words])

    def fields(self) -> list[ColumnElement[bool]]:
        """The conditions on kind and creation time."""
        found: list[ColumnElement[bool]] = []
        if self.kinds:
            found.append(Task.kind.in_(self.kinds))
        if self.created_from:
            found.append(Task.created_at >= self.created_from)
        if self.created_to:
            found.append(Task.created_at < self.created_to)
        return found

    def words_match(self, dialect: str, owner_id: int | None) -> ColumnElement[bool] | None:
        """Every word, the last one as a prefix (so a word being typed already matches);
        None without words."""
        if not self.words:
            return None
        *whole, last = self.words
        if dialect == "postgresql":
            terms = " & ".join([*whole, f"{last}:*"])
            words = bindparam("words", terms, unique=True)
            return _POSTGRESQL_WORDS.op("@@")(func.to_tsquery(literal_column("'simple'"), words))
        # Each word quoted: FTS5 reads it as a plain string, never as an operator.
        terms = " AND ".join([*(f'"{word}"' for word in whole), f'"{last}" *'])
        expression = f"description : ({terms})"
        if owner_id is not None:
            expression = f'owner_id : "{owner_id}" AND {expression}'
        matching = (select(_SQLITE_WORDS.c.rowid)
                    .where(literal_column("task_words").op("MATCH")(
                        bindparam("words", expression, unique=True))))
        return literal_column("tasks.rowid").in_(matching)


NO_SEARCH = Search()


def parse_search(query: str | None, kinds: list[str], start: str | None,
                 end: str | None) -> Search:
    """The search a query string asks for (`q`, `kind` repeated, `from`, `to`)."""
    query = (query or "").strip()
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidSearch(f"q must be at most {MAX_QUERY_LENGTH} characters, "
                            f"not {len(query)}.")
    if len(words_of(query)) > MAX_WORDS:
        raise InvalidSearch(f"q may hold at most {MAX_WORDS} words.")
    known = [kind.name for kind in all_kinds()]
    chosen: list[str] = []
    for kind in kinds:
        if kind == "":
            continue
        if kind not in known:
            raise InvalidSearch(f"Unknown kind {kind[:80]!r}; use any of: {', '.join(known)}.")
        if kind not in chosen:
            chosen.append(kind)
    start, end = (start or "").strip(), (end or "").strip()
    created_from = _moment("from", start, end_of_day=False)
    created_to = _moment("to", end, end_of_day=True)
    if created_from and created_to and created_from >= created_to:
        raise InvalidSearch(f"from ({start}) must be before to ({end}).")
    # Canonical order, so one search has one URL.
    return Search(query, tuple(k for k in known if k in chosen), created_from, created_to,
                  start, end)


def _moment(name: str, value: str, end_of_day: bool) -> datetime | None:
    """A date (a whole UTC day: `to` includes it) or a date and time (UTC unless it names
    its offset; `to` is exclusive)."""
    if value == "":
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time(), UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        shown = value[:40]
        raise InvalidSearch(
            f"{name} must be a date (2026-12-31) or a date and time (2026-12-31T14:30, "
            f"UTC unless it ends with an offset such as +01:00), not {shown!r}.") from None
