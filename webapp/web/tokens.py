"""The API tokens page: a signed-in user creates tokens (each shown once), sees when each
was made, last used and expires, and revokes them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    g,
    get_flashed_messages,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from webapp.core.db import get_session
from webapp.core.models import ApiToken
from webapp.web.auth import (
    MAX_TOKEN_ID,
    create_token,
    login_required,
    revoke_token,
    user_tokens,
)
from webapp.web.formatting import iso_utc
from webapp.web.responses import wants_json

bp = Blueprint("tokens", __name__)

# The flash category that carries a new token to the one page that shows it.
NEW_TOKEN = "new-token"
MAX_DAYS = 3650


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def token_json(token: ApiToken) -> dict[str, Any]:
    return {"id": token.id, "name": token.name, "created_at": iso_utc(token.created_at),
            "last_used_at": iso_utc(token.last_used_at) or None,
            "expires_at": iso_utc(token.expires_at) or None}


@bp.get("/tokens")
@login_required
def index() -> Response | str:
    tokens = user_tokens(get_session(), g.user)
    if wants_json():
        return jsonify(tokens=[token_json(token) for token in tokens])
    created = get_flashed_messages(category_filter=[NEW_TOKEN])
    return render_template("tokens/index.html", tokens=tokens,
                           created=created[0] if created else None)


@bp.post("/tokens")
@login_required
def create() -> Response:
    """A new token of the signed-in user's. Not with a token: a leaked token must not be
    able to make itself a successor that outlives its expiry or its revocation."""
    if g.auth != "session":
        abort(403, "Create API tokens when signed in (the API tokens page), or with "
                   "'flask tokens create NAME'; a token cannot create tokens.")
    name = request.form.get("name", "")
    expires_in = _expiry(request.form.get("expires_in_days", "").strip())
    db = get_session()
    try:
        token = create_token(db, g.user, name, expires_in)
    except ValueError as exc:
        abort(400, f"{exc}.")
    if wants_json():
        made = user_tokens(db, g.user)[0]
        response = jsonify(token_json(made) | {"token": token})
        response.status_code = 201
        return response
    # Shown on the next page once, then never again: only its hash is kept.
    flash(token, NEW_TOKEN)
    return redirect(url_for("tokens.index"), 303)


def _expiry(days: str) -> timedelta | None:
    if not days:
        return None
    if not days.isascii() or not days.isdigit() or not 1 <= int(days) <= MAX_DAYS:
        abort(400, f"expires_in_days must be a whole number of days from 1 to {MAX_DAYS}, "
                   "or empty for a token that lasts until revoked.")
    return timedelta(days=int(days))


@bp.post(f"/tokens/<int(min=1, max={MAX_TOKEN_ID}):token_id>/revoke")
@login_required
def revoke(token_id: int) -> Response:
    if not revoke_token(get_session(), token_id, owner=g.user):
        abort(404, "There is no such API token, or it is not yours.")
    if wants_json():
        return jsonify(revoked=token_id)
    flash("The token was revoked: it no longer works.", "status")
    return redirect(url_for("tokens.index"), 303)
