"""Suite-wide test configuration and fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gymrpc_testing import TOKENS_TOML, Running, Serve, start_server, stop_server
from hypothesis import settings

# CI machines are small and shared: a per-example deadline would turn load into
# flaky failures, and per-test timeouts (pytest-timeout) already catch hangs.
settings.register_profile("gymrpc", deadline=None, print_blob=True)
settings.load_profile("gymrpc")


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start servers with the given ServerConfig overrides; stop them afterwards."""
    running: list[Running] = []

    def start(**overrides: Any) -> Running:
        running.append(start_server(**overrides))
        return running[-1]

    yield start
    for item in running:
        stop_server(item)


@pytest.fixture
def running(serve: Serve) -> Running:
    """A default open server."""
    return serve()


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    """A tokens file with users alice and bob and the admin carol."""
    path = tmp_path / "tokens.toml"
    path.write_text(TOKENS_TOML)
    return path
