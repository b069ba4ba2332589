"""Command-line options shared by the commands that talk to a server."""

from __future__ import annotations

import argparse

__all__ = ["add_connection_options"]


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--target``, ``--token``, ``--tls-ca`` and ``--timeout`` to a sub-command.

    Unset options fall back to ``GYMRPC_TARGET``, ``GYMRPC_TOKEN`` and
    ``GYMRPC_TLS_CA`` (resolved by :class:`gymrpc.connection.ConnectionSettings`).
    """
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--target", default=None, help="server host:port [GYMRPC_TARGET, then 127.0.0.1:50051]"
    )
    group.add_argument("--token", default=None, help="bearer token [GYMRPC_TOKEN]")
    group.add_argument(
        "--tls-ca", default=None, metavar="PEM", help="CA file; enables TLS [GYMRPC_TLS_CA]"
    )
    group.add_argument(
        "--timeout", type=float, default=30.0, help="deadline of each call in seconds"
    )
