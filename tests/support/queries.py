"""What a request asks of the database, for tests that count queries."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import event


def statements_of(app: Flask, request: Any) -> tuple[Any, list[str]]:
    statements: list[str] = []

    def seen(_conn, _cursor, sql, *_args) -> None:
        statements.append(sql)

    engines = app.extensions["database"].engines
    for engine in engines:
        event.listen(engine, "before_cursor_execute", seen)
    try:
        response = request()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", seen)
    return response, statements
