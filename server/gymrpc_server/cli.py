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

import gymnasium

from gymrpc_server import __version__
from gymrpc_server.config import ServerConfig, is_loopback_address
from gymrpc_server.server import create_server

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
    ),
    _Option(
        "--allow-env",
        "allowed_env_ids",
        str,
        "serve only this environment id (repeatable; env: comma-separated)",
        repeatable=True,
    ),
    _Option("--tokens-file", "tokens_file", Path, "TOML file of bearer tokens, users and roles"),
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
    _Option("--max-message-bytes", "max_message_bytes", int, "largest message in bytes"),
    _Option("--max-tensor-elements", "max_tensor_elements", int, "largest tensor accepted"),
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
        "--attribute-access",
        "attribute_access",
        str,
        "who may call methods and get/set attributes of sub-environments: admin or all",
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
        if value is not None:
            values[option.field] = value
    try:
        return ServerConfig(**values), namespace.log_level
    except ValueError as error:
        parser.error(str(error))


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
    try:
        server, port = create_server(config)
    except ValueError as error:
        logger.error("%s", error)
        return 2
    server.start()
    host = config.address.rpartition(":")[0]
    auth = "tokens" if config.tokens_file else f"open (anonymous {config.anonymous_role})"
    logger.info(
        "gymrpc-server %s serving on %s:%d (%s, auth: %s, %s; %d environments registered)",
        __version__,
        host,
        port,
        "TLS" if config.tls else "plaintext",
        auth,
        "loopback only" if is_loopback_address(config.address) else "reachable from the network",
        len(config.allowed_env_ids or gymnasium.registry),
    )

    def on_signal(number: int, _frame: FrameType | None) -> None:
        logger.info("%s received; stopping gracefully", signal.Signals(number).name)
        server.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server.wait_for_termination()
    return 0
