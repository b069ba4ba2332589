"""Suite-wide test configuration and fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gymrpc_testing import TOKENS_TOML, Running, Serve, start_server, stop_server
from hypothesis import settings

# The conformance kit's fixtures (serve_target, real_target, baseline), from tests/support.
pytest_plugins = ("conformance_fixtures",)

# CI machines are small and shared: a per-example deadline would turn load into
# flaky failures, and per-test timeouts (pytest-timeout) already catch hangs.
settings.register_profile("gymrpc", deadline=None, print_blob=True)
settings.load_profile("gymrpc")


@pytest.fixture(scope="session", autouse=True)
def _private_data_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Servers that keep scores in the default place write into a temporary directory.

    The default scores database lives in the user's data directory (platformdirs, which
    follows XDG_DATA_HOME on Linux); no test may write into the real one. Subprocess
    servers inherit the variable.
    """
    previous = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    yield
    if previous is None:
        del os.environ["XDG_DATA_HOME"]
    else:
        os.environ["XDG_DATA_HOME"] = previous


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
