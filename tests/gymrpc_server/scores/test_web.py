"""The leaderboard web page: its JSON API, sign-in, visibility, lifecycle, and a real browser.

Every test runs a real store (SQLite in tmp_path) and a real uvicorn server on
127.0.0.1 port 0; the browser tests drive Debian's headless Chromium. Scores are
checked against hand-computed means and against what the store itself computes.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from playwright.sync_api import Browser, Page, expect

from gymrpc_server.auth import Authenticator, Identity, Role, load_tokens
from gymrpc_server.scores import ScoreStore, StoreSettings
from gymrpc_server.scores.web import WebServer, start_web
from gymrpc_server.scores.web_boards import HISTORY_POINTS, BoardReader, iso_time, thin

from .conftest import OpenStore
from .scores_testing import FAST, episode
from .web_testing import (
    FAILING_ENV,
    TOKENS,
    Reply,
    bearer,
    chromium,
    fill_realistic_boards,
    loopback_only,
    png_size,
    record_all,
    request,
    screenshot_board,
    sign_in,
)

ENV = "Env-v0"
OTHER = "Other-v0"
EMPTY = "Empty-v0"
WINDOW = 4
StartWeb = Callable[..., WebServer]

# The board of ENV with WINDOW = 4, by hand: (user, returns in order, failures by k).
#   alice: 10 20 30 40 50, k=1 failed -> last four 20..50: 35.0, 1/4 failed, full
#   bob:   100 -20, k=1 failed        -> 40.0, 1/2 failed, provisional
#   carol: 35 35 35 35                -> 35.0, full; ties alice: the name decides
#   dan:   60                         -> 60.0, provisional, first all the same
EXPECTED = [
    # rank, user, score, episodes, provisional, failure rate
    (1, "dan", 60.0, 1, True, 0.0),
    (2, "bob", 40.0, 2, True, 0.5),
    (3, "alice", 35.0, 4, False, 0.25),
    (4, "carol", 35.0, 4, False, 0.0),
]


def fill(store: ScoreStore) -> None:
    """Record the episodes of :data:`EXPECTED`, plus some that must not count."""
    record_all(
        store,
        [
            *(
                episode(user="alice", k=k, episode_return=10.0 * (k + 1), minute=k, failure=k == 1)
                for k in range(5)
            ),
            episode(user="bob", k=0, episode_return=100.0, minute=1),
            episode(user="bob", k=1, episode_return=-20.0, minute=6, failure=True),
            *(episode(user="carol", k=k, episode_return=35.0, minute=2 + k) for k in range(4)),
            episode(user="dan", k=0, episode_return=60.0, minute=3),
            # Not evaluation episodes, or not on ENV: not on ENV's board.
            episode(user="erin", k=None, episode_return=1e6, minute=2),
            episode(user="alice", k=None, episode_return=1e6, minute=9),
            episode(user="bob", env_id=OTHER, k=0, episode_return=7.5, minute=4),
        ],
    )


@pytest.fixture
def store(tmp_path: Path, open_test_store: OpenStore) -> ScoreStore:
    settings = StoreSettings(**{**FAST.__dict__, "score_window": WINDOW})
    return open_test_store(str(tmp_path / "scores.sqlite3"), settings)


@pytest.fixture
def authenticator(tokens_file: Path) -> Authenticator:
    """alice and bob (users) and carol (admin), as on the gRPC server."""
    return Authenticator(load_tokens(tokens_file))


@pytest.fixture
def web(store: ScoreStore, authenticator: Authenticator) -> Iterator[StartWeb]:
    """Start pages (public, uncached, ENV/OTHER/EMPTY); stop them, and check no thread is left."""
    before = set(threading.enumerate())
    started: list[WebServer] = []

    def start(**overrides: Any) -> WebServer:
        options: dict[str, Any] = {
            "address": "127.0.0.1:0",
            "visibility": "public",
            "env_ids": [ENV, OTHER, EMPTY],
            "cache_seconds": 0,
            **overrides,
        }
        chosen_store = options.pop("store", store)
        chosen_auth = options.pop("authenticator", authenticator)
        started.append(start_web(chosen_store, chosen_auth, **options))
        return started[-1]

    yield start
    for item in started:
        assert item.stop(), f"{item} did not stop"
    leftover = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == [], f"threads left running: {leftover}"


def api(web: WebServer, query: str = "", headers: dict[str, str] | None = None) -> Reply:
    return request(f"{web.url}api/leaderboard{query}", headers=headers)


def board(reply: Reply, env_id: str) -> dict[str, Any]:
    assert reply.status == 200, reply.text
    boards = {b["env_id"]: b for b in reply.json()["boards"]}
    found: dict[str, Any] = boards[env_id]
    return found


def login(web: WebServer, token: str, **headers: str) -> Reply:
    return request(
        f"{web.url}login",
        method="POST",
        body=f"token={token}".encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            **headers,
        },
    )


def cookie_of(reply: Reply) -> str:
    """``name=value`` of the session cookie set by ``reply``."""
    (set_cookie,) = reply.all("set-cookie")
    return set_cookie.split(";")[0]


# The JSON API.


def test_api_ranks_and_scores_as_the_store_does(web: StartWeb, store: ScoreStore) -> None:
    fill(store)
    page = web()
    reply = api(page, headers=bearer("alice"))
    envelope = reply.json()
    assert (envelope["score_window"], envelope["viewer"]) == (
        WINDOW,
        {"user": "alice", "role": "user"},
    )
    assert envelope["auth_required"] is True
    assert [b["env_id"] for b in envelope["boards"]] == [ENV, OTHER, EMPTY]
    rows = board(reply, ENV)["rows"]
    assert [
        (r["rank"], r["user"], r["score"], r["episodes"], r["provisional"], r["failure_rate"])
        for r in rows
    ] == EXPECTED
    # The same as the store's own leaderboard, field by field.
    entries = store.leaderboard(ENV).entries
    assert [
        (
            e.rank,
            e.score.user,
            e.score.mean_return,
            e.score.episodes,
            e.score.total_episodes,
            e.score.provisional,
            e.score.failure_rate,
            iso_time(e.score.last_episode_at),
        )
        for e in entries
    ] == [
        (
            r["rank"],
            r["user"],
            r["score"],
            r["episodes"],
            r["total_episodes"],
            r["provisional"],
            r["failure_rate"],
            r["last_episode_time"],
        )
        for r in rows
    ]
    alice = rows[2]
    assert (alice["total_episodes"], alice["last_episode_time"]) == (5, "2026-01-01T00:04:00.000Z")
    # Her score after each episode: the running mean over at most 4.
    assert [(p["score"], p["episodes"]) for p in alice["history"]] == [
        (10.0, 1),
        (15.0, 2),
        (20.0, 3),
        (25.0, 4),
        (35.0, 4),
    ]
    assert alice["history"][-1]["time"] == alice["last_episode_time"]
    assert set(alice["history"][0]) == {"time", "score", "episodes"}  # no returns, no k
    assert [r["user"] for r in board(reply, OTHER)["rows"]] == ["bob"]
    assert board(reply, EMPTY) == {
        "env_id": EMPTY,
        "total_users": 0,
        "next_page_token": None,
        "rows": [],
    }


def test_api_pages_one_board(web: StartWeb, store: ScoreStore) -> None:
    fill(store)
    page = web()
    first = board(api(page, f"?env_id={ENV}&page_size=3", bearer("bob")), ENV)
    assert ([r["rank"] for r in first["rows"]], first["total_users"]) == ([1, 2, 3], 4)
    assert first["next_page_token"]
    second = board(
        api(
            page, f"?env_id={ENV}&page_size=3&page_token={first['next_page_token']}", bearer("bob")
        ),
        ENV,
    )
    assert ([r["user"] for r in second["rows"]], second["next_page_token"]) == (["carol"], None)
    only = api(page, f"?env_id={OTHER}", bearer("bob")).json()["boards"]
    assert [b["env_id"] for b in only] == [OTHER]


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        (f"?env_id={ENV}&page_size=0", 400, "page_size"),
        (f"?env_id={ENV}&page_size=ten", 400, "page_size is 'ten'"),
        (f"?env_id={ENV}&page_token=nonsense", 400, "page_token"),
        ("?page_size=5", 400, "need env_id"),
        ("?env_id=Nowhere-v0", 404, "'Nowhere-v0' has no leaderboard here"),
    ],
    ids=["page-size-zero", "page-size-text", "bad-token", "page-without-env", "unknown-env"],
)
def test_api_names_bad_parameters(web: StartWeb, query: str, status: int, words: str) -> None:
    reply = api(web(), query, bearer("alice"))
    assert reply.status == status
    assert words in reply.json()["error"]


def test_failure_rate_is_null_where_the_environment_reports_none(
    web: StartWeb, store: ScoreStore
) -> None:
    fill(store)
    reply = api(web(reports_failures=lambda env_id: env_id == ENV), headers=bearer("alice"))
    assert [r["failure_rate"] for r in board(reply, ENV)["rows"]] == [0.0, 0.5, 0.25, 0.0]
    assert [r["failure_rate"] for r in board(reply, OTHER)["rows"]] == [None]


def test_long_histories_are_thinned_to_their_shape(web: StartWeb, store: ScoreStore) -> None:
    record_all(store, (episode(k=k, episode_return=float(k), minute=k) for k in range(150)))
    (row,) = board(api(web(), headers=bearer("alice")), ENV)["rows"]
    points = store.score_history("alice", ENV)
    assert len(row["history"]) == HISTORY_POINTS < len(points) == 150
    assert row["history"][0]["score"] == points[0].mean_return
    assert row["history"][-1]["score"] == points[-1].mean_return == row["score"]
    assert thin(range(10), 4) == [0, 3, 6, 9]
    assert thin([1, 2], 5) == [1, 2]
    with pytest.raises(ValueError, match="limit is 1"):
        thin([1, 2, 3], 1)


def test_a_board_is_read_again_once_its_cache_expires(store: ScoreStore) -> None:
    now = [100.0]
    reader = BoardReader(store, [ENV], cache_seconds=2.0, clock=lambda: now[0])
    record_all(store, [episode(k=0, episode_return=1.0)])
    assert reader.board(ENV)["rows"][0]["score"] == 1.0
    record_all(store, [episode(k=1, episode_return=3.0, minute=1)])
    now[0] += 1.9
    assert reader.board(ENV)["rows"][0]["score"] == 1.0  # served from the cache
    now[0] += 0.2
    assert reader.board(ENV)["rows"][0]["score"] == 2.0
    with pytest.raises(ValueError, match="cache_seconds"):
        BoardReader(store, [ENV], cache_seconds=-1)


def test_an_unreachable_database_is_503_and_the_page_stays_up(
    web: StartWeb, store: ScoreStore
) -> None:
    page = web()
    store.close()
    reply = api(page, headers=bearer("alice"))
    assert (reply.status, reply.header("retry-after")) == (503, "5")
    assert "closed" in reply.json()["error"]
    assert request(f"{page.url}healthz").status == 200


def test_large_answers_are_gzipped_for_clients_that_accept_it(
    web: StartWeb, store: ScoreStore
) -> None:
    record_all(
        store,
        (episode(user=f"user{u:02d}", k=k, minute=k) for u in range(30) for k in range(5)),
    )
    page = web()
    plain = api(page, headers=bearer("alice"))
    zipped = api(page, headers={**bearer("alice"), "Accept-Encoding": "gzip"})
    assert (plain.header("content-encoding"), zipped.header("content-encoding")) == (None, "gzip")
    assert len(zipped.body) < len(plain.body) / 4
    unzipped = json.loads(gzip.decompress(zipped.body))
    assert unzipped["boards"] == plain.json()["boards"]


# Who sees what.


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token-of-this-server"},
        {"Authorization": f"Basic {TOKENS['alice']}"},
        {"Cookie": "gymrpc_token=bm90LWEtdG9rZW4tb2YtdGhpcy1zZXJ2ZXI="},
    ],
    ids=["none", "wrong-bearer", "not-bearer", "wrong-cookie"],
)
def test_api_without_a_valid_token_is_401(web: StartWeb, headers: dict[str, str]) -> None:
    reply = api(web(), headers=headers)
    assert reply.status == 401
    assert reply.header("www-authenticate") == 'Bearer realm="gymrpc"'
    assert "Authorization: Bearer" in reply.json()["error"]


def test_a_token_in_the_url_is_never_accepted(web: StartWeb) -> None:
    page = web()
    for query in (f"?token={TOKENS['alice']}", f"?access_token={TOKENS['alice']}"):
        assert api(page, query).status == 401
        assert request(f"{page.url}{query}").status == 401


def test_admin_only_boards_refuse_users_with_403(web: StartWeb, store: ScoreStore) -> None:
    fill(store)
    page = web(visibility="admin")
    refused = api(page, headers=bearer("bob"))
    assert refused.status == 403
    assert refused.json() == {
        "error": "leaderboards are shown to admins only on this server (--leaderboard admin), "
        "and 'bob' is not one",
        "viewer": {"user": "bob", "role": "user"},
        "auth_required": True,
    }
    assert "rows" not in refused.text
    admin = api(page, headers=bearer("carol"))
    assert [r["user"] for r in board(admin, ENV)["rows"]] == ["dan", "bob", "alice", "carol"]
    # The page's own status says the same, for the cookie as for the header.
    assert (
        request(page.url, headers={"Cookie": cookie_of(login(page, TOKENS["bob"]))}).status == 403
    )
    assert request(page.url, headers=bearer("carol")).status == 200
    assert request(page.url).status == 401
    assert api(page).status == 401


@pytest.mark.parametrize(
    ("visibility", "role", "status"),
    [("public", Role.USER, 200), ("admin", Role.USER, 403), ("admin", Role.ADMIN, 200)],
    ids=["public", "admin-board-anonymous-user", "admin-board-anonymous-admin"],
)
def test_a_server_without_tokens_shows_its_board_to_anyone_as_the_grpc_side_does(
    web: StartWeb, store: ScoreStore, visibility: str, role: Role, status: int
) -> None:
    fill(store)
    page = web(
        visibility=visibility, authenticator=Authenticator(None, Identity("anonymous", role))
    )
    reply = api(page)
    assert reply.status == status
    assert request(page.url).status == status
    if status == 200:
        assert reply.json()["auth_required"] is False
        assert reply.json()["viewer"] == {"user": "anonymous", "role": role.value}
        assert len(board(reply, ENV)["rows"]) == 4


# Signing in.


def test_sign_in_sets_a_strict_http_only_session_cookie(web: StartWeb, store: ScoreStore) -> None:
    fill(store)
    page = web()
    reply = login(page, TOKENS["alice"])
    assert (reply.status, reply.json()) == (200, {"user": "alice", "role": "user"})
    (set_cookie,) = reply.all("set-cookie")
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}
    assert attributes == {"httponly", "path", "samesite"}  # no Secure over HTTP, no expiry
    assert "samesite=strict" in set_cookie.lower()
    assert "path=/" in set_cookie.lower()
    cookie = cookie_of(reply)
    with_cookie = api(page, headers={"Cookie": cookie})
    assert with_cookie.json()["viewer"]["user"] == "alice"
    shell = request(page.url, headers={"Cookie": cookie})
    assert (shell.status, shell.header("cache-control")) == (200, "no-store")
    assert 'id="sign-in-form"' in shell.text
    # The token is in no page, no script and no answer (nor its cookie encoding).
    encoded = base64.urlsafe_b64encode(TOKENS["alice"].encode()).decode()
    for path in ("", "static/leaderboard.js", "static/leaderboard.css", "api/leaderboard"):
        body = request(f"{page.url}{path}", headers={"Cookie": cookie}).text
        assert TOKENS["alice"] not in body, path
        assert encoded not in body, path
    # A header wins over the cookie: a wrong one is refused, not ignored.
    wrong = {"Cookie": cookie, "Authorization": "Bearer not-a-token-of-this-server"}
    assert api(page, headers=wrong).status == 401


def test_sign_in_refusals(web: StartWeb) -> None:
    page = web()
    wrong = login(page, "not-a-token-of-this-server")
    assert (wrong.status, wrong.all("set-cookie")) == (401, [])
    assert wrong.json()["error"] == "that token is not valid on this server"
    empty = login(page, "")
    assert (empty.status, empty.all("set-cookie")) == (401, [])
    # A form posted from another site's page (login CSRF) is refused.
    for origin in ("http://evil.example", "null"):
        cross = login(page, TOKENS["alice"], Origin=origin)
        assert (cross.status, cross.all("set-cookie")) == (403, [])
    same = login(page, TOKENS["alice"], Origin=page.url.rstrip("/"))
    assert same.status == 200
    as_json = request(
        f"{page.url}login",
        method="POST",
        body=json.dumps({"token": TOKENS["alice"]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert as_json.status == 415
    huge = login(page, "x" * 5000)
    assert (huge.status, huge.all("set-cookie")) == (413, [])
    assert request(f"{page.url}login").status == 405  # a GET never carries a token


def test_a_plain_form_post_is_redirected_to_the_page(web: StartWeb) -> None:
    page = web()
    reply = request(
        f"{page.url}login",
        method="POST",
        body=f"token={TOKENS['bob']}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (reply.status, reply.header("location")) == (303, "/")
    assert reply.header("set-cookie") is not None


def test_sign_out_clears_the_cookie(web: StartWeb) -> None:
    page = web()
    reply = request(f"{page.url}logout", method="POST")
    (set_cookie,) = reply.all("set-cookie")
    assert set_cookie.startswith('gymrpc_token=""')
    assert "max-age=0" in set_cookie.lower()


def test_every_response_carries_the_security_headers(web: StartWeb) -> None:
    page = web()
    for reply in (request(page.url), request(f"{page.url}nowhere"), api(page)):
        policy = reply.header("content-security-policy") or ""
        assert "script-src 'self'" in policy
        assert "default-src 'none'" in policy
        assert reply.header("x-content-type-options") == "nosniff"
    assert request(f"{page.url}static/nothing.js").status == 404


def test_https_serves_and_marks_the_cookie_secure(web: StartWeb, tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    page = web(tls_cert=cert, tls_key=key)
    assert page.url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
    assert request(f"{page.url}healthz", ssl_context=context).json()["status"] == "ok"
    reply = request(
        f"{page.url}login",
        method="POST",
        body=f"token={TOKENS['alice']}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        ssl_context=context,
    )
    assert reply.status == 200
    assert "secure" in {part.strip().lower() for part in reply.all("set-cookie")[0].split(";")}
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        request(page.url.replace("https://", "http://"))  # plain HTTP is not spoken


# Starting and stopping.


def test_stop_is_graceful_and_closes_idle_connections(web: StartWeb) -> None:
    page = web()
    assert request(f"{page.url}healthz").json() == {"status": "ok", "database": "ok"}
    # A browser keeps its connection open between refreshes.
    idle = http.client.HTTPConnection("127.0.0.1", page.port, timeout=30)
    idle.request("GET", "/healthz")
    assert idle.getresponse().read()
    running = [page.running]
    assert page.stop()
    running.append(page.running)
    assert running == [True, False]
    assert idle.sock is not None
    assert idle.sock.recv(1) == b""  # closed by the server
    idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", page.port), timeout=5).close()
    assert page.stop()  # again: the same answer


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0", "192.0.2.1:8080"])
def test_a_server_without_tokens_refuses_a_public_address(store: ScoreStore, address: str) -> None:
    with pytest.raises(ValueError, match="without a tokens file"):
        start_web(store, Authenticator(None), address=address, env_ids=[ENV])


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"visibility": "everyone"}, "visibility is 'everyone'"),
        ({"refresh_seconds": 0}, "refresh_seconds is 0"),
        ({"tls_cert": Path("cert.pem")}, "tls_cert and tls_key"),
        ({"tls_cert": Path("/no/cert.pem"), "tls_key": Path("/no/key.pem")}, "with TLS"),
        ({"address": "127.0.0.1"}, "not host:port"),
    ],
    ids=["visibility", "refresh", "cert-without-key", "missing-cert", "no-port"],
)
def test_bad_settings_are_refused_by_name(
    store: ScoreStore, authenticator: Authenticator, options: dict[str, Any], words: str
) -> None:
    before = set(threading.enumerate())
    arguments: dict[str, Any] = {"address": "127.0.0.1:0", "env_ids": [ENV], **options}
    with pytest.raises(ValueError, match=words):
        start_web(store, authenticator, **arguments)
    assert [t for t in threading.enumerate() if t not in before] == []


def test_a_port_in_use_is_reported_in_words(web: StartWeb) -> None:
    first = web()
    with pytest.raises(ValueError, match=f"port {first.port} is already in use"):
        web(address=f"127.0.0.1:{first.port}")


def test_the_web_extra_is_imported_only_when_used_and_named_when_missing(tmp_path: Path) -> None:
    script = f"""
