"""An example portal on another origin that embeds the tasks view, for trying the iframe.

`make run` serves it at http://localhost:PORTAL_PORT/ beside the app on 127.0.0.1:PORT:
another host name, so the iframe is cross-site as it is in a real portal. Every page load
signs a fresh single-use embed token with EMBED_SECRET_KEY (the one `make run`'s app reads
from the same instance folder), as a real portal would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from flask import Flask, render_template
from werkzeug.serving import make_server

from webapp.settings import PROJECT_ROOT, Settings
from webapp.web.embed import embed_url, sign_token


def create_portal(app_url: str, user_name: str, secret_key: str) -> Flask:
    portal = Flask(__name__, template_folder=str(PROJECT_ROOT / "templates" / "portal"),
                   static_folder=None)

    @portal.get("/")
    def index() -> str:
        return render_template(
            "index.html",
            frame_url=embed_url(app_url, sign_token(secret_key, user_name)),
            app_url=app_url,
            user_name=user_name,
        )

    return portal


def main() -> int:
    port = int(os.environ.get("PORTAL_PORT", "5001"))
    app_url = os.environ.get("APP_URL") or f"http://127.0.0.1:{os.environ.get('PORT', '5000')}"
    user_name = os.environ.get("PORTAL_USER", "demo")
    portal = create_portal(app_url, user_name, Settings.from_env().embed_secret_key)
    server = make_server("127.0.0.1", port, portal, threaded=True)
    # Set explicitly: a shell that starts `make run` in the background ignores SIGINT, and
    # the devserver stops its children with it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"  Example portal: http://localhost:{port}/  (embeds {app_url} as {user_name!r})",
          flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
