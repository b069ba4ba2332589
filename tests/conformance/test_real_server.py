"""Our own server against the conformance kit: every check passes.

The parametrized test is exactly what docs/conformance.md shows a team of another
language: ``check_params()`` and ``assert_conformant()``. (The kit's first run found
two rules our server broke, both fixed: a closed session's error on a bound stream
named ``session_id`` instead of ``step.session_id``, and a duplicate key's message did
not start with the field path it named.)
"""

from __future__ import annotations

import socket

import pytest

from gymrpc.conformance import CHECKS, Check, CheckResult, Outcome, Target, run_checks
from gymrpc.conformance.testing import assert_conformant, check_params


#: Check id -> (text of the kit's reason, the server behaviour that breaks the rule).
@pytest.mark.parametrize("check", check_params())
def test_our_server_passes(check: Check, real_target: Target) -> None:
    assert_conformant(check, real_target)


def test_run_checks_returns_one_structured_result_per_check(
    baseline: dict[str, CheckResult],
) -> None:
    assert list(baseline) == [check.id for check in CHECKS]
    for check in CHECKS:
        result = baseline[check.id]
        assert result.rule == check.rule
        assert result.seconds >= 0
        if result.outcome is Outcome.PASS:
            assert result.reason == ""
            assert result.line() == f"PASS {check.id}"
        elif result.outcome is Outcome.FAIL:
            # One line naming what was sent, received, expected and the rule.
            assert "\n" not in result.reason
            assert ": received " in result.reason
            assert "; expected " in result.reason
            assert result.reason.endswith("]")
            assert result.line().startswith(f"FAIL {check.id}: ")
            assert not result.passed
    # An open server cannot refuse a missing token: that check is the only skip.
    skipped = [r.check_id for r in baseline.values() if r.outcome is Outcome.SKIP]
    assert skipped == ["errors.unauthenticated"]


def test_run_checks_selects_by_id_and_area(real_target: Target) -> None:
    results = run_checks(real_target, checks=["stream.", "health.serving"])
    expected = [c.id for c in CHECKS if c.id.startswith("stream.")] + ["health.serving"]
    assert [r.check_id for r in results] == expected
    assert all(r.outcome is Outcome.PASS for r in results)
    with pytest.raises(ValueError, match=r"no check 'stream\.nope'"):
        run_checks(real_target, checks=["stream.nope"])


def test_run_checks_accepts_an_address(real_target: Target) -> None:
    (result,) = run_checks(real_target.address, checks=["handshake.server_info"])
    assert result.outcome is Outcome.PASS


def test_an_unreachable_server_fails_the_handshake_and_skips_the_rest() -> None:
    # A port just released by the operating system: nothing listens there.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = Target(f"127.0.0.1:{port}", timeout=2)
    results = {
        r.check_id: r for r in run_checks(target, checks=["handshake.", "session.", "health."])
    }
    assert results["handshake.server_info"].outcome is Outcome.FAIL
    assert "UNAVAILABLE" in results["handshake.server_info"].reason
    assert results["session.lifecycle"].outcome is Outcome.SKIP
    assert results["session.lifecycle"].reason.startswith("no handshake: GetServerInfo failed")
    assert results["health.serving"].outcome is Outcome.FAIL
