"""The kit against servers with bearer tokens and TLS: UNAUTHENTICATED, PERMISSION_DENIED."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from gymrpc.conformance import Outcome, Target, run_checks
from gymrpc.conformance.framework import CheckResult

_AUTH_CHECKS = [
    "handshake.server_info",
    "session.lifecycle",
    "errors.unauthenticated",
    "errors.permission_denied",
    "stream.order",
    "health.serving",
]


USER_TOKEN = "conformance-user-token-0123456789"
ADMIN_TOKEN = "conformance-admin-token-0123456789"
TOKENS_TOML = f"""
[[tokens]]
user = "dana"
role = "user"
token = "{USER_TOKEN}"

[[tokens]]
user = "erin"
role = "admin"
token = "{ADMIN_TOKEN}"
"""


@pytest.fixture
def tokens() -> dict[str, str]:
    """The bearer tokens of ``tokens_file``, by role."""
    return {"user": USER_TOKEN, "admin": ADMIN_TOKEN}


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    """A tokens file with the user dana and the admin erin (overrides tests/conftest.py's)."""
    path = tmp_path / "tokens.toml"
    path.write_text(TOKENS_TOML)
    return path


def _by_id(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {result.check_id: result for result in results}


def test_a_user_token_runs_the_authentication_checks(
    serve_target: Callable[..., Target], tokens_file: Path, tokens: dict[str, str]
) -> None:
    target = serve_target(token=tokens["user"], tokens_file=tokens_file)
    results = _by_id(run_checks(target, checks=_AUTH_CHECKS))
    assert {r.outcome for r in results.values()} == {Outcome.PASS}, [
        r.line() for r in results.values()
    ]


def test_an_admin_token_cannot_provoke_permission_denied(
    serve_target: Callable[..., Target], tokens_file: Path, tokens: dict[str, str]
) -> None:
    target = serve_target(token=tokens["admin"], tokens_file=tokens_file)
    results = _by_id(run_checks(target, checks=_AUTH_CHECKS))
    denied = results.pop("errors.permission_denied")
    assert denied.outcome is Outcome.SKIP
    assert "the caller is an admin" in denied.reason
    assert {r.outcome for r in results.values()} == {Outcome.PASS}


def test_no_token_fails_the_handshake_and_still_checks_authentication(
    serve_target: Callable[..., Target], tokens_file: Path
) -> None:
    target = serve_target(tokens_file=tokens_file)
    results = _by_id(run_checks(target, checks=_AUTH_CHECKS))
    handshake = results["handshake.server_info"]
    assert handshake.outcome is Outcome.FAIL
    assert "UNAUTHENTICATED" in handshake.reason
    assert "pass --token" in handshake.reason
    assert results["session.lifecycle"].outcome is Outcome.SKIP
    assert results["errors.unauthenticated"].outcome is Outcome.PASS
    assert results["health.serving"].outcome is Outcome.PASS


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes]:
    """A CA's certificate, and a server certificate and key it issued for localhost."""
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    issued = ca.issue_cert("localhost", "127.0.0.1")
    cert, key = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key, ca.cert_pem.bytes()


def test_tls_with_the_servers_ca(
    serve_target: Callable[..., Target],
    tokens_file: Path,
    tokens: dict[str, str],
    certificates: tuple[Path, Path, bytes],
) -> None:
    cert, key, ca = certificates
    target = serve_target(
        token=tokens["user"],
        tls_ca=ca,
        host="localhost",
        tokens_file=tokens_file,
        tls_cert=cert,
        tls_key=key,
    )
    results = _by_id(run_checks(target, checks=_AUTH_CHECKS))
    assert {r.outcome for r in results.values()} == {Outcome.PASS}, [
        r.line() for r in results.values()
    ]
    other_ca = trustme.CA().cert_pem.bytes()
    untrusted = run_checks(
        Target(target.address, token=target.token, tls_ca=other_ca, timeout=2),
        checks=["handshake.server_info"],
    )
    assert untrusted[0].outcome is Outcome.FAIL
    assert "UNAVAILABLE" in untrusted[0].reason