import sys
import gymrpc_server.scores.web as web
print(sorted(m for m in sys.modules if m.split(".")[0] in ("starlette", "uvicorn")))
sys.modules["starlette"] = None  # as if the extra were not installed
from gymrpc_server.auth import Authenticator
from gymrpc_server.scores import open_store
store = open_store({str(tmp_path / "scores.sqlite3")!r})
try:
    web.start_web(store, Authenticator(None), address="127.0.0.1:0", env_ids=[])
except ValueError as error:
    print(error)
finally:
    store.close()
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    imported, message = result.stdout.splitlines()
    assert imported == "[]"
    assert "needs the web extra" in message
    assert "pip install -e '.[web]'" in message


# In a browser.


#: Milliseconds a browser wait may take at most: far above what a loaded machine needs
#: (a refresh comes every second), so that only a page that never updates reaches it.
BROWSER_WAIT = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    expect.set_options(timeout=BROWSER_WAIT)  # expect() does not follow the page's timeout
    with chromium() as launched:
        yield launched


def table(page: Page, env_id: str) -> list[dict[str, Any]]:
    """The rendered rows of a board, read from the DOM after the script ran."""
    rows: list[dict[str, Any]] = page.eval_on_selector_all(
        f'section.board[data-env-id="{env_id}"] tbody tr',
        """rows => rows.map(row => ({
            rank: row.querySelector(".rank").textContent,
            user: row.querySelector(".user").textContent,
            score: row.querySelector(".score .value").textContent,
            badge: row.querySelector(".score .badge")?.textContent ?? null,
            episodes: row.querySelector(".episodes").textContent,
            failures: row.querySelector(".failure-rate").textContent,
            last: row.querySelector(".last-episode time").textContent,
            lastIso: row.querySelector(".last-episode time").getAttribute("datetime"),
            me: row.classList.contains("me"),
            series: [...row.querySelectorAll("svg.spark path.series")].map(path => ({
                user: path.dataset.user,
                points: path.getAttribute("d").split(/[ML]/).filter(s => s.trim())
                    .map(s => s.split(",").map(Number)),
            })),
        }))""",
    )
    return rows


