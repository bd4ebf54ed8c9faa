"""`GET /healthz`: can this node reach the task database and the queue?"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, current_app, jsonify

from webapp.web.responses import task_queue

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    checks = {
        "database": current_app.extensions["database"].ping,
        "queue": task_queue().ping,
    }
    report: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
        except Exception as exc:
            log.warning("health check %s failed: %s", name, exc)
            report[name] = "unreachable"
        else:
            report[name] = "ok"
    healthy = all(state == "ok" for state in report.values())
    return jsonify(status="ok" if healthy else "unavailable", **report), 200 if healthy else 503
