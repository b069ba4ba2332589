"""The floor: a bare gRPC service that answers raw bytes with raw bytes.

No protobuf, no environment, no gymrpc: one request message in, one response of a
chosen size out, over a unary call or a bidirectional stream, with the same grpcio
server and client machinery gymrpc uses. Nothing built on grpcio in Python can do a
round trip faster. Run as a script, it serves on 127.0.0.1 and prints its port.
"""

from __future__ import annotations

import argparse
import struct
import sys
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc

SERVICE = "gymrpc.bench.Echo"
_OPTIONS = [("grpc.max_receive_message_length", 1 << 28), ("grpc.max_send_message_length", 1 << 28)]
_REPLIES: dict[int, bytes] = {}


def _reply(request: bytes) -> bytes:
    # The first 4 bytes of a request say how large the reply must be.
    (size,) = struct.unpack_from("<I", request)
    reply = _REPLIES.get(size)
    if reply is None:
        reply = _REPLIES.setdefault(size, b"r" * size)
    return reply


def _unary(request: bytes, context: Any) -> bytes:
    return _reply(request)


def _stream(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
    for request in requests:
        yield _reply(request)


def serve(port: int) -> grpc.Server:
    """Start the echo server on 127.0.0.1:port and print the bound port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=_OPTIONS)
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(_unary),
            "Stream": grpc.stream_stream_rpc_method_handler(_stream),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(bound, flush=True)
    return server


def request_bytes(request_size: int, reply_size: int) -> bytes:
    """A request of ``request_size`` bytes asking for a reply of ``reply_size`` bytes."""
    return struct.pack("<I", reply_size) + b"q" * max(0, request_size - 4)


class EchoClient:
    """Unary and streamed round trips of raw bytes."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target, options=_OPTIONS)
        self.unary: Any = self.channel.unary_unary(f"/{SERVICE}/Unary")
        self._stream: Any = self.channel.stream_stream(f"/{SERVICE}/Stream")

    def open_stream(self) -> tuple[Any, Iterator[bytes]]:
        """Open a stream; returns (queue to put requests in, iterator of replies)."""
        import queue

        requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

        def generate() -> Iterator[bytes]:
            while (request := requests.get()) is not None:
                yield request

        return requests, self._stream(generate())

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    serve(parser.parse_args().port).wait_for_termination()
    sys.exit(0)
