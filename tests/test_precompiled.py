"""A statement compiled once and run by the driver (db.Precompiled) gives the rows
SQLAlchemy gives for it: the same values, of the same types, with the same parameters,
on either database."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import bindparam, func, literal, select

from tests.support.accounts import Account
from webapp.core.db import Precompiled
from webapp.core.models import Status, Task, utcnow


def test_the_rows_are_those_sqlalchemy_gives(app: Flask, account: Account) -> None:
    finished = account.add_task(Status.COMPLETED)
    running = account.add_task(Status.RUNNING)
    with app.extensions["database"].session() as db:
        db.get(Task, running.id).progress = 0.25
        db.get(Task, finished.id).finished_at = utcnow() + timedelta(seconds=3)
        db.commit()
    statement = (
        select(Task.id, Task.status, Task.progress, Task.created_at, Task.finished_at,
               Task.version, func.count().over().label("total"))
        .where(Task.owner_id == bindparam("owner_id"),
               Task.status.in_([literal(Status.RUNNING.value),
                                literal(Status.COMPLETED.value)]))
        .order_by(Task.created_at.desc(), Task.id.desc())
    )
    compiled_once = Precompiled(statement)
    with app.extensions["database"].session() as db:
        for _ in range(2):  # the first run learns the result's types, later ones reuse them
            expected = [tuple(row) for row in db.execute(statement,
                                                         {"owner_id": account.user.id})]
            got = [tuple(row) for row in compiled_once.rows(db, {"owner_id": account.user.id})]
            assert got == expected and len(got) == 2
            assert [list(map(type, row)) for row in got] == [
                list(map(type, row)) for row in expected]
            assert got[0][3].tzinfo is not None  # times come back as UTC, as the column says
