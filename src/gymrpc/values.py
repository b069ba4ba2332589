"""Python values to and from the wire's ``Value``: observations, actions, infos, options.

The mapping keeps Python and numpy types apart (``1`` stays an ``int``, ``np.int64(1)``
a numpy scalar, a tuple a tuple), because Gymnasium compares data strictly. Arrays
travel as packed tensors; only containers are walked in Python.

Every value of every Gymnasium space travels: arrays (Box, Discrete, MultiDiscrete,
MultiBinary), dicts and tuples, strings (Text), tuples or stacks of feature values
(Sequence), ``(index, value)`` tuples (OneOf) and ``GraphInstance`` (Graph, as a
``graph_value`` whose nodes and edges are stacks of features of any space: arrays, or
dicts and tuples of stacks), also inside object arrays such as SAME_STEP's
``final_obs``. A graph is checked both ways against the rules of ``GraphValue`` (nodes
present and stacked, ``edge_links`` an integer ``(num_edges, 2)`` array of node
indices), so a malformed one is refused where it is built rather than where it is used.

>>> import numpy as np
>>> from gymrpc.values import decode_value, encode_value
>>> decode_value(encode_value({"x": np.zeros(2, np.float32), "n": 3}))
{'x': array([0., 0.], dtype=float32), 'n': 3}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from google.protobuf import struct_pb2
from gymnasium.spaces import GraphInstance

from gymrpc.errors import InvalidValueError
from gymrpc.fieldpath import join_key
from gymrpc.tensors import DEFAULT_MAX_ELEMENTS, check_shape, decode_tensor, fill_tensor
from gymrpc.v1 import value_pb2

__all__ = [
    "decode_map",
    "decode_value",
    "encode_map",
    "encode_value",
    "fill_map",
    "fill_value",
]

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_SUPPORTED = (
    "None, bool, int, float, str, bytes, a numeric numpy array or scalar, a "
    "gymnasium.spaces.GraphInstance, an object array of such values, or a list, tuple or "
    "str-keyed dict of them"
)
# Paths of info entries are built for every entry of every step: remembering those of
# the keys seen keeps it at one dict lookup. Bounded in count and in the length of what
# is remembered, so that hostile keys (options come from clients) cannot grow it.
_ENTRY_PATHS: dict[tuple[str, str], str] = {}
_ENTRY_PATH_CACHE_SIZE: Final = 4096
_ENTRY_PATH_MAX_CACHED: Final = 128

_Filler = Callable[[value_pb2.Value, Any, str], None]


def _entry_path(field: str, key: str) -> str:
    path = _ENTRY_PATHS.get((field, key))
    if path is None:
        path = join_key(field, key)
        if len(_ENTRY_PATHS) < _ENTRY_PATH_CACHE_SIZE and len(path) <= _ENTRY_PATH_MAX_CACHED:
            _ENTRY_PATHS[field, key] = path
    return path


def _fill_none(message: value_pb2.Value, obj: None, field: str) -> None:
    message.null_value = struct_pb2.NULL_VALUE


def _fill_bool(message: value_pb2.Value, obj: bool, field: str) -> None:
    message.bool_value = obj


def _fill_int(message: value_pb2.Value, obj: int, field: str) -> None:
    if _INT64_MIN <= obj <= _INT64_MAX:
        message.int_value = obj
        return
    # Gymnasium's entropy seeds are 128-bit: larger ints travel as decimal digits.
    message.big_int_value = str(obj)


def _fill_float(message: value_pb2.Value, obj: float, field: str) -> None:
    message.float_value = obj


def _fill_str(message: value_pb2.Value, obj: str, field: str) -> None:
    try:
        message.string_value = obj
    except UnicodeEncodeError as error:
        # Python strings may hold lone surrogates, which UTF-8 (and so protobuf) cannot.
        raise InvalidValueError(
            f"{field}: the str {_clipped(obj)} is not valid Unicode ({error.reason} at "
            f"position {error.start}); expected a string UTF-8 can encode",
            field=field,
        ) from error


def _fill_bytes(message: value_pb2.Value, obj: bytes, field: str) -> None:
    message.bytes_value = obj


def _fill_list(message: value_pb2.Value, obj: list[Any], field: str) -> None:
    items = message.list_value.items
    for index, item in enumerate(obj):
        fill_value(items.add(), item, field=f"{field}[{index}]")
    if not obj:
        message.list_value.SetInParent()


def _fill_tuple(message: value_pb2.Value, obj: tuple[Any, ...], field: str) -> None:
    items = message.tuple_value.items
    for index, item in enumerate(obj):
        fill_value(items.add(), item, field=f"{field}[{index}]")
    if not obj:
        message.tuple_value.SetInParent()


def _fill_dict(message: value_pb2.Value, obj: Mapping[Any, Any], field: str) -> None:
    fill_map(message.dict_value, obj, field=field)
    if not obj:
        message.dict_value.SetInParent()


# A graph's features are a stack (GraphSpace in space.proto): an array whose first
# dimension counts the nodes or edges, or a dict or tuple of stacks.
_Features = npt.NDArray[Any] | dict[str, Any] | tuple[Any, ...]
_FEATURE_KINDS: Final = frozenset({"array_value", "dict_value", "tuple_value"})


def _fill_graph(message: value_pb2.Value, obj: GraphInstance, field: str) -> None:
    nodes = _graph_features(obj.nodes, f"{field}.nodes")
    edges = _graph_features(obj.edges, f"{field}.edges")
    links = obj.edge_links
    edge_links = None if links is None else _graph_array(links, f"{field}.edge_links")
    if nodes is None:
        raise InvalidValueError(
            f"{field}.nodes: None; a GraphInstance sent as a value needs node features",
            field=f"{field}.nodes",
        )
    _check_graph(nodes, edges, edge_links, field=field)
    graph = message.graph_value
    _fill_features(graph.nodes, nodes, f"{field}.nodes")
    if edges is not None:
        _fill_features(graph.edges, edges, f"{field}.edges")
    if edge_links is not None:
        fill_tensor(graph.edge_links, edge_links, field=f"{field}.edge_links")


def _graph_features(obj: Any, field: str) -> _Features | None:
    """A graph's node or edge features as they travel: an array, a dict or a tuple."""
    if obj is None or type(obj) is np.ndarray or type(obj) is tuple or type(obj) is dict:
        return obj
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, tuple) and not isinstance(obj, GraphInstance):
        return tuple(obj)
    # Lists and other array-likes of numbers, as Box features often come.
    return _graph_array(obj, field)


