"""Microbenchmark of the tensor codec on a turbofan-sized batch.

Measures encode (numpy -> Tensor -> bytes on the wire) and decode (bytes -> Tensor ->
numpy) of a (1024, 10, 9) float32 batch, the observation of 1024 turbofan engines
with step_size 10. Run with ``.venv/bin/python benchmarks/bench_codecs.py``.
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable

import numpy as np

from gymrpc.tensors import decode_tensor, encode_tensor
from gymrpc.v1 import tensor_pb2


def measure(func: Callable[[], object], repeat: int, number: int) -> float:
    """Return the median time of one call of ``func`` in microseconds."""
    runs = timeit.repeat(func, repeat=repeat, number=number)
    return statistics.median(runs) / number * 1e6


def main() -> None:
    """Print a markdown table of codec costs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="1024,10,9", help="comma-separated batch shape")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=500)
    args = parser.parse_args()
    shape = tuple(int(part) for part in args.shape.split(","))
    batch = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    message = encode_tensor(batch)
    wire = message.SerializeToString()
    rows = [
        ("encode_tensor (numpy -> Tensor)", lambda: encode_tensor(batch)),
        ("encode + SerializeToString", lambda: encode_tensor(batch).SerializeToString()),
        ("decode_tensor, copy (Tensor -> numpy)", lambda: decode_tensor(message)),
        ("decode_tensor, view (copy=False)", lambda: decode_tensor(message, copy=False)),
        ("FromString + decode_tensor", lambda: decode_tensor(tensor_pb2.Tensor.FromString(wire))),
        ("reference: batch.tobytes()", batch.tobytes),
    ]
    print(f"float32 batch {shape}, {batch.nbytes / 1024:.0f} KiB\n")
    print("| operation | µs |\n|---|---:|")
    for name, func in rows:
        print(f"| {name} | {measure(func, args.repeat, args.number):.1f} |")


if __name__ == "__main__":
    main()
