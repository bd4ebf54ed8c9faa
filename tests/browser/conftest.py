"""Browser fixtures: Debian's Chromium driven by Playwright against a real web server
process, the suite's real consumer, and the example portal on other origins.

Without /usr/bin/chromium the browser tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.accounts import Account
from tests.support.processes import wait_for
from tests.support.services import free_port
from webapp.settings import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
AXE = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
# A run writes its screenshots to build/ (ignored by git), so tests never change tracked
# files; `make screenshots` points this at docs/screenshots to refresh the README's.
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or PROJECT_ROOT / "build" / "screenshots")

# Plenty for a person; long enough that a test sees what its own action refreshed.
SLOW_POLL = "600"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Server:
    """A process serving HTTP on a port of its own, stopped at the end."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(argv: list[str], env: dict[str, str], url: str, probe: str,
                 name: str) -> Server:
    log = Path(env["INSTANCE_PATH"]) / f"{name}.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    server = Server(url, process, log)
    try:
        wait_for(lambda: process.poll() is not None or _answers(url + probe), timeout=30,
                 interval=0.1)
    except AssertionError:
        server.stop()
        raise
    if process.poll() is not None:
        pytest.fail(f"{name} did not start:\n{log.read_text()}")
    return server


@dataclass
class Site:
    """The app served on a port, and the origins allowed to frame it."""

    url: str
    portal_port: int
    environment: dict[str, str] = field(repr=False)

    @property
    def portal_origin(self) -> str:
        return f"http://localhost:{self.portal_port}"


def _start_site(environment: dict[str, str], poll_seconds: str, name: str) -> tuple[Site, Server]:
    port, portal_port = free_port(), free_port()
    env = {
        **environment,
        "POLL_SECONDS": poll_seconds,
        # The example portal runs on http://localhost:..., another site than 127.0.0.1.
        "FRAME_ANCESTORS": f"'self' http://localhost:{portal_port}",
    }
    url = f"http://127.0.0.1:{port}"
    server = start_server(
        [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "run", "--host",
         "127.0.0.1", "--port", str(port), "--with-threads", "--no-reload", "--no-debugger"],
        env, url, "/healthz", name,
    )
    return Site(url, portal_port, env), server


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs /usr/bin/chromium for the browser tests: run `make test`")
        pytest.skip("no /usr/bin/chromium: `make browser` (or `make test`) installs it")
    if not AXE.exists():
        pytest.fail("node_modules/axe-core is missing: run `make assets` (npm ci)")
    return CHROMIUM


@pytest.fixture(scope="session")
def site(chromium_path: Path, consumer: None, environment: dict[str, str]) -> Iterator[Site]:
    """The app as a person meets it; the bell polls rarely, so what a test sees is what
    its own actions refreshed."""
    site, server = _start_site(environment, SLOW_POLL, "web")
    yield site
    server.stop()


@pytest.fixture(scope="session")
def fast_poll_site(chromium_path: Path, consumer: None,
                   environment: dict[str, str]) -> Iterator[Site]:
    """The same app with a bell that polls every second."""
    site, server = _start_site(environment, "1", "web-fast-poll")
    yield site
    server.stop()


@pytest.fixture
def start_portal(site: Site) -> Iterator[Callable[..., str]]:
    """The example portal for one user, on the allowed origin or on another port."""
    servers: list[Server] = []

    def start(user_name: str, allowed: bool = True) -> str:
        port = site.portal_port if allowed else free_port()
        env = {**site.environment, "PORTAL_PORT": str(port), "APP_URL": site.url,
               "PORTAL_USER": user_name}
        url = f"http://localhost:{port}"
        servers.append(start_server([sys.executable, "-m", "webapp.dev.portal"], env,
                                    f"http://127.0.0.1:{port}", "/", f"portal-{port}"))
        return url + "/"

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def playwright_browser(chromium_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_path),
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking"],
        )
        yield browser
        browser.close()


class Console:
    """What the pages said on the console: a CSP violation or a script error fails the test."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.expected: list[str] = []

    def expect(self, text: str) -> None:
        """A violation the test provokes on purpose."""
        self.expected.append(text)

    def listen(self, page: Any) -> None:
        page.on("console", lambda message: self.messages.append(
            f"{message.type}: {message.text}") if message.type in ("error", "warning") else None)
        page.on("pageerror", lambda error: self.messages.append(f"pageerror: {error}"))

    def problems(self) -> list[str]:
        return [m for m in self.messages
                if ("Content Security Policy" in m or m.startswith("pageerror"))
                and not any(text in m for text in self.expected)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def new_page(playwright_browser: Any, console: Console) -> Iterator[Callable[..., Any]]:
    """Pages in fresh browser contexts (own cookies); their console is checked at the end."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        context = playwright_browser.new_context(**options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        console.listen(page)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not console.problems(), console.problems()


def sign_in(page: Any, site: Site, account: Account, path: str = "/tasks") -> Any:
    """Through the login form, as a person would; lands on `path`."""
    page.goto(f"{site.url}/login?next={path}")
    page.get_by_label("Name").fill(account.user.name)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site.url}{path}")
    return page


@pytest.fixture
def signed_in(new_page: Callable[..., Any], site: Site,
              account: Account) -> Callable[..., Any]:
    def make(path: str = "/tasks", **options: Any) -> Any:
        return sign_in(new_page(**options), site, account, path)

    return make


def until(page: Any, predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait while Playwright goes on delivering the page's events (time.sleep would not)."""
    for _ in range(int(timeout * 20)):
        if predicate():
            return
        page.wait_for_timeout(50)
    assert predicate(), f"not true within {timeout} s"


def axe_violations(page_or_frame: Any, selector: str | None = None) -> list[dict[str, Any]]:
    """Serious and critical findings of axe-core (evaluated, so the page's CSP allows it)."""
    if not page_or_frame.evaluate("typeof window.axe !== 'undefined'"):
        page_or_frame.evaluate(AXE.read_text() + "\n;undefined")
    results = page_or_frame.evaluate(
        "async (selector) => (await axe.run(selector ? document.querySelector(selector) "
        ": document, {resultTypes: ['violations']})).violations",
        selector,
    )
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [(n["target"], n.get("failureSummary")) for n in v["nodes"]][:5]}
        for v in results if v["impact"] in ("serious", "critical")
    ]


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