def shown(store: ScoreStore, env_id: str, me: str) -> list[dict[str, Any]]:
    """What the page must show for the store's board (the browser runs in UTC)."""
    return [
        {
            "rank": str(e.rank),
            "user": e.score.user,
            "score": f"{e.score.mean_return:,.2f}",
            "badge": "provisional" if e.score.provisional else None,
            "episodes": str(e.score.episodes),
            "failures": f"{e.score.failure_rate:.1%}",
            "last": e.score.last_episode_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            "lastIso": iso_time(e.score.last_episode_at),
            "me": e.score.user == me,
        }
        for e in store.leaderboard(env_id).entries
    ]


def test_the_page_in_a_browser(browser: Browser, web: StartWeb, store: ScoreStore) -> None:
    fill(store)
    page_server = web(refresh_seconds=1)
    origin = page_server.url.rstrip("/")
    context = browser.new_context(locale="en-US", timezone_id="UTC")
    refused = loopback_only(context, origin)
    urls: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(BROWSER_WAIT)
        page.on("request", lambda r: urls.append(r.url))
        response = page.goto(page_server.url)
        assert response is not None
        assert response.status == 401
        expect(page.locator("#sign-in")).to_be_visible()
        assert page.locator("section.board").count() == 0

        sign_in(page, "not-a-token-of-this-server")
        expect(page.locator("#sign-in-error")).to_have_text(
            "Not signed in: that token is not valid on this server."
        )
        sign_in(page, TOKENS["alice"])
        rows = page.locator(f'section.board[data-env-id="{ENV}"] tbody tr')
        expect(rows).to_have_count(4)
        expect(page.locator("#sign-in")).to_be_hidden()
        expect(page.locator("#viewer")).to_have_text("alice")

        rendered = table(page, ENV)
        series = [row.pop("series") for row in rendered]
        assert rendered == shown(store, ENV, me="alice")
        assert [r["failures"] for r in rendered] == ["0.0%", "50.0%", "25.0%", "0.0%"]
        # One sparkline per user, with one point per score of their history.
        assert [[s["user"] for s in row] for row in series] == [
            ["dan"],
            ["bob"],
            ["alice"],
            ["carol"],
        ]
        histories = store.score_histories(["dan", "bob", "alice", "carol"], ENV)
        assert [len(row[0]["points"]) for row in series] == [
            len(histories[user]) for user in ("dan", "bob", "alice", "carol")
        ]
        alice = series[2][0]["points"]
        ys = [y for _, y in alice]
        assert ys == sorted(ys, reverse=True)  # her score only rose: drawn ever higher
        assert ys[0] > ys[-1]
        # The time axis is shared: bob's last episode is the board's last, so his line
        # ends at the right edge, and alice's first is the first, so hers starts left.
        assert series[1][0]["points"][-1][0] == max(p[0] for r in series for p in r[0]["points"])
        assert alice[0][0] == min(p[0] for r in series for p in r[0]["points"])
        expect(page.locator(f'section.board[data-env-id="{EMPTY}"] .empty')).to_be_visible()
        assert table(page, OTHER)[0]["user"] == "bob"

        # The token is nowhere: not in the DOM, not readable by scripts, not in a URL.
        assert page.locator("#token").input_value() == ""
        assert TOKENS["alice"] not in page.content()
        assert page.evaluate("document.cookie") == ""
        assert not [u for u in urls if "token" in u.lower()]

        # The page refreshes itself, without reloading: bob's new episode appears.
        page.evaluate("window.notReloaded = true")
        record_all(store, [episode(user="bob", k=2, episode_return=1000.0, minute=7)])
        bob = page.locator(f'section.board[data-env-id="{ENV}"] tr[data-user="bob"]')
        expect(bob.locator(".score .value")).to_have_text("360.00")
        expect(bob.locator(".rank")).to_have_text("1")
        assert page.evaluate("window.notReloaded") is True
        assert table(page, ENV)[0]["user"] == "bob"

        # Signing out forgets the cookie and shows the form again.
        page.locator("#sign-out").click()
        expect(page.locator("#sign-in")).to_be_visible()
        assert context.cookies() == []
        assert refused == [], f"the page asked for other servers: {refused}"
    finally:
        context.close()