def _graph_array(obj: Any, field: str) -> npt.NDArray[Any]:
    if type(obj) is np.ndarray:
        return obj
    try:
        return np.asarray(obj)
    except (TypeError, ValueError) as error:  # ragged lists, mostly
        raise InvalidValueError(
            f"{field}: a {type(obj).__name__} that is not an array ({error}); expected "
            "an array of numbers",
            field=field,
        ) from error


def _fill_features(message: value_pb2.Value, features: _Features, field: str) -> None:
    if isinstance(features, np.ndarray):
        # An object array would become an object_array_value, which is no stack.
        fill_tensor(message.array_value, features, field=field)
    else:
        fill_value(message, features, field=field)


def _check_graph(
    nodes: _Features,
    edges: _Features | None,
    edge_links: npt.NDArray[Any] | None,
    *,
    field: str = "value",
) -> None:
    """Check a graph against the rules of ``GraphValue`` (value.proto).

    Features stacked in an array have a first dimension (the node or edge count), and
    ``edge_links``, when present, is an integer array of shape ``(num_edges, 2)`` of
    node indices; where the features are arrays their first dimension bounds the
    indices and must count the links. Dict and tuple stacks have the length the space
    gives them: whether the features lie in a Graph space is the space's business
    (:func:`gymrpc.spaces.find_violation`), not the codec's.

    Args:
        nodes: Node features.
        edges: Edge features, or None.
        edge_links: The node pairs each edge connects, or None.
        field: Path of the graph, for error messages.

    Raises:
        InvalidValueError: Naming the first rule broken.
    """
    if isinstance(nodes, np.ndarray) and nodes.ndim == 0:
        raise InvalidValueError(
            f"{field}.nodes: a 0-d array; expected shape (num_nodes, *node_shape)",
            field=f"{field}.nodes",
        )
    if isinstance(edges, np.ndarray) and edges.ndim == 0:
        raise InvalidValueError(
            f"{field}.edges: a 0-d array; expected shape (num_edges, *edge_shape)",
            field=f"{field}.edges",
        )
    if edge_links is None:
        return
    links = f"{field}.edge_links"
    if edge_links.dtype.kind not in "iu":
        raise InvalidValueError(
            f"{links}: dtype {edge_links.dtype}; expected an integer dtype", field=links
        )
    num_edges = edge_links.shape[0] if edge_links.ndim else -1
    if edge_links.ndim != 2 or edge_links.shape[1] != 2:
        raise InvalidValueError(
            f"{links}: shape {edge_links.shape}; expected (num_edges, 2)", field=links
        )
    if isinstance(edges, np.ndarray) and edges.shape[0] != num_edges:
        raise InvalidValueError(
            f"{links}: {num_edges} links for {edges.shape[0]} edges; expected one per edge",
            field=links,
        )
    if not num_edges:
        return
    if isinstance(nodes, np.ndarray):
        num_nodes = nodes.shape[0]
        outside = (edge_links < 0) | (edge_links >= num_nodes)
        expected = f"0 <= index < {num_nodes} (the number of nodes)"
    else:
        outside = edge_links < 0
        expected = "an index >= 0"
    if outside.any():
        bad = int(np.argmax(outside))
        raise InvalidValueError(
            f"{links}: entry {divmod(bad, 2)} is {int(edge_links.flat[bad])}, not a node "
            f"index; expected {expected}",
            field=links,
        )


