"""Run the conformance kit from pytest: one test per check, with readable ids.

Example, in a test module of a server written in any language (started by a fixture
that yields its ``host:port``)::

    import pytest
    from gymrpc.conformance import Target
    from gymrpc.conformance.testing import assert_conformant, check_params

    @pytest.mark.parametrize("check", check_params())
    def test_conformance(check, server_address):
        assert_conformant(check, Target(server_address))

A failed check fails its test with the kit's one-line reason; a skipped check skips
it. pytest is imported only when these helpers are called, so the kit itself does not
depend on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gymrpc.conformance import CHECKS, Check, CheckResult, Outcome, Target
from gymrpc.conformance.framework import run_check, select_checks
from gymrpc.conformance.probe import Connection

__all__ = ["assert_conformant", "check_params", "run_one"]


def check_params(checks: Iterable[str] | None = None) -> list[Any]:
    """``pytest.param`` objects for ``@pytest.mark.parametrize("check", ...)``.

    Args:
        checks: Ids or id prefixes ending with a dot; every check by default.

    Returns:
        One parameter per check, with the check's id as the test id.
    """
    import pytest  # noqa: PLC0415 (only the pytest helpers need pytest)

    return [pytest.param(item, id=item.id) for item in select_checks(checks, CHECKS)]


def run_one(check: Check, target: Target) -> CheckResult:
    """Run one check on its own connection (the handshake included)."""
    with Connection(target) as connection:
        return run_check(check, connection, handshake_problem=connection.handshake_problem())


def assert_conformant(check: Check, target: Target) -> CheckResult:
    """Run one check; fail the test if it fails, skip it if it is skipped.

    Args:
        check: A check, e.g. from :func:`check_params`.
        target: The server.

    Returns:
        The result, when the check passed.
    """
    import pytest  # noqa: PLC0415 (only the pytest helpers need pytest)

    result = run_one(check, target)
    if result.outcome is Outcome.FAIL:
        pytest.fail(f"{check.id}: {result.reason}", pytrace=False)
    if result.outcome is Outcome.SKIP:
        pytest.skip(f"{check.id}: {result.reason}")
    return result
