"""gymrpc.allocator: raised on glibc once per process, and off when asked."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = (
    "from gymrpc.allocator import tune_allocator\n"
    "first = tune_allocator()\n"
    "print(first, tune_allocator() is first)\n"
)


def probe(**environ: str) -> str:
    """Run tune_allocator twice in a fresh process; return what it printed."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **environ},
        timeout=60,
    )
    return result.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_thresholds_are_raised_once_on_glibc() -> None:
    assert probe(GYMRPC_TUNE_MALLOC="1") == "True True"


def test_the_tuning_can_be_turned_off() -> None:
    assert probe(GYMRPC_TUNE_MALLOC="0") == "False True"
