"""Server configuration: one frozen dataclass, built by the CLI or directly by tests.

Every field has a default that is safe on a laptop: loopback only, limits on
everything a client can ask for. The CLI (:mod:`gymrpc_server.cli`) fills it from
flags whose defaults come from ``GYMRPC_*`` environment variables.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEFAULT_ADDRESS", "ServerConfig", "is_loopback_address", "split_address"]

DEFAULT_ADDRESS = "127.0.0.1:50051"


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything the server needs to know at start-up.

    Attributes:
        address: ``host:port`` to listen on; port 0 picks a free port.
        env_modules: Python modules imported at start-up so that they can register
            their own environments with Gymnasium.
        allowed_env_ids: When not empty, only these environment ids are served.
        tokens_file: TOML file mapping bearer tokens to users and roles; ``None``
            runs an open server where every caller is the anonymous user.
        anonymous_role: Role of callers on an open server, ``"user"`` or ``"admin"``
            (``"admin"`` lets local research see hidden state).
        allow_public_open: Allow an open server (no tokens) on a non-loopback
            address. Off by default: anyone who can reach the port could use it.
        tls_cert: PEM certificate chain; with ``tls_key``, serve TLS only.
        tls_key: PEM private key of ``tls_cert``.
        max_num_envs: Largest ``num_envs`` of one session.
        max_sessions_per_user: Sessions one user may have open at once.
        max_sessions: Sessions the whole server may have open at once.
        max_message_bytes: Largest message sent or received, in bytes.
        max_tensor_elements: Largest element count of one decoded tensor.
        step_quota: Environment steps one user may take in total; 0 is unlimited.
        session_idle_timeout: Seconds without a request after which a session is
            closed.
        max_workers: Threads serving calls. Each open stream holds one.
        max_concurrent_rpcs: Calls (streams included) in progress at once; beyond it
            gRPC answers RESOURCE_EXHAUSTED.
        grace_period: Seconds a stopping server waits for requests in progress.
        privileged_options: Environment options that only admins may set to a value
            other than their default.
        attribute_access: Who may use Call, GetAttr and SetAttr on sub-environments:
            ``"admin"`` (the default: attributes can reveal hidden state) or ``"all"``.
        workers: Server processes to run on this host (see :mod:`.workers`); each is a
            full server on its own port.
        worker_targets: The addresses of every worker of this server, this one
            included, in order; GetServerInfo reports them. Set by the worker launcher.
        database: Where episodes and scores are kept: a SQLite path, a SQLAlchemy URL
            (``sqlite:///...``, ``postgresql+psycopg://...``), ``"none"`` to keep none,
            or None for the default SQLite file in the user's data directory.
        score_window: A score is the mean return of this many last evaluation episodes.
        evaluation_envs: Environments that accept evaluation sessions, with their
            default options; None means ``gymrpc/Turbofan-v0`` when it is served.
        leaderboard: Who may read leaderboards: ``"public"`` (every authenticated
            caller) or ``"admin"``.
        http_address: ``host:port`` of the leaderboard web page; None serves none.
        record_queue: Episodes that may wait to be written (while the database is slow
            or unreachable) before evaluation requests are refused.
        metrics_address: ``host:port`` serving Prometheus metrics at ``/metrics`` (see
            :mod:`.metrics`; needs the ``metrics`` extra); None serves none.
        metrics_directory: Set by the worker launcher: record metrics into
            prometheus-client's multiprocess files in this directory, which the
            launcher serves for all workers; the worker serves nothing itself.
    """

    address: str = DEFAULT_ADDRESS
    env_modules: tuple[str, ...] = ()
    allowed_env_ids: frozenset[str] = field(default_factory=frozenset)
    tokens_file: Path | None = None
    anonymous_role: str = "user"
    allow_public_open: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_num_envs: int = 4096
    max_sessions_per_user: int = 64
    max_sessions: int = 1024
    max_message_bytes: int = 64 * 1024 * 1024
    max_tensor_elements: int = 1 << 28
    step_quota: int = 0
    session_idle_timeout: float = 300.0
    max_workers: int = 256
    max_concurrent_rpcs: int = 240
    grace_period: float = 5.0
    privileged_options: frozenset[str] = frozenset({"expose_hidden_state"})
    attribute_access: str = "admin"
    workers: int = 1
    worker_targets: tuple[str, ...] = ()
    database: str | None = None
    score_window: int = 100
    evaluation_envs: tuple[str, ...] | None = None
    leaderboard: str = "public"
    http_address: str | None = None
    record_queue: int = 10_000
    metrics_address: str | None = None
    metrics_directory: Path | None = None

    def __post_init__(self) -> None:
        """Reject inconsistent settings with a message naming the setting."""
        split_address(self.address)
        positive = {
            "max_num_envs": self.max_num_envs,
            "max_sessions_per_user": self.max_sessions_per_user,
            "max_sessions": self.max_sessions,
            "max_message_bytes": self.max_message_bytes,
            "max_tensor_elements": self.max_tensor_elements,
            "max_workers": self.max_workers,
            "max_concurrent_rpcs": self.max_concurrent_rpcs,
            "workers": self.workers,
            "score_window": self.score_window,
            "record_queue": self.record_queue,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} is {value}; expected a positive number")
        if self.step_quota < 0:
            raise ValueError(f"step_quota is {self.step_quota}; expected >= 0 (0 = unlimited)")
        if self.session_idle_timeout <= 0:
            raise ValueError(
                f"session_idle_timeout is {self.session_idle_timeout}; expected seconds > 0"
            )
        if self.grace_period < 0:
            raise ValueError(f"grace_period is {self.grace_period}; expected seconds >= 0")
        if self.anonymous_role not in ("user", "admin"):
            raise ValueError(
                f"anonymous_role is {self.anonymous_role!r}; expected 'user' or 'admin'"
            )
        if self.leaderboard not in ("public", "admin"):
            raise ValueError(f"leaderboard is {self.leaderboard!r}; expected 'public' or 'admin'")
        if self.http_address is not None:
            split_address(self.http_address)
        if self.metrics_address is not None:
            split_address(self.metrics_address)
        if self.attribute_access not in ("admin", "all"):
            raise ValueError(
                f"attribute_access is {self.attribute_access!r}; expected 'admin' or 'all'"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.max_concurrent_rpcs > self.max_workers:
            raise ValueError(
                f"max_concurrent_rpcs ({self.max_concurrent_rpcs}) exceeds max_workers "
                f"({self.max_workers}); every call in progress needs a worker thread"
            )

    @property
    def open(self) -> bool:
        """True when no tokens file is configured: every caller is anonymous."""
        return self.tokens_file is None

    @property
    def tls(self) -> bool:
        """True when the server listens with TLS."""
        return self.tls_cert is not None


def split_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 hosts in brackets) into host and port.

    Args:
        address: For example ``127.0.0.1:50051``, ``[::1]:0`` or ``localhost:8000``.

    Returns:
        The host (without brackets) and the port.

    Raises:
        ValueError: If the address has no port or the port is not in 0..65535.
    """
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"address {address!r} is not host:port with a port in 0..65535")
    return host.strip("[]"), int(port_text)


def is_loopback_address(address: str) -> bool:
    """Tell whether ``host:port`` only accepts connections from this machine.

    Args:
        address: The listening address.

    Returns:
        True for ``localhost`` and loopback IPs; False for wildcards such as
        ``0.0.0.0`` or ``[::]`` and for every other host.
    """
    host, _ = split_address(address)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
