"""Checks, their results and the runner: what the kit is made of, independent of any check.

A check is a function that drives a server through a :class:`~.probe.Probe` and raises
:class:`Violation` at the first thing the schema forbids, or :class:`Skipped` when it
cannot run against this server (say, PERMISSION_DENIED when the caller is an admin).
Checks register themselves with :func:`check`, in the order the documentation lists
them (docs/conformance.md).

Example:
    >>> @check("example.truth", rule="nowhere", title="an example", registry=[])
    ... def truth(probe: object) -> None:
    ...     if 1 + 1 != 2:
    ...         raise Violation("1 + 1", received="3", expected="2", rule="arithmetic")
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import grpc

if TYPE_CHECKING:
    from gymrpc.conformance.probe import Connection, Probe, Target

__all__ = [
    "CHECKS",
    "Check",
    "CheckResult",
    "Outcome",
    "Skipped",
    "Violation",
    "call_of",
    "check",
    "run_check",
]


class Outcome(enum.Enum):
    """What a check concluded."""

    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


class Violation(Exception):  # noqa: N818 (a check outcome, not an error of the kit)
    """The server broke a rule of the schema.

    Args:
        subject: What was sent or looked at, e.g. ``"Step with actions [0, 3, 1]"``.
        received: What the server answered.
        expected: What the schema says it must answer.
        rule: Where the rule is written, e.g. ``"errors.proto, the error table"``.
    """

    def __init__(self, subject: str, *, received: str, expected: str, rule: str) -> None:
        self.subject = subject
        self.received = received
        self.expected = expected
        self.rule = rule
        super().__init__(f"{subject}: received {received}; expected {expected} [{rule}]")


class Skipped(Exception):  # noqa: N818 (a check outcome, not an error of the kit)
    """The check cannot run against this server; the message says why."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Attributes:
        check_id: The check's id, e.g. ``"errors.invalid_action"``.
        outcome: PASS, FAIL or SKIP.
        rule: The schema rule the check verifies.
        reason: Empty on PASS; on FAIL, one line naming the rule and what was received
            versus expected; on SKIP, why the check could not run.
        seconds: How long the check took.
    """

    check_id: str
    outcome: Outcome
    rule: str
    reason: str
    seconds: float

    @property
    def passed(self) -> bool:
        """True unless the check failed (a skip is not a failure)."""
        return self.outcome is not Outcome.FAIL

    def line(self) -> str:
        """The result as the command line prints it: ``FAIL id: reason``."""
        return f"{self.outcome.value} {self.check_id}" + (f": {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class Check:
    """One documented protocol check.

    Attributes:
        id: Stable identifier, ``area.name``.
        rule: The schema rule it verifies (file and section).
        title: One line saying what it does.
        run: The function that drives the server.
        needs_handshake: False for the few checks that must run even when the
            handshake fails (authentication, health).
    """

    id: str
    rule: str
    title: str
    run: Callable[[Probe], None]
    needs_handshake: bool = True

    def __str__(self) -> str:
        return self.id


#: Every check of the kit, in documentation order (filled by :mod:`.checks`).
CHECKS: list[Check] = []


def check(
    check_id: str,
    *,
    rule: str,
    title: str,
    needs_handshake: bool = True,
    registry: list[Check] | None = None,
) -> Callable[[Callable[[Probe], None]], Callable[[Probe], None]]:
    """Register a check function.

    Args:
        check_id: Its stable id.
        rule: The schema rule it verifies.
        title: What it does, in one line.
        needs_handshake: Whether it needs a working GetServerInfo first.
        registry: Where to register it; :data:`CHECKS` by default.

    Returns:
        A decorator that registers the function and returns it unchanged.
    """

    def register(function: Callable[[Probe], None]) -> Callable[[Probe], None]:
        target = CHECKS if registry is None else registry
        if any(existing.id == check_id for existing in target):
            raise ValueError(f"check id {check_id!r} is registered twice")
        target.append(Check(check_id, rule, title, function, needs_handshake))
        return function

    return register


def call_of(error: grpc.RpcError) -> grpc.Call | None:
    """The ``grpc.Call`` side of an error grpcio raised, if it has one.

    grpcio's call errors are also ``grpc.Call`` objects; the type stubs cannot express
    the intersection, hence the look-up by attribute.
    """
    call: Any = error
    return cast(grpc.Call, call) if callable(getattr(call, "code", None)) else None


def _describe_rpc_error(error: grpc.RpcError) -> str:
    call = call_of(error)
    if call is None:
        return f"a gRPC error ({error})"
    return f"{call.code().name}: {call.details()}"


def run_check(
    check: Check, connection: Connection, *, handshake_problem: str | None
) -> CheckResult:
    """Run one check on its own probe and turn what happened into a result.

    Args:
        check: The check.
        connection: The channel to the server.
        handshake_problem: Why GetServerInfo failed, if it did: checks that need it
            are skipped with that reason instead of failing for the same cause.

    Returns:
        The result. Any exception other than :class:`Violation` and :class:`Skipped`
        is a failure too (an unexpected gRPC error, say), never a crash of the kit.
    """
    from gymrpc.conformance.probe import Probe  # noqa: PLC0415 (probe imports this module)

    started = time.monotonic()
    if check.needs_handshake and handshake_problem is not None:
        return CheckResult(
            check.id, Outcome.SKIP, check.rule, f"no handshake: {handshake_problem}", 0.0
        )
    probe = Probe(connection)
    try:
        check.run(probe)
        outcome, reason = Outcome.PASS, ""
    except Violation as violation:
        outcome, reason = Outcome.FAIL, str(violation)
    except Skipped as skipped:
        outcome, reason = Outcome.SKIP, str(skipped)
    except grpc.RpcError as error:
        outcome = Outcome.FAIL
        reason = f"unexpected gRPC error {_describe_rpc_error(error)} [{check.rule}]"
    except Exception as error:  # a server answer the kit could not even parse
        outcome = Outcome.FAIL
        reason = f"unexpected {type(error).__name__}: {error} [{check.rule}]"
    finally:
        probe.close()
    # One line per check: a reason that echoes a multi-line server message is folded.
    reason = " ".join(reason.split())
    return CheckResult(check.id, outcome, check.rule, reason, time.monotonic() - started)


def select_checks(ids: Iterable[str] | None, checks: Sequence[Check]) -> list[Check]:
    """The checks with the given ids (or id prefixes such as ``"stream."``), in order.

    Args:
        ids: Ids or prefixes ending with ``.``; ``None`` selects every check.
        checks: The candidates.

    Returns:
        The selected checks, in registration order.

    Raises:
        ValueError: If an id matches no check.
    """
    if ids is None:
        return list(checks)
    wanted = list(ids)
    for item in wanted:
        if not any(c.id == item or (item.endswith(".") and c.id.startswith(item)) for c in checks):
            known = ", ".join(c.id for c in checks)
            raise ValueError(f"no check {item!r}; expected one of: {known}")
    return [
        c
        for c in checks
        if any(c.id == i or (i.endswith(".") and c.id.startswith(i)) for i in wanted)
    ]


def run_all(
    target: Target, checks: Sequence[Check], *, on_result: Callable[[CheckResult], None] | None
) -> list[CheckResult]:
    """Run checks one after the other on one channel.

    Args:
        target: Where the server is and how to reach it.
        checks: The checks to run.
        on_result: Called with each result as soon as it is known.

    Returns:
        The results, in the order of ``checks``.
    """
    from gymrpc.conformance.probe import Connection  # noqa: PLC0415 (probe imports this module)

    results: list[CheckResult] = []
    with Connection(target) as connection:
        problem = connection.handshake_problem()
        for item in checks:
            result = run_check(item, connection, handshake_problem=problem)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results
