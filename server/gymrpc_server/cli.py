"""``gymrpc-server`` (and ``python -m gymrpc_server``): run a server until signalled.

Every flag takes its default from a ``GYMRPC_*`` environment variable, then from
:class:`~gymrpc_server.config.ServerConfig`. SIGINT and SIGTERM stop the server
gracefully.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import FrameType
from typing import Any

from gymrpc_server import __version__
from gymrpc_server.config import ServerConfig, is_loopback_address
from gymrpc_server.describe import CatalogueReport
from gymrpc_server.metrics import WorkersMetrics
from gymrpc_server.server import create_server
from gymrpc_server.workers import run_workers

__all__ = ["build_config", "main"]

logger = logging.getLogger("gymrpc_server")
_DEFAULTS = {f.name: f.default for f in fields(ServerConfig)}


def _words(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.replace(",", " ").split() if part)


def _flag(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; use true or false")


@dataclass(frozen=True)
class _Option:
    flag: str
    field: str
    parse: Callable[[str], Any]
    help: str
    repeatable: bool = False
    switch: bool = False
    #: How README's flag table shows the default, when its repr is not telling.
    default_text: str | None = None

    @property
    def variable(self) -> str:
        return "GYMRPC_" + self.field.upper()


_OPTIONS = (
    _Option("--address", "address", str, "host:port to listen on"),
    _Option(
        "--env-module",
        "env_modules",
        str,
        "module to import so it registers environments (repeatable; env: comma-separated)",
        repeatable=True,
        default_text="none",
    ),
    _Option(
        "--allow-env",
        "allowed_env_ids",
        str,
        "serve only this environment id (repeatable; env: comma-separated)",
        repeatable=True,
        default_text="all registered",
    ),
    _Option(
        "--tokens-file",
        "tokens_file",
        Path,
        "TOML file of bearer tokens, users and roles",
        default_text="none: an open server",
    ),
    _Option(
        "--anonymous-role",
        "anonymous_role",
        str,
        "role of callers when there is no tokens file: user, or admin to see hidden state",
    ),
    _Option(
        "--allow-public-open",
        "allow_public_open",
        _flag,
        "allow a server without tokens on a non-loopback address",
        switch=True,
    ),
    _Option("--tls-cert", "tls_cert", Path, "PEM certificate chain (serve TLS)"),
    _Option("--tls-key", "tls_key", Path, "PEM private key of --tls-cert"),
    _Option("--max-num-envs", "max_num_envs", int, "largest num_envs of a session"),
    _Option("--max-sessions-per-user", "max_sessions_per_user", int, "open sessions per user"),
    _Option("--max-sessions", "max_sessions", int, "open sessions on the whole server"),
    _Option(
        "--max-message-bytes",
        "max_message_bytes",
        int,
        "largest message in bytes (clients match it); sessions whose step results cannot fit "
        "are refused at creation",
        default_text="67108864 (64 MiB)",
    ),
    _Option(
        "--max-tensor-elements",
        "max_tensor_elements",
        int,
        "largest number of elements of one tensor a client may send",
        default_text="268435456 (2^28)",
    ),
    _Option("--step-quota", "step_quota", int, "environment steps per user, 0 = unlimited"),
    _Option(
        "--session-idle-timeout",
        "session_idle_timeout",
        float,
        "seconds without requests before a session is closed",
    ),
    _Option("--max-workers", "max_workers", int, "threads serving calls (one per open stream)"),
    _Option("--max-concurrent-rpcs", "max_concurrent_rpcs", int, "calls in progress at once"),
    _Option("--grace-period", "grace_period", float, "seconds to finish requests when stopping"),
    _Option(
        "--workers",
        "workers",
        int,
        "server processes on this host, each a full server on its own port (port P: P..P+N-1; "
        "port 0: chosen by the OS); a client given any of them spreads its batch over all",
    ),
    _Option(
        "--attribute-access",
        "attribute_access",
        str,
        "who may call methods and get/set attributes of sub-environments: admin or all",
    ),
    _Option(
        "--database",
        "database",
        str,
        "where episodes and scores are kept: a SQLite file, a sqlite:/// or "
        "postgresql+psycopg:// URL, or none",
        default_text="`scores.sqlite3` in the user's data directory",
    ),
    _Option(
        "--score-window",
        "score_window",
        int,
        "a user's score is the mean return of their last N evaluation episodes",
    ),
    _Option(
        "--evaluation-env",
        "evaluation_envs",
        str,
        "environment that accepts evaluation sessions, with its default options "
        "(repeatable; env: comma-separated; none for no evaluation)",
        repeatable=True,
        default_text="`gymrpc/Turbofan-v0`",
    ),
    _Option(
        "--leaderboard",
        "leaderboard",
        str,
        "who may read leaderboards: public (every authenticated caller) or admin",
    ),
    _Option(
        "--record-queue",
        "record_queue",
        int,
        "episodes that may wait to be written while the database is slow or unreachable; "
        "beyond, evaluation requests are refused",
    ),
    _Option(
        "--http-address",
        "http_address",
        str,
        "host:port of the leaderboard web page (needs the web extra)",
        default_text="off",
    ),
    _Option(
        "--metrics-address",
        "metrics_address",
        str,
        "host:port serving Prometheus metrics at /metrics (needs the metrics extra); with "
        "--workers, one endpoint for all workers",
        default_text="off",
    ),
)


def _parser(environ: dict[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gymrpc-server",
        description="Serve Gymnasium environments over gRPC (gymrpc protocol v1).",
    )
    parser.add_argument("--version", action="version", version=f"gymrpc-server {__version__}")
    for option in _OPTIONS:
        raw = environ.get(option.variable)
        default: Any
        if option.repeatable:
            default = list(_words(raw)) if raw is not None else []
            parser.add_argument(
                option.flag,
                dest=option.field,
                action="append",
                default=None,
                help=f"{option.help} [{option.variable}]",
            )
            parser.set_defaults(**{f"{option.field}_env": default})
            continue
        default = option.parse(raw) if raw is not None else _DEFAULTS.get(option.field)
        if option.switch:
            parser.add_argument(
                option.flag,
                dest=option.field,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=f"{option.help} [{option.variable}]",
            )
        else:
            parser.add_argument(
                option.flag,
                dest=option.field,
                type=option.parse,
                default=default,
                help=f"{option.help} (default: %(default)s) [{option.variable}]",
            )
    parser.add_argument(
        "--log-level",
        default=environ.get("GYMRPC_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level [GYMRPC_LOG_LEVEL]",
    )
    return parser


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def flag_table() -> str:
    """README's table of flags, generated from the parser so that the two cannot drift.

    Returns:
        A Markdown table: flag, environment variable, default, meaning; one row per
        option of ``gymrpc-server --help`` (``--help`` itself excepted).
    """
    parser = _parser({})
    by_field = {option.field: option for option in _OPTIONS}
    rows = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for action in parser._actions:  # argparse keeps its options there; no public getter
        if not action.option_strings or action.dest == "help":
            continue
        option = by_field.get(action.dest)
        flags = ", ".join(f"`{flag}`" for flag in action.option_strings)
        variable = f"`{option.variable}`" if option else ""
        if action.dest == "log_level":
            variable = "`GYMRPC_LOG_LEVEL`"
        meaning = (action.help or "").split(" (default:")[0].split(" [GYMRPC_")[0]
        if option is not None and option.default_text is not None:
            default = option.default_text
        elif action.dest in ("version",) or action.default in (None, argparse.SUPPRESS):
            default = ""
        elif isinstance(action.default, bool):
            default = "on" if action.default else "off"
        else:
            default = f"`{action.default}`"
        if action.dest == "version":
            meaning = "print the version and exit"
        rows.append(f"| {flags} | {variable} | {default} | {_cell(meaning)} |")
    return "\n".join(rows) + "\n"


def build_config(
    argv: Sequence[str] | None = None, environ: dict[str, str] | None = None
) -> tuple[ServerConfig, str]:
    """Build the configuration from flags and ``GYMRPC_*`` variables.

    Args:
        argv: Command-line arguments (without the program name).
        environ: Environment variables; ``os.environ`` by default.

    Returns:
        The configuration and the log level.

    Raises:
        SystemExit: With a usage message for invalid flags or values.
    """
    parser = _parser(dict(os.environ if environ is None else environ))
    namespace = parser.parse_args(argv)
    values: dict[str, Any] = {}
    for option in _OPTIONS:
        value = getattr(namespace, option.field)
        if option.repeatable:
            given = value if value is not None else getattr(namespace, f"{option.field}_env")
            words = [word for item in given for word in _words(item)]
            value = frozenset(words) if option.field == "allowed_env_ids" else tuple(words)
            if option.field == "evaluation_envs":
                # Not given: the default; "none": no environment is evaluated.
                value = None if not words else tuple(w for w in words if w != "none")
        if value is not None:
            values[option.field] = value
    try:
        return ServerConfig(**values), namespace.log_level
    except ValueError as error:
        parser.error(str(error))


def _log_catalogue(report: CatalogueReport) -> None:
    """Say what is served, and what is registered but not served and why."""
    logger.info("serving %d environments: %s", len(report.served), ", ".join(report.served))
    by_reason: dict[str, list[str]] = {}
    for env_id, reason in sorted(report.unavailable.items()):
        by_reason.setdefault(reason, []).append(env_id)
    for reason, env_ids in sorted(by_reason.items(), key=lambda item: -len(item[1])):
        logger.info(
            "not serving %d registered environments (%s): %s",
            len(env_ids),
            reason,
            ", ".join(env_ids),
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGINT or SIGTERM.

    Args:
        argv: Command-line arguments (without the program name).

    Returns:
        The process exit status.
    """
    config, log_level = build_config(argv)
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # Alembic says "running migrations" at every start; only its problems are news.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLevelName(log_level)))
    if config.workers > 1:
        try:
            metrics = WorkersMetrics.open(config)  # one endpoint for every worker
        except ValueError as error:
            logger.error("%s", error)
            return 2
        with metrics:
            return run_workers(metrics.worker_config(config), log_level, announce=_log_catalogue)
    try:
        server, port = create_server(config)
    except ValueError as error:
        # One line, no traceback: the cause (a busy port, a bad tokens file) is the news.
        logger.error("%s", error)
        return 2

    def on_signal(number: int, _frame: FrameType | None) -> None:
        logger.info("%s received; stopping gracefully", signal.Signals(number).name)
        server.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server.start()
    host = config.address.rpartition(":")[0]
    auth = "tokens" if config.tokens_file else f"open (anonymous {config.anonymous_role})"
    logger.info(
        "gymrpc-server %s serving on %s:%d (%s, auth: %s, %s)",
        __version__,
        host,
        port,
        "TLS" if config.tls else "plaintext",
        auth,
        "loopback only" if is_loopback_address(config.address) else "reachable from the network",
    )
    # Describing every registered environment builds each once: after the handlers, the
    # descriptions are then cached for ListEnvironments.
    _log_catalogue(server.describer.report())
    server.wait_for_termination()
    return 0