def test_admin_only_board_in_a_browser(browser: Browser, web: StartWeb, store: ScoreStore) -> None:
    fill(store)
    page_server = web(visibility="admin")
    context = browser.new_context(locale="en-US", timezone_id="UTC")
    loopback_only(context, page_server.url.rstrip("/"))
    try:
        page = context.new_page()
        page.set_default_timeout(BROWSER_WAIT)
        page.goto(page_server.url)
        sign_in(page, TOKENS["bob"])
        expect(page.locator("#notice")).to_contain_text("admins only")
        assert page.locator("section.board").count() == 0
        expect(page.locator("#viewer")).to_have_text("bob")
        page.locator("#sign-out").click()
        sign_in(page, TOKENS["carol"])
        expect(page.locator(f'section.board[data-env-id="{ENV}"] tbody tr')).to_have_count(4)
        expect(page.locator("#notice")).to_be_hidden()
    finally:
        context.close()


def test_the_readme_screenshot_renders_a_realistic_board(
    browser: Browser, tmp_path: Path, open_test_store: OpenStore, tokens_file: Path
) -> None:
    store = open_test_store(str(tmp_path / "scores.sqlite3"))
    env_ids = fill_realistic_boards(store, datetime.now(UTC))
    users = sum(store.leaderboard(env_id).total for env_id in env_ids)
    assert any(e.score.provisional for e in store.leaderboard(env_ids[0]).entries)
    with start_web(
        store,
        Authenticator(load_tokens(tokens_file)),
        address="127.0.0.1:0",
        env_ids=env_ids,
        reports_failures=lambda env_id: env_id == FAILING_ENV,
    ) as page:
        picture = tmp_path / "leaderboard.png"
        assert screenshot_board(browser, page.url, TOKENS["alice"], picture) == users
    width, height = png_size(picture)
    assert width == 2 * 1120  # at twice the pixels
    assert height > 2 * 400  # the full page, not the short viewport
