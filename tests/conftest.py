"""Suite-wide test configuration."""

from __future__ import annotations

from hypothesis import settings

# CI machines are small and shared: a per-example deadline would turn load into
# flaky failures, and per-test timeouts (pytest-timeout) already catch hangs.
settings.register_profile("gymrpc", deadline=None, print_blob=True)
settings.load_profile("gymrpc")
