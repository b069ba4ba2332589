"""Serializing a large step result, with glibc's default malloc thresholds and raised.

A 1024-engine turbofan step is a 410 KB message. With glibc's defaults every such
buffer is a fresh ``mmap`` whose pages fault on first touch; gymrpc raises the
thresholds (``gymrpc.allocator``). Each setting runs in its own process, as the
thresholds are process-wide. Run with ``.venv/bin/python benchmarks/bench_allocator.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import timeit

from gymrpc.allocator import tune_allocator
from gymrpc.v1 import env_service_pb2 as pb


def measure(size: int) -> float:
    """Median µs to serialize a StepResponse carrying ``size`` bytes of observations."""
    response = pb.StepResponse()
    response.observations.array_value.data = bytes(size)
    runs = timeit.repeat(response.SerializeToString, repeat=7, number=50)
    return statistics.median(runs) / 50 * 1e6


def main() -> None:
    """Print a markdown table: payload size against serialization time, both settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["default", "tuned"], help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="65536,262144,409600,1048576,4194304")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.child:
        if args.child == "tuned" and not tune_allocator():
            sys.exit("the allocator could not be tuned here (not glibc?)")
        print(" ".join(f"{measure(size):.1f}" for size in sizes))
        return
    environ = {**os.environ, "GYMRPC_TUNE_MALLOC": "1"}
    columns = {}
    for setting in ("default", "tuned"):
        command = [sys.executable, __file__, "--child", setting, "--sizes", args.sizes]
        output = subprocess.run(command, check=True, capture_output=True, text=True, env=environ)
        columns[setting] = output.stdout.split()
    print("| payload | glibc defaults µs | tuned µs |\n|---:|---:|---:|")
    for index, size in enumerate(sizes):
        default, tuned = columns["default"][index], columns["tuned"][index]
        print(f"| {size / 1024:,.0f} KiB | {default} | {tuned} |")


if __name__ == "__main__":
    main()
