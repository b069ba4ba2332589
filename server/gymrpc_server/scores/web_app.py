"""The leaderboard page's Starlette application: routes, sign-in, and who may see what.

Imported only by :func:`gymrpc_server.scores.web.start_web`, after it has checked that
the ``web`` extra is installed: Starlette is imported at the top here.

Routes:
    ``GET /``: the page. Always the same static shell, without data or token; its
    script fetches ``/api/leaderboard`` and shows the boards, the sign-in form (401)
    or the "admins only" notice (403). The status of ``GET /`` itself says the same
    (200, 401 or 403) for clients without JavaScript. Rendering from a same-origin
    fetch is what makes the ``SameSite=Strict`` cookie usable: a visitor arriving from
    a link on another site sends no cookie with that first navigation, but the page's
    own fetch does.
    ``GET /api/leaderboard[?env_id=...&page_size=...&page_token=...]``: the boards as
    JSON (see :func:`_envelope`).
    ``POST /login``: a form field ``token``; sets the cookie. ``POST /logout``: clears it.
    ``GET /healthz``: unauthenticated liveness.
    ``GET /static/<name>``: the page's script, style sheet and icon.

Credentials: an ``Authorization: Bearer <token>`` header, or the cookie the sign-in
form sets (HttpOnly, SameSite=Strict, Path=/, Secure over HTTPS, gone when the browser
closes). A token is never accepted from a URL and never written into a page.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import json
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Final, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gymrpc_server.auth import Authenticator, Identity
from gymrpc_server.scores.errors import StoreUnavailableError
from gymrpc_server.scores.web_boards import (
    DEFAULT_PAGE_SIZE,
    BoardJson,
    BoardReader,
    UnknownEnvironmentError,
    iso_time,
    may_read_leaderboard,
)

__all__ = ["COOKIE_NAME", "create_app"]

#: The cookie that carries the token (base64url of it: any token is cookie-safe then).
COOKIE_NAME: Final = "gymrpc_token"
#: A sign-in form is tiny; anything larger is refused (413) before it is read.
_MAX_BODY_BYTES: Final = 4096
_STATIC: Final = {
    "leaderboard.js": "text/javascript; charset=utf-8",
    "leaderboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_SECURITY_HEADERS: Final = (
    # Only this server's own script, styles and icon; no inline code, no framing.
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    # "same-origin", not "no-referrer": with no-referrer, browsers send "Origin: null"
    # on same-origin POSTs, which the sign-in's cross-site check must refuse.
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_UNAUTHENTICATED: Final = (
    "missing or invalid token; sign in on the page, or send the header "
    "'Authorization: Bearer <token>' with a token of this server"
)

_T = TypeVar("_T")


def _asset(name: str) -> bytes:
    return resources.files("gymrpc_server.scores").joinpath("web_static", name).read_bytes()


class _SecurityHeaders:
    """Adds :data:`_SECURITY_HEADERS` to every response, the router's own 404s included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def _encode_cookie(token: str) -> str:
    return base64.urlsafe_b64encode(token.encode("utf-8")).decode("ascii")