def _clipped(text: str, limit: int = 40) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def _fill_ndarray(message: value_pb2.Value, obj: np.ndarray[Any, Any], field: str) -> None:
    if obj.dtype.kind != "O":
        fill_tensor(message.array_value, obj, field=field)
        return
    target = message.object_array_value
    target.shape[:] = obj.shape
    items = target.items
    # Object arrays hold arbitrary Python objects, so there is no way around a loop;
    # they only appear for rare info keys (final_obs, final_info, strings).
    for index, item in enumerate(obj.flat):
        fill_value(items.add(), item, field=f"{field}[{index}]")
    if obj.size == 0:
        target.SetInParent()


# Exact types first (a dict lookup on the hot path); subclasses fall back to isinstance.
_FILLERS: Final[dict[type, _Filler]] = {
    type(None): _fill_none,
    bool: _fill_bool,
    int: _fill_int,
    float: _fill_float,
    str: _fill_str,
    bytes: _fill_bytes,
    list: _fill_list,
    tuple: _fill_tuple,
    dict: _fill_dict,
    np.ndarray: _fill_ndarray,
    GraphInstance: _fill_graph,
}


def fill_value(message: value_pb2.Value, obj: Any, *, field: str = "value") -> None:
    """Write a Python value into an existing ``Value`` message.

    Args:
        message: The (empty) message to fill.
        obj: The value; see the module docstring for what is supported.
        field: Path of the value in the request or response, for error messages.

    Raises:
        InvalidValueError: If ``obj`` (or something inside it) cannot be carried.
    """
    if type(obj) is np.ndarray and obj.dtype.kind != "O":
        fill_tensor(message.array_value, obj, field=field)
        return
    filler = _FILLERS.get(type(obj))
    if filler is not None:
        filler(message, obj, field)
    elif isinstance(obj, np.generic):
        if obj.dtype.kind == "O":
            raise InvalidValueError(f"{field}: numpy object scalars cannot be sent", field=field)
        fill_tensor(message.scalar_value, obj, field=field)
    elif isinstance(obj, np.ndarray):
        _fill_ndarray(message, obj, field)
    elif isinstance(obj, bool | int | float | str | bytes) and not isinstance(obj, np.generic):
        # Subclasses such as IntEnum or str-Enum travel as their base value.
        base: type = next(t for t in (bool, int, float, str, bytes) if isinstance(obj, t))
        _FILLERS[base](message, base(obj), field)
    elif isinstance(obj, Mapping):
        _fill_dict(message, obj, field)
    elif isinstance(obj, GraphInstance):
        # Before tuple: a GraphInstance is a NamedTuple, and must not become a tuple.
        _fill_graph(message, obj, field)
    elif isinstance(obj, tuple):
        _fill_tuple(message, obj, field)
    elif isinstance(obj, list):
        _fill_list(message, obj, field)
    else:
        raise InvalidValueError(
            f"{field}: a value of type {type(obj).__module__}.{type(obj).__qualname__} "
            f"cannot be sent; expected {_SUPPORTED}",
            field=field,
        )


