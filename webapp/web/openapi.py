"""`GET /openapi.json`: an OpenAPI 3.1 description of the JSON interface, for scripts.

The launch bodies are generated from the kinds' registry (each Field's type, bounds,
choices and whether it is required), so the document says what the code checks; the rest
is written here once, beside the routes it describes.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from webapp.core.kinds import Field, Kind, all_kinds
from webapp.core.listing import PAGE_SIZES
from webapp.core.models import MAX_TEXT, Status

bp = Blueprint("openapi", __name__)

STATUSES = [status.value for status in Status]


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/openapi.json")
def document() -> Response:
    response = jsonify(openapi_document(current_app.config["UPLOAD_MAX_BYTES"]))
    # The same for everyone and changed only by a new release.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def field_schema(field: Field) -> dict[str, Any]:
    """One parameter of a kind as JSON Schema: what Field.parse accepts from JSON."""
    schema: dict[str, Any]
    if field.type is bool:
        schema = {"type": "boolean"}
    elif field.type in (int, float):
        schema = {"type": "integer" if field.type is int else "number",
                  "minimum": field.minimum, "maximum": field.maximum}
    elif field.choices:
        schema = {"type": "string", "enum": list(field.choices)}
    else:
        schema = {"type": "string", "minLength": 1, "maxLength": field.max_length}
    if field.many:
        schema = {"type": "array", "items": schema, "uniqueItems": True,
                  "minItems": 1 if field.required else 0}
    if field.default is not None and not field.many:
        schema["default"] = field.default
    words = field.help or field.label
    return schema | ({"description": words} if words else {})


def launch_schema(kind: Kind) -> dict[str, Any]:
    """A JSON launch body of this kind. An upload field is filled by multipart only: in
    JSON the path it fills (its `archive_path`, say) names a file already there."""
    properties: dict[str, Any] = {
        "kind": {"const": kind.name},
        "description": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT,
                        "description": "what the tasks view shows; the kind's own words "
                                       "when left out"},
    }
    properties |= {field.name: field_schema(field) for field in kind.fields}
    required = ["kind", *(field.name for field in kind.fields if field.required)]
    return {"type": "object", "title": kind.title, "properties": properties,
            "required": required, "additionalProperties": False}


def _error(words: str) -> dict[str, Any]:
    return {"description": words,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(words: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": words, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


TASK_ID = {"name": "task_id", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
SINCE = {"name": "since", "in": "query", "required": False,
         "description": "the version an earlier answer gave (X-Live-Version): 204 while "
                        "nothing changed",
         "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}

REFUSALS = {
    "400": _error("the request is not understood; `error` says what is allowed"),
    "401": _error("no valid API token (missing, revoked or expired)"),
}
TOO_MANY = {"429": _error("too many tasks active or launched this minute; see Retry-After")}


def openapi_document(upload_max_bytes: int) -> dict[str, Any]:
    kinds = all_kinds()
    task = {
        "type": "object",
        "properties": {
            "id": {"type": "string"}, "kind": {"type": "string"},
            "description": {"type": "string"},
            "status": {"type": "string", "enum": STATUSES},
            "cancel_requested": {"type": "boolean"},
            "progress": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "progress_message": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "duration_seconds": {"type": ["number", "null"]},
            "outcome": {"type": ["string", "null"]},
            "attempt": {"type": "integer"},
            "rerun_of": {"type": ["string", "null"]},
        },
        "required": ["id", "kind", "description", "status", "cancel_requested", "created_at"],
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Background tasks",
            "version": _release(),
            "description": "The JSON interface: send `Accept: application/json` and "
                           "`Authorization: Bearer TOKEN`. The same URLs answer HTML to "
                           "browsers. Every refusal is JSON `{error, status}` whose `error` "
                           f"says what is allowed. Uploads (multipart/form-data, at most "
                           f"{upload_max_bytes} bytes) fill a kind's upload field.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/tasks": {
                "get": {
                    "summary": "Your tasks, newest first",
                    "parameters": [
                        {"name": "status", "in": "query", "required": False, "explode": True,
                         "schema": {"type": "array", "items": {"type": "string",
                                                               "enum": STATUSES}}},
                        {"name": "page", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000}},
                        {"name": "per_page", "in": "query", "required": False,
                         "schema": {"type": "integer", "enum": list(PAGE_SIZES)}},
                        SINCE,
                    ],
                    "responses": {"200": _json("a page of tasks", _ref("TaskList")),
                                  "204": {"description": "unchanged since `since`"},
                                  **REFUSALS},
                },
                "post": {
                    "summary": "Launch a task",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"oneOf": [_ref(f"Launch_{kind.name}") for kind in kinds],
                                   "discriminator": {"propertyName": "kind"}}}}},
                    "responses": {"201": _json("the new task", _ref("Task")),
                                  **REFUSALS, **TOO_MANY},
                },
            },
            "/tasks/{task_id}": {
                "get": {
                    "summary": "One task, with its details",
                    "parameters": [TASK_ID, SINCE],
                    "responses": {"200": _json("the task", _ref("Task")),
                                  "204": {"description": "unchanged since `since`"},
                                  "404": _error("no such task of yours"), **REFUSALS},
                },
            },
            "/tasks/{task_id}/cancel": {
                "post": {
                    "summary": "Ask a task to stop",
                    "parameters": [TASK_ID],
                    "responses": {"202": _json("cancelled, or asked to stop", _ref("Task")),
                                  "404": _error("no such task of yours"),
                                  "409": _error("already finished"), **REFUSALS},
                },
            },
            "/tasks/{task_id}/rerun": {
                "post": {
                    "summary": "Run a finished task of yours again",
                    "parameters": [TASK_ID],
                    "responses": {"201": _json("the new task", _ref("Task")),
                                  "403": _error("not your task"),
                                  "404": _error("no such task of yours"),
                                  "409": _error("still active, or an input is gone"),
                                  **REFUSALS, **TOO_MANY},
                },
            },
            "/tasks/cancel": {
                "post": {
                    "summary": "Cancel many tasks",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"type": "object", "additionalProperties": False,
                                   "properties": {
                                       "ids": {"type": "array", "maxItems": 1000,
                                               "items": TASK_ID["schema"]},
                                       "all": {"const": "queued"}}}}}},
                    "responses": {"202": _json("what happened to each", _ref("Cancelled")),
                                  **REFUSALS},
                },
            },
            "/spaces": {
                "get": {
                    "summary": "Your spaces and their states",
                    "responses": {"200": _json("your spaces", {
                        "type": "object", "properties": {"spaces": {"type": "array", "items": {
                            "type": "object", "properties": {
                                "name": {"type": "string"},
                                "state": {"type": "string", "enum": ["awake", "resting"]}}}}}}),
                        **REFUSALS},
                },
            },
            "/tokens": {
                "get": {
                    "summary": "Your API tokens",
                    "responses": {"200": _json("your tokens", {
                        "type": "object", "properties": {"tokens": {
                            "type": "array", "items": _ref("Token")}}}), **REFUSALS},
                },
            },
            "/tokens/{token_id}/revoke": {
                "post": {
                    "summary": "Revoke one of your API tokens",
                    "parameters": [{"name": "token_id", "in": "path", "required": True,
                                    "schema": {"type": "integer", "minimum": 1}}],
                    "responses": {"200": _json("revoked", {
                        "type": "object", "properties": {"revoked": {"type": "integer"}}}),
                        "404": _error("no such token of yours"), **REFUSALS},
                },
            },
            "/healthz": {
                "get": {
                    "summary": "Whether the database and the queue answer",
                    "security": [],
                    "responses": {
                        "200": _json("both answer", _ref("Health")),
                        "503": _json("one does not", _ref("Health")),
                    },
                },
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "flask tokens create NAME, or "
                                                          "the /tokens page"}},
            "schemas": {
                "Task": task,
                "TaskList": {"type": "object", "properties": {
                    "tasks": {"type": "array", "items": _ref("Task")},
                    "total": {"type": "integer"}, "page": {"type": "integer"},
                    "pages": {"type": "integer"}, "per_page": {"type": "integer"},
                    "statuses": {"type": "array", "items": {"type": "string"}},
                    "version": {"type": "string"}}},
                "Cancelled": {"type": "object", "properties": {
                    key: {"type": "array", "items": {"type": "string"}}
                    for key in ("cancelled", "cancel_requested", "unchanged")}},
                "Token": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "name": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "last_used_at": {"type": ["string", "null"], "format": "date-time"},
                    "expires_at": {"type": ["string", "null"], "format": "date-time"}}},
                "Health": {"type": "object", "properties": {
                    "database": {"type": "string"}, "queue": {"type": "string"}}},
                "Error": {"type": "object", "required": ["error", "status"], "properties": {
                    "error": {"type": "string", "minLength": 1,
                              "description": "what was wrong and what is allowed"},
                    "status": {"type": "integer"}}},
                **{f"Launch_{kind.name}": launch_schema(kind) for kind in kinds},
            },
        },
    }


def _release() -> str:
    try:
        return version("background-tasks")
    except PackageNotFoundError:
        return "unknown"
