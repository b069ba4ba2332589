"""Tests of gymrpc_server.scores (a package only so that mypy names its modules apart)."""
