"""The read-only leaderboard web page (``--http-address``), served in the server process.

:func:`start_web` starts a Starlette application under uvicorn in a background thread
and returns a :class:`WebServer`; the gRPC server starts it after the store is open and
stops it before closing the store::

    web = start_web(
        store, authenticator, address="127.0.0.1:8080", visibility="public",
        env_ids=["gymrpc/Turbofan-v0"],
    )
    print(web.url)  # http://127.0.0.1:8080/
    ...
    web.stop()

Starlette and uvicorn are the optional ``web`` extra: this module imports them only in
:func:`start_web`, so ``import gymrpc_server`` stays lean.

The page (``GET /``) shows one table per evaluated environment (rank, user, score,
episodes, a provisional marker, failure rate, time of the last episode, and each user's
score over time as a sparkline drawn by the page's own script) and refreshes itself
every ``refresh_seconds`` without reloading. Nothing is loaded from elsewhere: the
server may have no internet. Who sees it follows the gRPC side's rule: with
``visibility="public"`` every authenticated caller (anyone on a server without
tokens), with ``"admin"`` admins only. Nobody sees episodes here, only scores.

``GET /api/leaderboard`` answers JSON (``?env_id=`` for one board, with ``page_size``
1..1000, default 100, and ``page_token``; all boards otherwise)::

    {
      "generated_at": "2026-01-01T12:00:00.000Z",
      "score_window": 100,
      "refresh_seconds": 10,
      "viewer": {"user": "alice", "role": "user"},
      "auth_required": true,
      "boards": [
        {
          "env_id": "gymrpc/Turbofan-v0",
          "total_users": 12,
          "next_page_token": null,
          "rows": [
            {
              "rank": 1, "user": "alice", "score": 4934.2, "episodes": 100,
              "total_episodes": 312, "provisional": false, "failure_rate": 0.025,
              "last_episode_time": "2026-01-01T11:58:03.120Z",
              "history": [{"time": "...", "score": 1200.5, "episodes": 1}, ...]
            }
          ]
        }
      ]
    }

``failure_rate`` is null for environments that report no failures; ``history`` holds
at most 40 points, the first and the current score included (see
:mod:`.web_boards`). Errors are ``{"error": "..."}`` with 400 (bad parameter), 401
(missing or wrong token, with ``WWW-Authenticate: Bearer``), 403 (an admins-only board
and a non-admin), 404 (an env_id not evaluated here) or 503 (database unreachable).
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from gymrpc_server.auth import Authenticator
from gymrpc_server.config import is_loopback_address, split_address
from gymrpc_server.scores.store import ScoreStore
from gymrpc_server.scores.web_boards import VISIBILITIES, BoardReader

if TYPE_CHECKING:
    import uvicorn

__all__ = ["DEFAULT_HTTP_ADDRESS", "WebServer", "start_web"]

logger = logging.getLogger(__name__)

#: Where the page listens unless told: this machine only.
DEFAULT_HTTP_ADDRESS: Final = "127.0.0.1:8080"
_INSTALL_HINT: Final = "pip install -e '.[web]'"
#: Seconds uvicorn lets requests in progress finish at a stop; the page's are short.
_GRACEFUL_SECONDS: Final = 1
#: Seconds start_web waits for the listener; only a broken machine takes longer.
_START_TIMEOUT: Final = 30.0


def _all_failures(_env_id: str) -> bool:
    return True


class WebServer:
    """A running leaderboard page: uvicorn in its own thread, database reads in a pool.

    Build it with :func:`start_web`; :meth:`stop` it (or use ``with``).

    Attributes:
        host: The address it listens on.
        port: Its port (the one the OS chose for port 0).
        url: Its base URL, ``http(s)://host:port/``.
    """

    def __init__(
        self,
        server: uvicorn.Server,
        listener: socket.socket,
        executor: ThreadPoolExecutor,
        *,
        tls: bool,
    ) -> None:
        self._server = server
        self._executor = executor
        self.host, self.port = listener.getsockname()[:2]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'https' if tls else 'http'}://{shown}:{self.port}/"
        self._failure: BaseException | None = None
        self._stop_lock = threading.Lock()
        self._stopped: bool | None = None
        self._thread = threading.Thread(
            target=self._serve, args=(listener,), name="gymrpc-web", daemon=True
        )

    def __repr__(self) -> str:
        return f"<WebServer {self.url}>"

    def _serve(self, listener: socket.socket) -> None:
        try:
            self._server.run(sockets=[listener])
        except BaseException as error:  # uvicorn exits with SystemExit on startup errors
            self._failure = error
            logger.exception("the leaderboard page stopped on an error")
        finally:
            listener.close()

    def _start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        # uvicorn offers no event for "listening"; its flag turns true once it is.
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ValueError(
                    f"the leaderboard page could not start on {self.url}: {self._failure!r}"
                )
            time.sleep(0.01)

    @property
    def running(self) -> bool:
        """True while it serves."""
        return self._thread.is_alive() and not self._server.should_exit

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop gracefully: stop listening, let requests in progress end, join the threads.

        Requests in progress get about a second; idle keep-alive connections close at
        once. Later calls return the first answer.

        Args:
            timeout: Seconds to wait for the server thread at most.

        Returns:
            True when every thread of the page has ended.
        """
        with self._stop_lock:
            if self._stopped is None:
                self._server.should_exit = True  # uvicorn looks at it ten times a second
                if self._thread.ident is not None:  # started
                    self._thread.join(timeout)
                # After the server: a request still running may need a database thread.
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._stopped = not self._thread.is_alive()
                if not self._stopped:
                    logger.warning("the leaderboard page did not stop within %.1f s", timeout)
            return self._stopped

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _check_exposure(address: str, authenticator: Authenticator, allow_public_open: bool) -> None:
    """The gRPC server's rule (``server._check_exposure``), for the page's own address."""
    if is_loopback_address(address):
        return
    if not authenticator.required and not allow_public_open:
        raise ValueError(
            f"refusing to serve the leaderboard page on {address} without a tokens file: "
            "anyone who can reach it could read the scores. Give --tokens-file, or "
            "--allow-public-open if this is really what you want"
        )


