"""gymrpc: reinforcement-learning environments served over gRPC.

The package holds what training code and other clients import: the codecs between
numpy/Gymnasium and the wire (:mod:`gymrpc.tensors`, :mod:`gymrpc.values`,
:mod:`gymrpc.spaces`), the error types (:mod:`gymrpc.errors`) and the generated
protocol (:mod:`gymrpc.v1`).
"""

from gymrpc.protocol import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION", "__version__"]

__version__ = "0.1.0"