def _decode_cookie(value: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(value.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None


def _json(
    request: Request, payload: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response, never cached, gzipped when large and the client accepts it."""
    body = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode("utf-8")
    extra = {"cache-control": "no-store", "vary": "accept-encoding", **(headers or {})}
    # Scores and histories compress about tenfold; an open page asks every few seconds.
    if len(body) > 1024 and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=6)
        extra["content-encoding"] = "gzip"
    return Response(body, status, headers=extra, media_type="application/json")


def _error(request: Request, status: int, message: str, **headers: str) -> Response:
    return _json(request, {"error": message}, status, headers)


def _is_https(request: Request) -> bool:
    # uvicorn reports "https" when it serves TLS itself, and behind a TLS proxy on
    # this machine that says so (X-Forwarded-Proto, trusted from loopback only).
    return request.url.scheme == "https"


def _same_origin(request: Request) -> bool:
    """False for a browser's request sent from another site's page (cross-site forms).

    Browsers send ``Origin`` with every POST; other clients (curl, scripts) send none
    and cannot carry a victim's cookie anyway.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return True
    expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin.lower() == expected.lower()


class _Page:
    """The endpoints, sharing the reader, the authenticator and the settings."""

    def __init__(
        self,
        reader: BoardReader,
        authenticator: Authenticator,
        *,
        visibility: str,
        refresh_seconds: float,
        reports_failures: Callable[[str], bool],
        executor: Executor,
    ) -> None:
        self._reader = reader
        self._auth = authenticator
        self._visibility = visibility
        self._refresh_seconds = refresh_seconds
        self._reports_failures = reports_failures
        self._executor = executor
        self._shell = _asset("leaderboard.html")
        self._static = {name: _asset(name) for name in _STATIC}

    async def _blocking(self, work: Callable[[], _T]) -> _T:
        """Run database work on the page's own threads, never on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def _identify(self, request: Request) -> Identity | None:
        """The caller from the Authorization header, else from the cookie; None if neither."""
        if not self._auth.required:
            return self._auth.identify(None)
        header = request.headers.get("authorization")
        if header is not None:
            # An explicit header wins: a wrong one is an error, not a fallback to the cookie.
            return self._auth.identify([("authorization", header)])
        token = _decode_cookie(request.cookies.get(COOKIE_NAME, ""))
        if not token:
            return None
        return self._auth.identify([("authorization", f"Bearer {token}")])

    @staticmethod
    def _viewer(identity: Identity) -> dict[str, str]:
        return {"user": identity.user, "role": identity.role.value}

    def _forbidden_message(self, identity: Identity) -> str:
        return (
            "leaderboards are shown to admins only on this server (--leaderboard admin), "
            f"and {identity.user!r} is not one"
        )

    async def page(self, request: Request) -> Response:
        """``GET /``: the shell; its status tells whether the caller may see the boards."""
        identity = self._identify(request)
        headers = {"cache-control": "no-store"}
        status = 200
        if identity is None:
            status = 401
            headers["www-authenticate"] = 'Bearer realm="gymrpc leaderboard"'
        elif not may_read_leaderboard(identity, self._visibility):
            status = 403
        return Response(self._shell, status, headers=headers, media_type="text/html")

    async def static(self, request: Request) -> Response:
        """``GET /static/<name>``: the page's own assets (no data, no authentication)."""
        name = request.path_params["name"]
        if name not in self._static:
            return Response(b"not found", 404, media_type="text/plain")
        # no-cache: revalidated every load, so a new server version's script is used at once.
        return Response(
            self._static[name], headers={"cache-control": "no-cache"}, media_type=_STATIC[name]
        )

    async def healthz(self, request: Request) -> Response:
        """``GET /healthz``: the page serves; says whether the scores database is writable."""
        healthy = self._reader.healthy  # the writer's last result: no query
        return _json(request, {"status": "ok", "database": "ok" if healthy else "unavailable"})

    async def leaderboard(self, request: Request) -> Response:
        """``GET /api/leaderboard``: every board, or one (``env_id``) a page at a time."""
        identity = self._identify(request)
        if identity is None:
            return _error(
                request, 401, _UNAUTHENTICATED, **{"www-authenticate": 'Bearer realm="gymrpc"'}
            )
        if not may_read_leaderboard(identity, self._visibility):
            # Who the page sees lets a signed-in non-admin sign out and in as an admin.
            forbidden = {
                "error": self._forbidden_message(identity),
                "viewer": self._viewer(identity),
                "auth_required": self._auth.required,
            }
            return _json(request, forbidden, 403)
        query = request.query_params
        env_id = query.get("env_id")
        try:
            if env_id is None:
                if "page_size" in query or "page_token" in query:
                    raise ValueError("page_size and page_token need env_id: they page one board")
                env_ids: Sequence[str] = self._reader.env_ids
                page_size, page_token = DEFAULT_PAGE_SIZE, None
            else:
                env_ids = [env_id]
                page_size = _page_size(query.get("page_size"))
                page_token = query.get("page_token") or None
            boards = await self._blocking(
                lambda: [
                    self._reader.board(e, page_size=page_size, page_token=page_token)
                    for e in env_ids
                ]
            )
        except UnknownEnvironmentError as error:
            return _error(request, 404, str(error))
        except ValueError as error:
            return _error(request, 400, str(error))
        except StoreUnavailableError as error:
            return _error(request, 503, str(error), **{"retry-after": "5"})
        return _json(request, self._envelope(identity, boards))

    def _envelope(self, identity: Identity, boards: list[BoardJson]) -> dict[str, Any]:
        """The API's answer (the schema: :mod:`gymrpc_server.scores.web`).

        A board of an environment that reports no failures gets ``failure_rate`` null,
        as the gRPC API leaves it unset.
        """
        shown: list[dict[str, Any]] = []
        for board in boards:
            # Copies: the reader's cached boards are shared between requests.
            rows: list[dict[str, Any]] = [dict(row) for row in board["rows"]]
            if not self._reports_failures(board["env_id"]):
                for row in rows:
                    row["failure_rate"] = None
            shown.append({**board, "rows": rows})
        return {
            "generated_at": iso_time(datetime.now(UTC)),
            "score_window": self._reader.score_window,
            "refresh_seconds": self._refresh_seconds,
            "viewer": self._viewer(identity),
            "auth_required": self._auth.required,
            "boards": shown,
        }

    async def login(self, request: Request) -> Response:
        """``POST /login`` (form field ``token``): checks the token, sets the cookie.

        Answers JSON (the page's script asks for it): 200 with the user, or 401; a plain
        form post without script is redirected to the page instead.
        """
        if not _same_origin(request):
            return _error(request, 403, "sign-in from another site's page is refused")
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return _error(
                request, 415, "expected a form (application/x-www-form-urlencoded) with 'token'"
            )
        try:
            fields = urllib.parse.parse_qs(
                (await request.body()).decode("utf-8"), max_num_fields=8, strict_parsing=False
            )
        except (UnicodeDecodeError, ValueError):
            return _error(request, 400, "the form is not valid UTF-8 with at most 8 fields")
        token = (fields.get("token") or [""])[0].strip()
        identity = self._auth.identify([("authorization", f"Bearer {token}")]) if token else None
        if identity is None:
            return _error(request, 401, "that token is not valid on this server")
        wants_json = "application/json" in request.headers.get("accept", "")
        response = (
            _json(request, self._viewer(identity))
            if wants_json
            else RedirectResponse("/", status_code=303)
        )
        if self._auth.required:
            response.set_cookie(
                COOKIE_NAME,
                _encode_cookie(token),
                path="/",
                httponly=True,
                samesite="strict",
                secure=_is_https(request),
            )
        return response

    async def logout(self, request: Request) -> Response:
        """``POST /logout``: forgets the cookie."""
        if not _same_origin(request):
            return _error(request, 403, "sign-out from another site's page is refused")
        response = _json(request, {"signed_out": True})
        response.delete_cookie(
            COOKIE_NAME, path="/", httponly=True, samesite="strict", secure=_is_https(request)
        )
        return response


def _page_size(text: str | None) -> int:
    if text is None:
        return DEFAULT_PAGE_SIZE
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"page_size is {text!r}; expected a whole number 1..1000") from None


def create_app(
    reader: BoardReader,
    authenticator: Authenticator,
    *,
    visibility: str,
    refresh_seconds: float,
    reports_failures: Callable[[str], bool],
    executor: Executor,
) -> ASGIApp:
    """Build the page's ASGI application.

    Args:
        reader: The boards.
        authenticator: The server's tokens.
        visibility: ``"public"`` or ``"admin"``.
        refresh_seconds: How often the page asks for new scores.
        reports_failures: Whether an environment reports failures (else its failure
            rate is null).
        executor: Threads for database reads.
    """
    page = _Page(
        reader,
        authenticator,
        visibility=visibility,
        refresh_seconds=refresh_seconds,
        reports_failures=reports_failures,
        executor=executor,
    )
    app = Starlette(
        routes=[
            Route("/", page.page, methods=["GET"]),
            Route("/api/leaderboard", page.leaderboard, methods=["GET"]),
            Route("/login", page.login, methods=["POST"]),
            Route("/logout", page.logout, methods=["POST"]),
            Route("/healthz", page.healthz, methods=["GET"]),
            Route("/static/{name}", page.static, methods=["GET"]),
        ],
        max_body_size=_MAX_BODY_BYTES,
    )
    return _SecurityHeaders(app)
