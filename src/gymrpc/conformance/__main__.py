"""``python -m gymrpc.conformance --target host:port``: check a gymrpc.v1 server.

Prints one line per check (``PASS``, ``FAIL`` or ``SKIP``, the check's id, and on
failure the rule and what was received versus expected), then a summary. Exits 1 if a
check failed, 2 for a usage error, 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gymrpc.conformance import CHECKS, CheckResult, Outcome, Target, run_checks

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gymrpc.conformance",
        description="Check that a server follows the gymrpc.v1 schema (docs/conformance.md).",
    )
    parser.add_argument(
        "--target",
        default=os.environ.get("GYMRPC_TARGET"),
        help="host:port of the server (default: $GYMRPC_TARGET)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("GYMRPC_TOKEN"),
        help="bearer token of an ordinary user (default: $GYMRPC_TOKEN); an admin's token "
        "skips the PERMISSION_DENIED check",
    )
    parser.add_argument(
        "--tls-ca",
        type=Path,
        default=os.environ.get("GYMRPC_TLS_CA") or None,
        help="PEM file of the CA to trust; enables TLS (default: $GYMRPC_TLS_CA)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per call and per stream response"
    )
    parser.add_argument(
        "--env-id",
        default="gymrpc/Conformance-v0",
        help="id under which the server serves the conformance environment",
    )
    parser.add_argument(
        "--check",
        action="append",
        dest="checks",
        metavar="ID",
        help="run only this check, or the checks of an area with a trailing dot "
        "('stream.'); repeatable",
    )
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns:
        The exit status.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        for item in CHECKS:
            print(f"{item.id}: {item.title} [{item.rule}]")
        return 0
    if not args.target:
        parser.error("--target host:port is required (or set GYMRPC_TARGET)")
    if args.timeout <= 0:
        parser.error(f"--timeout {args.timeout}: expected a positive number of seconds")
    try:
        ca = args.tls_ca.read_bytes() if args.tls_ca else None
    except OSError as error:
        parser.error(f"--tls-ca {args.tls_ca}: {error.strerror or error}")
    target = Target(
        args.target, token=args.token, tls_ca=ca, timeout=args.timeout, env_id=args.env_id
    )
    started = time.monotonic()

    def show(result: CheckResult) -> None:
        print(result.line(), flush=True)

    try:
        results = run_checks(target, checks=args.checks, on_result=show)
    except ValueError as error:
        parser.error(str(error))
    counts = {outcome: sum(r.outcome is outcome for r in results) for outcome in Outcome}
    print(
        f"{counts[Outcome.PASS]} passed, {counts[Outcome.FAIL]} failed, "
        f"{counts[Outcome.SKIP]} skipped in {time.monotonic() - started:.1f} s "
        f"against {args.target}"
    )
    return 1 if counts[Outcome.FAIL] else 0


if __name__ == "__main__":
    sys.exit(main())
