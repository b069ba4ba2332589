"""A conformance kit for gymrpc.v1 servers, whatever language they are written in.

It talks to a server through the generated stubs and raw gRPC only, and checks it
against the rules written in the schema (``proto/gymrpc/v1``): the handshake, the
catalogue, the session life cycle, results, seeding, every client-provokable row of
the error table, the session stream's sequence and retry rules, autoreset modes and
the health service. docs/conformance.md lists every check with its rule, and specifies
the conformance environment ``gymrpc/Conformance-v0`` the checks drive.

From the command line::

    python -m gymrpc.conformance --target 127.0.0.1:50051 [--token T] [--tls-ca ca.pem]

From Python::

    from gymrpc.conformance import Target, run_checks

    results = run_checks(Target("127.0.0.1:50051"))
    failed = [result for result in results if not result.passed]

From pytest, see :mod:`gymrpc.conformance.testing`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import gymrpc.conformance.checks  # noqa: F401 (registers the checks)
from gymrpc.conformance.framework import (
    CHECKS,
    Check,
    CheckResult,
    Outcome,
    Skipped,
    Violation,
    run_all,
    select_checks,
)
from gymrpc.conformance.model import ENV_ID
from gymrpc.conformance.probe import Target

__all__ = [
    "CHECKS",
    "ENV_ID",
    "Check",
    "CheckResult",
    "Outcome",
    "Skipped",
    "Target",
    "Violation",
    "run_checks",
]


def run_checks(
    target: Target | str,
    *,
    checks: Iterable[str] | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Run the kit's checks against a server.

    Args:
        target: The server, or just its ``host:port`` (no token, no TLS).
        checks: Ids (``"stream.retry"``) or id prefixes ending with a dot
            (``"errors."``) to run; every check by default.
        on_result: Called with each result as soon as it is known (the command line
            prints it).

    Returns:
        One result per check, in documentation order. A check never raises: a server
        that crashes a call, or answers something unreadable, fails it.

    Raises:
        ValueError: If ``checks`` names no known check.

    Example:
        >>> from gymrpc.conformance import run_checks
        >>> results = run_checks("127.0.0.1:50051", checks=["health.serving"])  # doctest: +SKIP
        >>> [(r.check_id, r.outcome.value) for r in results]  # doctest: +SKIP
        [('health.serving', 'PASS')]
    """
    resolved = Target(target) if isinstance(target, str) else target
    return run_all(resolved, select_checks(checks, CHECKS), on_result=on_result)
