"""The security headers every answer carries: one list for the Flask app's hook
(webapp.web.responses) and for the polls answered before Flask (webapp.web.polls)."""

from __future__ import annotations

import functools


def frame_ancestors(setting: str) -> str:
    """FRAME_ANCESTORS as CSP source list: origins separated by spaces or commas."""
    return " ".join(setting.replace(",", " ").split()) or "'self'"


@functools.lru_cache(maxsize=8)
def security_headers(frame_ancestors_setting: str, https: bool) -> tuple[tuple[str, str], ...]:
    """What every answer carries, unless its view set it otherwise (FRAME_ANCESTORS and
    SECURE_COOKIES as given)."""
    policy = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "object-src 'none'; base-uri 'self'; form-action 'self'; "
              f"frame-ancestors {frame_ancestors(frame_ancestors_setting)}")
    headers = (("Content-Security-Policy", policy), ("X-Content-Type-Options", "nosniff"),
               ("Referrer-Policy", "same-origin"))
    # Served over HTTPS (SECURE_COOKIES): browsers keep to it for a year.
    return (*headers, ("Strict-Transport-Security", "max-age=31536000")) if https else headers