def encode_value(obj: Any, *, field: str = "value") -> value_pb2.Value:
    """Encode a Python value as a ``Value``.

    Args:
        obj: The value.
        field: Path of the value, for error messages.

    Returns:
        A new ``Value`` message.

    Raises:
        InvalidValueError: If ``obj`` cannot be carried.
    """
    message = value_pb2.Value()
    fill_value(message, obj, field=field)
    return message


def fill_map(message: value_pb2.ValueMap, obj: Mapping[Any, Any], *, field: str = "map") -> None:
    """Write a str-keyed mapping into an existing ``ValueMap``, keeping key order.

    Args:
        message: The (empty) message to fill.
        obj: The mapping.
        field: Path of the mapping, for error messages.

    Raises:
        InvalidValueError: If a key is not a ``str`` or a value cannot be carried.
    """
    entries = message.entries
    for key, item in obj.items():
        if type(key) is not str:
            raise InvalidValueError(
                f"{field}: key {key!r} is a {type(key).__name__}; expected str keys",
                field=field,
            )
        try:
            entry = entries.add(key=key)
        except UnicodeEncodeError as error:
            raise InvalidValueError(
                f"{field}: key {_clipped(key)} is not valid Unicode ({error.reason}); "
                "expected keys UTF-8 can encode",
                field=field,
            ) from error
        # Numeric arrays are nearly every entry of a vector info: skip the dispatch.
        if type(item) is np.ndarray and item.dtype.kind != "O":
            fill_tensor(entry.value.array_value, item, field=_entry_path(field, key))
        else:
            fill_value(entry.value, item, field=_entry_path(field, key))


def encode_map(obj: Mapping[Any, Any], *, field: str = "map") -> value_pb2.ValueMap:
    """Encode a str-keyed mapping as a ``ValueMap``.

    Args:
        obj: The mapping.
        field: Path of the mapping, for error messages.

    Returns:
        A new ``ValueMap`` message.
    """
    message = value_pb2.ValueMap()
    fill_map(message, obj, field=field)
    return message