def _listen(address: str) -> socket.socket:
    """A socket bound to ``address``; bind errors in words, as ``ValueError``."""
    host, port = split_address(address)
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise ValueError(
            f"cannot serve the leaderboard page on {address}: the host {host!r} does not "
            f"resolve ({error.strerror})"
        ) from None
    listener = socket.socket(family, kind, proto)
    try:
        # Restarting right after a stop must not wait for old connections' TIME_WAIT;
        # a port another server listens on still fails (that would be SO_REUSEPORT).
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(sockaddr)
    except OSError as error:
        listener.close()
        reason = {
            errno.EADDRINUSE: f"port {port} is already in use (another server listens on it)",
            errno.EACCES: f"permission denied for port {port} (ports below 1024 need privileges)",
            errno.EADDRNOTAVAIL: f"{host} is not an address of this machine",
        }.get(error.errno or 0, error.strerror or str(error))
        raise ValueError(f"cannot serve the leaderboard page on {address}: {reason}") from None
    return listener


def start_web(
    store: ScoreStore,
    authenticator: Authenticator,
    *,
    address: str = DEFAULT_HTTP_ADDRESS,
    visibility: str = "public",
    env_ids: Sequence[str],
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    allow_public_open: bool = False,
    reports_failures: Callable[[str], bool] = _all_failures,
    refresh_seconds: float = 10.0,
    cache_seconds: float = 2.0,
) -> WebServer:
    """Serve the leaderboard page in a background thread; return once it listens.

    Args:
        store: The scores store (stop the page before closing it).
        authenticator: The server's tokens (the gRPC server's own authenticator).
        address: ``host:port`` to listen on; port 0 picks a free port.
        visibility: Who may read the boards: ``"public"`` or ``"admin"`` (the server's
            ``--leaderboard``).
        env_ids: The evaluated environments; one board each, in this order.
        tls_cert: PEM certificate chain; with ``tls_key``, serve HTTPS only (the
            cookie is then ``Secure``).
        tls_key: PEM private key of ``tls_cert``.
        allow_public_open: Allow a server without tokens on a non-loopback address.
        reports_failures: Whether an environment reports failures; the failure rate of
            those that do not is null (as the gRPC API leaves it unset).
        refresh_seconds: How often an open page asks for new scores.
        cache_seconds: How long a board read from the database is served again.

    Returns:
        The running page.

    Raises:
        ValueError: If the page cannot be served: the ``web`` extra is not installed
            (the message says ``pip install -e '.[web]'``), a setting is out of range,
            an open server on a public address, a TLS file that cannot be read, or an
            address that cannot be bound; one line, naming the setting.
    """
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility is {visibility!r}; expected 'public' or 'admin'")
    if refresh_seconds <= 0:
        raise ValueError(f"refresh_seconds is {refresh_seconds}; expected seconds > 0")
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("tls_cert and tls_key must be given together")
    _check_exposure(address, authenticator, allow_public_open)
    try:
        import uvicorn  # noqa: PLC0415  (the optional web extra)

        from gymrpc_server.scores.web_app import create_app  # noqa: PLC0415  (imports starlette)
    except ImportError as error:
        raise ValueError(
            f"the leaderboard page (--http-address) needs the web extra ({error}); install "
            f"it with: {_INSTALL_HINT}"
        ) from error
    if not is_loopback_address(address) and tls_cert is None:
        logger.warning(
            "serving the leaderboard page on %s without TLS: tokens travel in clear text", address
        )
    reader = BoardReader(store, env_ids, cache_seconds=cache_seconds)
    # Database reads leave the event loop for these threads; two suffice for a page
    # whose boards are cached, and bound what the page can ask of the database at once.
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gymrpc-web-db")
    app = create_app(
        reader,
        authenticator,
        visibility=visibility,
        refresh_seconds=refresh_seconds,
        reports_failures=reports_failures,
        executor=executor,
    )
    config = uvicorn.Config(
        app,
        loop="asyncio",
        http="h11",
        ws="none",
        lifespan="off",
        # The process's logging belongs to the CLI; uvicorn must not install handlers.
        log_config=None,
        # A page refreshing every few seconds per viewer would drown the server's log.
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=_GRACEFUL_SECONDS,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
    )
    try:
        config.load()  # reads the TLS files now, so that a bad one fails here
    except (OSError, ssl.SSLError) as error:
        executor.shutdown()
        raise ValueError(
            f"cannot serve the leaderboard page with TLS ({tls_cert}, {tls_key}): {error}"
        ) from error
    try:
        listener = _listen(address)
    except ValueError:
        executor.shutdown()
        raise
    web = WebServer(uvicorn.Server(config), listener, executor, tls=tls_cert is not None)
    web._start()
    logger.info(
        "leaderboard page on %s (%s boards: %s)",
        web.url,
        visibility,
        ", ".join(reader.env_ids) or "none",
    )
    return web
