"""Spaces received from a server: checked against space.proto and rebuilt as Gymnasium spaces.

Like :mod:`.wire`, this is the kit's own reading of the schema, not gymrpc's client
codec: every MUST of space.proto is checked, then the space is built with Gymnasium
(whose constructors catch what the schema leaves implicit, such as ``low <= high``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
from gymnasium import spaces

from gymrpc.conformance.framework import Violation
from gymrpc.conformance.wire import DTYPES, dtype_name, read_tensor
from gymrpc.v1 import space_pb2, tensor_pb2

__all__ = ["rebuild_space"]

SPACE_RULE: Final = "space.proto"
_INTEGER: Final = frozenset(code for code, dtype in DTYPES.items() if dtype.kind in "iu")


def _fail(where: str, received: str, expected: str, section: str) -> Violation:
    return Violation(where, received=received, expected=expected, rule=f"{SPACE_RULE}, {section}")


def rebuild_space(space: space_pb2.Space, where: str) -> spaces.Space[Any]:
    """Check a Space message and build the Gymnasium space it describes.

    Args:
        space: The message.
        where: Its place in the response, for failure messages.

    Returns:
        The space.

    Raises:
        Violation: For a rule of space.proto broken, or a space Gymnasium refuses.
    """
    kind = space.WhichOneof("kind")
    builders: dict[str, Callable[[Any, str], spaces.Space[Any]]] = {
        "box": _box,
        "discrete": _discrete,
        "multi_discrete": _multi_discrete,
        "multi_binary": _multi_binary,
        "dict": _dict,
        "tuple": _tuple,
        "text": _text,
        "sequence": _sequence,
        "graph": _graph,
        "one_of": _one_of,
    }
    if kind is None:
        raise _fail(where, "a Space with no kind", "exactly one kind set", "Space")
    try:
        built: spaces.Space[Any] = builders[kind](getattr(space, kind), f"{where}.{kind}")
    except Violation:
        raise
    except Exception as error:  # Gymnasium refused the parameters
        raise _fail(
            where,
            f"parameters Gymnasium refuses ({type(error).__name__}: {error})",
            "a valid space",
            kind,
        ) from error
    return built


def _box(box: space_pb2.BoxSpace, where: str) -> spaces.Space[Any]:
    dtype = DTYPES.get(box.dtype)
    if dtype is None or box.dtype == tensor_pb2.DATA_TYPE_BOOL:
        raise _fail(f"{where}.dtype", dtype_name(box.dtype), "a numeric DataType", "BoxSpace")
    shape = tuple(int(size) for size in box.shape)
    bounds = []
    for name, tensor in (("low", box.low), ("high", box.high)):
        array = read_tensor(tensor, f"{where}.{name}")
        if tensor.dtype != box.dtype or array.shape != shape:
            raise _fail(
                f"{where}.{name}",
                f"{dtype_name(tensor.dtype)} of shape {list(array.shape)}",
                f"the Box's dtype {dtype_name(box.dtype)} and shape {list(shape)}",
                "BoxSpace",
            )
        bounds.append(array.astype(dtype.newbyteorder("=")))
    return spaces.Box(low=bounds[0], high=bounds[1], shape=shape, dtype=dtype.newbyteorder("="))


def _discrete(discrete: space_pb2.DiscreteSpace, where: str) -> spaces.Space[Any]:
    if discrete.n <= 0:
        raise _fail(f"{where}.n", str(discrete.n), "n > 0", "DiscreteSpace")
    code = discrete.dtype or tensor_pb2.DATA_TYPE_INT64
    if code not in _INTEGER:
        raise _fail(f"{where}.dtype", dtype_name(code), "an integer DataType", "DiscreteSpace")
    return spaces.Discrete(
        int(discrete.n), start=int(discrete.start), dtype=DTYPES[code].newbyteorder("=").type
    )


def _multi_discrete(space: space_pb2.MultiDiscreteSpace, where: str) -> spaces.Space[Any]:
    nvec = read_tensor(space.nvec, f"{where}.nvec")
    if space.nvec.dtype not in _INTEGER or not bool(np.all(nvec > 0)):
        raise _fail(
            f"{where}.nvec",
            f"{dtype_name(space.nvec.dtype)} {nvec.tolist()}",
            "an integer tensor with every entry > 0",
            "MultiDiscreteSpace",
        )
    start = None
    if space.HasField("start"):
        start = read_tensor(space.start, f"{where}.start")
        if space.start.dtype != space.nvec.dtype or start.shape != nvec.shape:
            raise _fail(
                f"{where}.start",
                f"{dtype_name(space.start.dtype)} of shape {list(start.shape)}",
                "the dtype and shape of nvec",
                "MultiDiscreteSpace",
            )
    dtype = nvec.dtype.newbyteorder("=")
    return spaces.MultiDiscrete(
        nvec.astype(dtype), dtype=dtype.type, start=None if start is None else start.astype(dtype)
    )


def _multi_binary(space: space_pb2.MultiBinarySpace, where: str) -> spaces.Space[Any]:
    shape = [int(size) for size in space.shape]
    if not shape or any(size <= 0 for size in shape):
        raise _fail(f"{where}.shape", str(shape), "dimensions > 0", "MultiBinarySpace")
    if space.scalar_n and len(shape) != 1:
        raise _fail(
            f"{where}.scalar_n", f"true for shape {shape}", "a 1-d shape", "MultiBinarySpace"
        )
    return spaces.MultiBinary(shape[0] if space.scalar_n else shape)


def _dict(space: space_pb2.DictSpace, where: str) -> spaces.Space[Any]:
    built: dict[str, spaces.Space[Any]] = {}
    for entry in space.entries:
        if entry.key in built:
            raise _fail(where, f"key {entry.key!r} twice", "unique keys", "DictSpace")
        built[entry.key] = rebuild_space(entry.space, f"{where}.{entry.key}")
    return spaces.Dict(built)


def _tuple(space: space_pb2.TupleSpace, where: str) -> spaces.Space[Any]:
    return spaces.Tuple(
        [rebuild_space(item, f"{where}[{index}]") for index, item in enumerate(space.spaces)]
    )


def _text(space: space_pb2.TextSpace, where: str) -> spaces.Space[Any]:
    if not 0 <= space.min_length <= space.max_length:
        raise _fail(
            where,
            f"min_length {space.min_length}, max_length {space.max_length}",
            "0 <= min_length <= max_length",
            "TextSpace",
        )
    if not space.charset or len(set(space.charset)) != len(space.charset):
        raise _fail(
            f"{where}.charset",
            repr(space.charset[:40]),
            "a non-empty charset, each character once",
            "TextSpace",
        )
    return spaces.Text(
        int(space.max_length), min_length=int(space.min_length), charset=space.charset
    )


def _sequence(space: space_pb2.SequenceSpace, where: str) -> spaces.Space[Any]:
    if not space.HasField("feature_space"):
        raise _fail(where, "no feature_space", "a feature_space", "SequenceSpace")
    return spaces.Sequence(
        rebuild_space(space.feature_space, f"{where}.feature_space"), stack=space.stack
    )


def _graph(space: space_pb2.GraphSpace, where: str) -> spaces.Space[Any]:
    # Node and edge features may be of any space.
    if not space.HasField("node_space"):
        raise _fail(where, "no node_space", "a node_space", "GraphSpace")
    node = rebuild_space(space.node_space, f"{where}.node_space")
    edge = (
        rebuild_space(space.edge_space, f"{where}.edge_space")
        if space.HasField("edge_space")
        else None
    )
    return spaces.Graph(node, edge)


def _one_of(space: space_pb2.OneOfSpace, where: str) -> spaces.Space[Any]:
    if not space.spaces:
        raise _fail(where, "no sub-spaces", "at least one", "OneOfSpace")
    return spaces.OneOf(
        [rebuild_space(item, f"{where}.spaces[{index}]") for index, item in enumerate(space.spaces)]
    )