def decode_value(
    message: value_pb2.Value,
    *,
    field: str = "value",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Any:
    """Decode a ``Value`` into the Python value it carries.

    Args:
        message: The received value.
        field: Path of the value, for error messages.
        max_elements: Largest element count of any tensor or object array inside.

    Returns:
        The Python value; arrays are fresh writable copies.

    Raises:
        InvalidValueError: If no kind is set, a map repeats a key or an object array
            has the wrong number of items.
        InvalidTensorError: If a tensor inside is malformed.
        TensorTooLargeError: If a shape exceeds ``max_elements``.
    """
    kind = message.WhichOneof("kind")
    if kind == "array_value":
        return decode_tensor(message.array_value, field=field, max_elements=max_elements)
    if kind is None:
        raise InvalidValueError(
            f"{field}: no kind is set in the Value; expected exactly one", field=field
        )
    return _DECODERS[kind](message, field, max_elements)


#: Longest big_int_value accepted: far beyond any seed, and parsed in negligible time.
_MAX_BIG_INT_DIGITS: Final = 1000


def _decode_big_int(text: str, field: str) -> int:
    digits = text.removeprefix("-")
    if not digits.isdigit() or not digits.isascii() or len(digits) > _MAX_BIG_INT_DIGITS:
        raise InvalidValueError(
            f"{field}: big_int_value {text[:40]!r} is not an integer; expected at most "
            f"{_MAX_BIG_INT_DIGITS} decimal digits with an optional leading '-'",
            field=field,
        )
    return int(text)


def _decode_scalar(message: value_pb2.Value, field: str, max_elements: int) -> Any:
    tensor = message.scalar_value
    if tensor.shape:
        raise InvalidValueError(
            f"{field}: a scalar_value has shape {list(tensor.shape)}; expected an empty shape",
            field=f"{field}.shape",
        )
    array = decode_tensor(tensor, field=field, max_elements=max_elements, copy=False)
    return array[()]


def _decode_items(message: value_pb2.ValueList, field: str, max_elements: int) -> list[Any]:
    return [
        decode_value(item, field=f"{field}[{index}]", max_elements=max_elements)
        for index, item in enumerate(message.items)
    ]


def _decode_object_array(
    message: value_pb2.ObjectArray, field: str, max_elements: int
) -> np.ndarray[Any, Any]:
    shape = tuple(message.shape)
    size = check_shape(shape, field=f"{field}.shape", max_elements=max_elements)
    if size != len(message.items):
        raise InvalidValueError(
            f"{field}: object array of shape {list(shape)} has {len(message.items)} items; "
            f"expected {size}",
            field=f"{field}.items",
        )
    flat = np.empty(size, dtype=object)
    for index, item in enumerate(message.items):
        # Element assignment stores the object itself, even a tuple or an array.
        flat[index] = decode_value(item, field=f"{field}[{index}]", max_elements=max_elements)
    return flat.reshape(shape)


def _decode_graph(message: value_pb2.Value, field: str, max_elements: int) -> GraphInstance:
    graph = message.graph_value
    if not graph.HasField("nodes"):
        raise InvalidValueError(
            f"{field}.nodes: missing; a graph_value must carry its node features",
            field=f"{field}.nodes",
        )
    nodes = _decode_features(graph.nodes, f"{field}.nodes", max_elements)
    edges = edge_links = None
    if graph.HasField("edges"):
        edges = _decode_features(graph.edges, f"{field}.edges", max_elements)
    if graph.HasField("edge_links"):
        edge_links = decode_tensor(
            graph.edge_links, field=f"{field}.edge_links", max_elements=max_elements
        )
    _check_graph(nodes, edges, edge_links, field=field)
    return GraphInstance(nodes, edges, edge_links)


def _decode_features(message: value_pb2.Value, field: str, max_elements: int) -> _Features:
    kind = message.WhichOneof("kind")
    if kind not in _FEATURE_KINDS:
        got = f"a {kind}" if kind is not None else "a Value with no kind set"
        raise InvalidValueError(
            f"{field}: {got}; expected the stacked features of a graph: an array_value, "
            "dict_value or tuple_value",
            field=field,
        )
    features: _Features = decode_value(message, field=field, max_elements=max_elements)
    return features


_Decoder = Callable[[value_pb2.Value, str, int], Any]
_DECODERS: Final[dict[str, _Decoder]] = {
    "array_value": lambda m, f, n: decode_tensor(m.array_value, field=f, max_elements=n),
    "dict_value": lambda m, f, n: decode_map(m.dict_value, field=f, max_elements=n),
    "int_value": lambda m, f, n: m.int_value,
    "big_int_value": lambda m, f, n: _decode_big_int(m.big_int_value, f),
    "float_value": lambda m, f, n: m.float_value,
    "bool_value": lambda m, f, n: m.bool_value,
    "null_value": lambda m, f, n: None,
    "string_value": lambda m, f, n: m.string_value,
    "bytes_value": lambda m, f, n: m.bytes_value,
    "scalar_value": _decode_scalar,
    "tuple_value": lambda m, f, n: tuple(_decode_items(m.tuple_value, f, n)),
    "list_value": lambda m, f, n: _decode_items(m.list_value, f, n),
    "object_array_value": lambda m, f, n: _decode_object_array(m.object_array_value, f, n),
    "graph_value": _decode_graph,
}


def decode_map(
    message: value_pb2.ValueMap,
    *,
    field: str = "map",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> dict[str, Any]:
    """Decode a ``ValueMap`` into a dict, in the sender's key order.

    Args:
        message: The received map.
        field: Path of the map, for error messages.
        max_elements: Largest element count of any tensor inside.

    Returns:
        The dict.

    Raises:
        InvalidValueError: If a key repeats, or a value is malformed.
    """
    result = {}
    for entry in message.entries:
        value = entry.value
        if value.WhichOneof("kind") == "array_value":
            # The common case in vector infos; skip the dispatch.
            result[entry.key] = decode_tensor(
                value.array_value, field=_entry_path(field, entry.key), max_elements=max_elements
            )
        else:
            result[entry.key] = decode_value(
                value, field=_entry_path(field, entry.key), max_elements=max_elements
            )
    if len(result) != len(message.entries):
        seen: set[str] = set()
        for duplicate in (entry.key for entry in message.entries):
            if duplicate in seen:
                break
            seen.add(duplicate)
        path = _entry_path(field, duplicate)
        raise InvalidValueError(
            f"{path}: the key {duplicate!r} appears more than once in {field}; expected "
            "unique keys",
            field=path,
        )
    return result
