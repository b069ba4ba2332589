"""Helpers of the leaderboard page's tests: an HTTP client, a headless Chromium, boards.

The browser is Debian's Chromium (never a downloaded one), launched with the flags a
root sandbox needs and kept off every network but loopback: a dead proxy for anything
else (Chromium never proxies loopback), and :func:`loopback_only` refuses, and lists,
every request a page makes elsewhere.
"""

from __future__ import annotations

import http.client
import json
import random
import ssl
import struct
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

from gymrpc_server.scores import Episode, ScoreStore

from .scores_testing import START, episode

__all__ = [
    "CHROMIUM",
    "FAILING_ENV",
    "TOKENS",
    "Reply",
    "bearer",
    "chromium",
    "fill_realistic_boards",
    "loopback_only",
    "png_size",
    "record_all",
    "request",
    "screenshot_board",
    "sign_in",
]

CHROMIUM = Path("/usr/bin/chromium")
_CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Nothing listens on port 9 here: every non-loopback request fails at once.
    "--proxy-server=http://127.0.0.1:9",
]
#: The tokens of tests/support/gymrpc_testing.py's TOKENS_TOML (bob is a user, carol an admin).
TOKENS = {
    "alice": "alice-token-0123456789",
    "bob": "bob-token-0123456789",
    "carol": "carol-token-0123456789",
}


@dataclass(frozen=True)
class Reply:
    """An HTTP response, read whole.

    Attributes:
        status: The status code.
        headers: Every header, in order, repeated ones (Set-Cookie) included.
        body: The body, as sent (not decompressed).
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any case), or None."""
        found = self.all(name)
        return found[0] if found else None

    def all(self, name: str) -> list[str]:
        """Every header called ``name``."""
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode("utf-8")


def request(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Reply:
    """One HTTP request on a fresh connection; redirects are not followed."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=30, context=ssl_context
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


def bearer(user: str) -> dict[str, str]:
    """The Authorization header of ``user``'s token."""
    return {"Authorization": f"Bearer {TOKENS[user]}"}


def record_all(store: ScoreStore, episodes: Iterable[Episode]) -> None:
    """Record ``episodes`` and wait until they are written."""
    for item in episodes:
        assert store.record(item)
    assert store.flush(timeout=30)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium with a fresh profile of its own, closed afterwards."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=_CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def loopback_only(context: BrowserContext, origin: str) -> list[str]:
    """Let ``context`` reach ``origin`` only; return the list of the URLs it refused."""
    refused: list[str] = []

    def route(route: Route) -> None:
        if route.request.url.startswith(origin):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    return refused


def sign_in(page: Page, token: str) -> None:
    """Fill the page's sign-in form with ``token`` and submit it."""
    page.locator("#token").fill(token)
    page.locator("#sign-in-form button[type=submit]").click()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file, from its header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# A realistic board: the README's screenshot and its test.

#: (user, mean return of their policy, its spread, failure chance, evaluation episodes).
#: The turbofan's reference policies score about 40 (random) to 4,900 (hidden-damage
#: heuristic); students' PPO agents land around and above them (docs/turbofan.md).
_TURBOFAN_CLASS: Sequence[tuple[str, float, float, float, int]] = (
    ("mei.tanaka", 5210.0, 420.0, 0.02, 160),
    ("jonas.berg", 4980.0, 520.0, 0.03, 124),
    ("priya.r", 4720.0, 610.0, 0.06, 100),
    ("team-ocelot", 4890.0, 380.0, 0.02, 47),
    ("samuel.o", 3890.0, 700.0, 0.12, 210),
    ("lucia.fernandez", 3640.0, 820.0, 0.18, 100),
    ("hugo", 2280.0, 900.0, 0.35, 38),
    ("baseline-time", 4709.0, 560.0, 0.107, 100),
    ("anna.k", 1520.0, 1100.0, 0.55, 12),
)
_CARTPOLE_CLASS: Sequence[tuple[str, float, float, float, int]] = (
    ("jonas.berg", 500.0, 0.0, 0.0, 100),
    ("mei.tanaka", 487.5, 30.0, 0.0, 100),
    ("priya.r", 412.0, 80.0, 0.0, 64),
    ("hugo", 231.0, 120.0, 0.0, 20),
)


def _learning_curve(
    user: str,
    env_id: str,
    *,
    target: float,
    spread: float,
    failure_chance: float,
    count: int,
    end: datetime,
    rng: random.Random,
    ceiling: float | None = None,
) -> list[Episode]:
    """``count`` evaluation episodes of a policy that improves towards ``target``."""
    episodes = []
    hours = rng.uniform(12.0, 60.0)  # when the user started, before ``end``
    start = end - timedelta(hours=hours)
    for k in range(count):
        progress = (k + 1) / count
        # Early submissions are weaker; the last third plays the final policy.
        mean = target * (0.55 + 0.45 * min(1.0, progress * 1.5))
        failure = rng.random() < failure_chance * (1.6 - 0.6 * progress)
        value = rng.gauss(mean, spread)
        if failure:
            value = rng.uniform(0.25, 0.6) * mean - 1000.0  # the turbofan's failure costs 1,000
        if ceiling is not None:
            value = min(value, ceiling)
        ended = start + timedelta(hours=hours * (k + 1) / count)
        episodes.append(
            episode(
                user=user,
                env_id=env_id,
                k=k,
                episode_return=round(value, 1),
                failure=failure,
                minute=(ended - START).total_seconds() / 60,
            )
        )
    return episodes


#: The realistic boards' environment that reports failures (CartPole reports none).
FAILING_ENV = "gymrpc/Turbofan-v0"


def fill_realistic_boards(store: ScoreStore, now: datetime) -> list[str]:
    """Record a course's evaluation episodes on the turbofan and CartPole; return the env_ids.

    Deterministic (seeded); the last episodes end a little before ``now``.
    """
    rng = random.Random(20260101)
    boards = (
        ("gymrpc/Turbofan-v0", _TURBOFAN_CLASS, None),
        ("CartPole-v1", _CARTPOLE_CLASS, 500.0),
    )
    for env_id, users, ceiling in boards:
        for user, target, spread, failure_chance, count in users:
            end = now - timedelta(minutes=rng.uniform(2.0, 400.0))
            record_all(
                store,
                _learning_curve(
                    user,
                    env_id,
                    target=target,
                    spread=spread,
                    failure_chance=failure_chance,
                    count=count,
                    end=end,
                    rng=rng,
                    ceiling=ceiling,
                ),
            )
    return [env_id for env_id, _, _ in boards]


def screenshot_board(browser: Browser, url: str, token: str, path: Path) -> int:
    """Sign in on the page at ``url``, wait for its boards, and save a screenshot.

    Returns:
        The number of table rows shown.
    """
    context = browser.new_context(
        viewport={"width": 1120, "height": 900},
        device_scale_factor=2,
        locale="en-US",
        timezone_id="Europe/Berlin",
        color_scheme="light",
    )
    try:
        refused = loopback_only(context, url.rstrip("/"))
        page = context.new_page()
        page.goto(url)
        sign_in(page, token)
        page.locator("section.board tbody tr").first.wait_for()
        rows = page.locator("section.board tbody tr").count()
        # A short viewport: the full-page picture ends below the last board, not lower.
        page.set_viewport_size({"width": 1120, "height": 400})
        page.screenshot(path=str(path), full_page=True)
        assert refused == [], f"the page asked for other servers: {refused}"
        return rows
    finally:
        context.close()
