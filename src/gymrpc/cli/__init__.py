"""The ``gymrpc`` console script: one sub-command group per module, thin over the library.

Each command module exposes ``register(subparsers)``, which adds its sub-command(s)
and sets ``handler`` on the parsed namespace: a function taking the namespace and
returning the exit status. Errors from the server are printed as one line
(``gymrpc: <message>``) with exit status 1, never as a traceback.

Example::

    gymrpc envs                      # the catalogue of the server at $GYMRPC_TARGET
    gymrpc envs --json --target 127.0.0.1:50051
    gymrpc leaderboard --env gymrpc/Turbofan-v0
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from gymrpc import __version__
from gymrpc.cli import envs, plot, scores
from gymrpc.errors import GymrpcError

__all__ = ["build_parser", "main"]

# Modules that register sub-commands, in the order `gymrpc --help` lists them.
_COMMAND_MODULES = (envs, scores, plot)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``gymrpc`` with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="gymrpc",
        description="Talk to a gymrpc server: its environments, pictures and scores.",
    )
    parser.add_argument("--version", action="version", version=f"gymrpc {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gymrpc`` with ``argv`` (the process's arguments by default).

    Args:
        argv: Command-line arguments without the program name.

    Returns:
        The exit status: 0 on success, 1 when the server refused or could not be
        reached, 2 for a usage error (argparse's convention).
    """
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
        sys.stdout.flush()
    except GymrpcError as error:
        print(f"gymrpc: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`gymrpc episodes --csv | head`): stop quietly, as
        # Unix tools do, and keep Python from complaining about the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, the shell's status for a command a pipe stopped
    return status
