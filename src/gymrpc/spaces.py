"""Gymnasium spaces to and from the wire's ``Space``, exactly.

Every space of Gymnasium 1.x comes back equal (``==``) to what was sent, nested to any
depth: Box (dtype, shape and per-element bounds), Discrete (n, start, dtype),
MultiDiscrete (nvec, start, dtype), MultiBinary (``n`` as an int or a shape), Dict (key
order kept, and ``sort_keys=False`` when the keys are not sorted, so that
``batch_space`` orders the batched Dict as the original's), Tuple, Text (lengths and
character set, in the space's character order so that sampling matches too), Sequence
(stacked or not), Graph (any node and edge spaces, with or without an edge space) and
OneOf. Custom ``Space`` subclasses are refused with
:class:`~gymrpc.errors.UnsupportedSpaceError`.

With ``generators=True`` each space of the tree also carries the state of its random
generator, when it has one (``Space.generator``, what a session's spaces carry): the
decoded space then samples what the original samples, and ``batch_space`` of it (which
copies the generators) what ``batch_space`` of the original does.

:func:`find_violation` says why a value is not in a space (``contains`` with a reason,
safe on hostile input): the server checks actions of Text, Sequence, Graph and OneOf
spaces with it.

>>> from gymnasium import spaces
>>> from gymrpc.spaces import decode_space, encode_space
>>> space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,)), "id": spaces.Discrete(4, start=1)})
>>> decode_space(encode_space(space)) == space
True
>>> graph = spaces.Graph(spaces.Dict({"kind": spaces.Discrete(3)}), spaces.MultiBinary(2))
>>> decode_space(encode_space(spaces.Sequence(graph, stack=True))).feature_space == graph
True
>>> seeded = spaces.Discrete(6, seed=1)
>>> copy = decode_space(encode_space(seeded, generators=True))
>>> [int(copy.sample()) for _ in range(3)] == [int(seeded.sample()) for _ in range(3)]
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from gymrpc.errors import GymrpcError, InvalidValueError, UnsupportedSpaceError
from gymrpc.fieldpath import join_key
from gymrpc.tensors import check_shape, data_type_of, decode_tensor, dtype_of, fill_tensor
from gymrpc.v1 import space_pb2, tensor_pb2
from gymrpc.values import decode_value, fill_value

__all__ = ["decode_space", "encode_space", "find_violation"]

_SUPPORTED: Final = (
    "Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple, Text, Sequence, Graph or OneOf"
)
#: The bit generators of ``numpy.random`` a GeneratorState may name (space.proto).
_BIT_GENERATORS: Final[dict[str, type[np.random.BitGenerator]]] = {
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "MT19937": np.random.MT19937,
    "Philox": np.random.Philox,
    "SFC64": np.random.SFC64,
}


def encode_space(
    space: spaces.Space[Any], *, field: str = "space", generators: bool = False
) -> space_pb2.Space:
    """Encode a Gymnasium space.

    Args:
        space: The space; Dict, Tuple, Sequence, Graph and OneOf may nest any supported
            space.
        field: Path of the space, for error messages. Sub-spaces are named as their
            values are (``.key`` for a Dict entry, ``[i]`` for a Tuple or OneOf item)
            and by attribute otherwise (``.feature_space``, ``.node_space``).
        generators: Also send the state of the random generator of every space of the
            tree that has one (``Space.generator``); spaces without one (never seeded
            nor sampled) are not seeded for it. A generator numpy cannot describe (a
            custom bit generator) is left out.

    Returns:
        A new ``Space`` message.

    Raises:
        UnsupportedSpaceError: If the space (or a sub-space) is of a kind the protocol
            does not describe.
    """
    message = space_pb2.Space()
    _fill_space(message, space, field)
    if generators:
        _fill_generators(message, space)
    return message


def _fill_space(message: space_pb2.Space, space: spaces.Space[Any], field: str) -> None:
    # Walking the MRO lets subclasses of the Gymnasium spaces travel as their base.
    for cls in type(space).__mro__:
        filler = _SPACE_FILLERS.get(cls)
        if filler is not None:
            filler(message, space, field)
            return
    raise UnsupportedSpaceError(
        f"{field}: {type(space).__module__}.{type(space).__qualname__} spaces cannot be "
        f"described by the protocol; expected {_SUPPORTED}",
        field=field,
    )


def _fill_box(message: space_pb2.Space, space: spaces.Box, field: str) -> None:
    box = message.box
    box.dtype = data_type_of(space.dtype, field=field)
    box.shape[:] = space.shape
    fill_tensor(box.low, space.low, field=f"{field}.low")
    fill_tensor(box.high, space.high, field=f"{field}.high")


def _fill_discrete(message: space_pb2.Space, space: spaces.Discrete, field: str) -> None:
    discrete = message.discrete
    discrete.n = int(space.n)
    discrete.start = int(space.start)
    discrete.dtype = data_type_of(space.dtype, field=field)


def _fill_multi_discrete(message: space_pb2.Space, space: spaces.MultiDiscrete, field: str) -> None:
    fill_tensor(message.multi_discrete.nvec, space.nvec, field=f"{field}.nvec")
    fill_tensor(message.multi_discrete.start, space.start, field=f"{field}.start")


def _fill_multi_binary(message: space_pb2.Space, space: spaces.MultiBinary, field: str) -> None:
    message.multi_binary.shape[:] = space.shape
    message.multi_binary.scalar_n = not isinstance(space.n, tuple)


def _fill_tuple(message: space_pb2.Space, space: spaces.Tuple[Any], field: str) -> None:
    for index, sub_space in enumerate(space.spaces):
        _fill_space(message.tuple.spaces.add(), sub_space, f"{field}[{index}]")
    message.tuple.SetInParent()


def _fill_sequence(message: space_pb2.Space, space: spaces.Sequence, field: str) -> None:
    sequence = message.sequence
    _fill_space(sequence.feature_space, space.feature_space, f"{field}.feature_space")
    sequence.stack = bool(space.stack)


def _fill_graph(message: space_pb2.Space, space: spaces.Graph, field: str) -> None:
    graph = message.graph
    _fill_space(graph.node_space, space.node_space, f"{field}.node_space")
    if space.edge_space is not None:
        _fill_space(graph.edge_space, space.edge_space, f"{field}.edge_space")


def _fill_one_of(message: space_pb2.Space, space: spaces.OneOf[Any], field: str) -> None:
    for index, sub_space in enumerate(space.spaces):
        _fill_space(message.one_of.spaces.add(), sub_space, f"{field}[{index}]")


def _fill_dict(message: space_pb2.Space, space: spaces.Dict, field: str) -> None:
    entries = message.dict.entries
    for key, sub_space in space.spaces.items():
        if type(key) is not str:
            raise UnsupportedSpaceError(
                f"{field}: Dict space key {key!r} is a {type(key).__name__}; the protocol "
                "supports str keys only",
                field=field,
            )
        try:
            entry = entries.add(key=key)
        except UnicodeEncodeError as error:
            raise UnsupportedSpaceError(
                f"{field}: Dict space key {key!r} is not valid Unicode ({error.reason}); "
                "expected keys UTF-8 can encode",
                field=field,
            ) from error
        _fill_space(entry.space, sub_space, join_key(field, key))
    message.dict.sort_keys = bool(space.sort_keys)


def _fill_text(message: space_pb2.Space, space: spaces.Text, field: str) -> None:
    text = message.text
    text.max_length = space.max_length
    text.min_length = space.min_length
    try:
        # character_list, not the sorted `characters`: sampling draws by position in it,
        # so the same order makes a seeded client-side sample() match the server's.
        text.charset = "".join(space.character_list)
    except UnicodeEncodeError as error:
        raise UnsupportedSpaceError(
            f"{field}: the Text character set holds {error.object[error.start]!r}, which "
            f"UTF-8 cannot encode ({error.reason}); expected Unicode characters",
            field=f"{field}.charset",
        ) from error


_SpaceFiller = Callable[[space_pb2.Space, Any, str], None]
_SPACE_FILLERS: Final[dict[type, _SpaceFiller]] = {
    spaces.Box: _fill_box,
    spaces.Discrete: _fill_discrete,
    spaces.MultiDiscrete: _fill_multi_discrete,
    spaces.MultiBinary: _fill_multi_binary,
    spaces.Dict: _fill_dict,
    spaces.Tuple: _fill_tuple,
    spaces.Text: _fill_text,
    spaces.Sequence: _fill_sequence,
    spaces.Graph: _fill_graph,
    spaces.OneOf: _fill_one_of,
}


def _sub_spaces(
    space: spaces.Space[Any], message: space_pb2.Space
) -> Iterator[tuple[spaces.Space[Any], space_pb2.Space]]:
    """Each direct sub-space of ``space`` with its part of the (filled) message."""
    if isinstance(space, spaces.Dict):
        yield from zip(
            space.spaces.values(), (entry.space for entry in message.dict.entries), strict=True
        )
    elif isinstance(space, spaces.Tuple):
        yield from zip(space.spaces, message.tuple.spaces, strict=True)
    elif isinstance(space, spaces.OneOf):
        yield from zip(space.spaces, message.one_of.spaces, strict=True)
    elif isinstance(space, spaces.Sequence):
        yield space.feature_space, message.sequence.feature_space
    elif isinstance(space, spaces.Graph):
        yield space.node_space, message.graph.node_space
        if space.edge_space is not None:
            yield space.edge_space, message.graph.edge_space


def _fill_generators(message: space_pb2.Space, space: spaces.Space[Any]) -> None:
    # `_np_random`, not `np_random`: the property would seed an unseeded space, and
    # with it change what the environment's own space samples. (Gymnasium annotates it
    # as a Generator; it is None until the space is seeded.)
    generator: np.random.Generator | None = space._np_random
    if generator is not None:
        bit_generator = generator.bit_generator
        name = type(bit_generator).__name__
        if _BIT_GENERATORS.get(name) is type(bit_generator):
            try:
                fill_value(message.generator.state, bit_generator.state)
                message.generator.bit_generator = name
            except GymrpcError:  # pragma: no cover - numpy's states are plain data
                message.ClearField("generator")
    for sub_space, sub_message in _sub_spaces(space, message):
        _fill_generators(sub_message, sub_space)


def _decode_generator(message: space_pb2.GeneratorState, field: str) -> np.random.Generator | None:
    """The generator a GeneratorState describes; None for a bit generator not known."""
    make = _BIT_GENERATORS.get(message.bit_generator)
    if make is None:
        # An optional refinement (space.proto): a generator this client cannot build
        # leaves the space unseeded, as a sender without generators would.
        return None
    state = decode_value(message.state, field=f"{field}.state")
    bit_generator = make(0)
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise InvalidValueError(
            f"{field}.state: not a state of numpy's {message.bit_generator} "
            f"({type(error).__name__}: {error}); expected its bit_generator.state dict",
            field=f"{field}.state",
        ) from error
    return np.random.Generator(bit_generator)


def decode_space(message: space_pb2.Space, *, field: str = "space") -> spaces.Space[Any]:
    """Rebuild the Gymnasium space a ``Space`` message describes.

    Args:
        message: The received space.
        field: Path of the space, for error messages; inner fields are named by their
            protobuf path (``space.dict.entries[0].space.box.low``).

    Returns:
        A space equal to the one that was encoded, with the random generators the
        message carries (``Space.generator``) restored: it samples what the original
        did from the moment it was encoded. Spaces without one are left unseeded.

    Raises:
        InvalidValueError: If the message is inconsistent (no kind set, bounds of the
            wrong shape or dtype, non-positive sizes, repeated Dict keys, a Text with
            min_length > max_length or a character set that is empty or repeats a
            character, a Sequence or Graph without its feature space, a OneOf of
            nothing, a generator state its bit generator refuses).
        InvalidTensorError: If a tensor inside is malformed.
    """
    kind = message.WhichOneof("kind")
    if kind is None:
        raise InvalidValueError(
            f"{field}: no kind is set in the Space; expected exactly one of {_SUPPORTED}",
            field=field,
        )
    try:
        space = _SPACE_DECODERS[kind](getattr(message, kind), f"{field}.{kind}")
    except GymrpcError:
        raise
    except (AssertionError, TypeError, ValueError, OverflowError) as error:
        # Gymnasium validates its constructor arguments with asserts and TypeErrors;
        # report them as a malformed message rather than an internal failure.
        raise InvalidValueError(f"{field}: invalid {kind} space: {error}", field=field) from error
    if message.HasField("generator"):
        # Once the space is built: constructors start without a generator. Its
        # sub-spaces' are restored already, so that constructors that batch them
        # (Graph's, a stacked Sequence's) copy those rather than seed fresh ones.
        generator = _decode_generator(message.generator, f"{field}.generator")
        if generator is not None:
            space._np_random = generator
    return space


def _decode_box(box: space_pb2.BoxSpace, field: str) -> spaces.Box:
    dtype = dtype_of(box.dtype, field=f"{field}.dtype")
    shape = tuple(box.shape)
    check_shape(shape, field=f"{field}.shape")
    bounds = []
    for name, tensor in (("low", box.low), ("high", box.high)):
        array = decode_tensor(tensor, field=f"{field}.{name}")
        if array.dtype != dtype or array.shape != shape:
            raise InvalidValueError(
                f"{field}.{name}: bounds of dtype {array.dtype} and shape {array.shape}; "
                f"expected dtype {dtype} and shape {shape} like the Box",
                field=f"{field}.{name}",
            )
        bounds.append(array)
    low, high = bounds
    if np.any(low > high):
        raise InvalidValueError(
            f"{field}: some low bounds exceed their high bounds; expected low <= high",
            field=field,
        )
    return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)


def _integer_dtype(code: int, field: str) -> np.dtype[Any]:
    dtype = dtype_of(code or tensor_pb2.DATA_TYPE_INT64, field=field)
    if dtype.kind not in "iu":
        raise InvalidValueError(
            f"{field}: {dtype} is not an integer type; expected an integer DataType",
            field=field,
        )
    return dtype


def _decode_discrete(discrete: space_pb2.DiscreteSpace, field: str) -> spaces.Discrete:
    if discrete.n <= 0:
        raise InvalidValueError(f"{field}.n: {discrete.n}; expected n > 0", field=f"{field}.n")
    dtype = _integer_dtype(discrete.dtype, f"{field}.dtype")
    return spaces.Discrete(discrete.n, start=discrete.start, dtype=dtype.type)


def _decode_multi_discrete(multi: space_pb2.MultiDiscreteSpace, field: str) -> spaces.MultiDiscrete:
    nvec = decode_tensor(multi.nvec, field=f"{field}.nvec")
    _integer_dtype(multi.nvec.dtype, f"{field}.nvec.dtype")
    if np.any(nvec <= 0):
        raise InvalidValueError(
            f"{field}.nvec: {nvec.tolist()}; expected every entry > 0", field=f"{field}.nvec"
        )
    start = np.zeros_like(nvec)
    if multi.HasField("start"):
        start = decode_tensor(multi.start, field=f"{field}.start")
        if start.shape != nvec.shape or start.dtype != nvec.dtype:
            raise InvalidValueError(
                f"{field}.start: dtype {start.dtype} and shape {start.shape}; expected "
                f"{nvec.dtype} and {nvec.shape} like nvec",
                field=f"{field}.start",
            )
    return spaces.MultiDiscrete(nvec, dtype=nvec.dtype.type, start=start)


def _decode_multi_binary(multi: space_pb2.MultiBinarySpace, field: str) -> spaces.MultiBinary:
    shape = tuple(multi.shape)
    check_shape(shape, field=f"{field}.shape")
    if not shape or min(shape) <= 0:
        raise InvalidValueError(
            f"{field}.shape: {list(shape)}; expected at least one dimension, all > 0",
            field=f"{field}.shape",
        )
    if multi.scalar_n:
        if len(shape) != 1:
            raise InvalidValueError(
                f"{field}: scalar_n with shape {list(shape)}; expected a 1-d shape",
                field=f"{field}.scalar_n",
            )
        return spaces.MultiBinary(shape[0])
    return spaces.MultiBinary(list(shape))


def _decode_dict(message: space_pb2.DictSpace, field: str) -> spaces.Dict:
    sub_spaces: dict[str, spaces.Space[Any]] = {}
    for index, entry in enumerate(message.entries):
        if entry.key in sub_spaces:
            raise InvalidValueError(
                f"{field}: key {entry.key!r} appears more than once; keys must be unique",
                field=f"{field}.entries[{index}].key",
            )
        sub_spaces[entry.key] = decode_space(entry.space, field=f"{field}.entries[{index}].space")
    keys = list(sub_spaces)
    # Pairs keep the sender's order. sort_keys is what batch_space passes on to the
    # batched Dict, which sorts a plain dict when it is true: a space whose keys were
    # not sorted must not get sorted batches. Senders before 1.1 did not send it.
    sort_keys = message.sort_keys if message.HasField("sort_keys") else keys == sorted(keys)
    return spaces.Dict(list(sub_spaces.items()), sort_keys=sort_keys)


def _decode_text(text: space_pb2.TextSpace, field: str) -> spaces.Text:
    if not 0 <= text.min_length <= text.max_length:
        at_fault = f"{field}.min_length" if text.min_length < 0 else f"{field}.max_length"
        raise InvalidValueError(
            f"{at_fault}: min_length {text.min_length} and max_length {text.max_length}; "
            "expected 0 <= min_length <= max_length",
            field=at_fault,
        )
    charset = text.charset
    if not charset:
        raise InvalidValueError(
            f"{field}.charset: empty; expected at least one character",
            field=f"{field}.charset",
        )
    if len(set(charset)) != len(charset):
        seen: set[str] = set()
        for repeated in charset:
            if repeated in seen:
                break
            seen.add(repeated)
        raise InvalidValueError(
            f"{field}.charset: {repeated!r} appears more than once; expected each "
            "character exactly once",
            field=f"{field}.charset",
        )
    # A str charset keeps its order (Gymnasium de-duplicates it with dict.fromkeys).
    return spaces.Text(text.max_length, min_length=text.min_length, charset=charset)


def _decode_sequence(sequence: space_pb2.SequenceSpace, field: str) -> spaces.Sequence:
    feature = _required(sequence, "feature_space", field)
    return spaces.Sequence(
        decode_space(feature, field=f"{field}.feature_space"), stack=sequence.stack
    )


def _decode_graph(graph: space_pb2.GraphSpace, field: str) -> spaces.Graph:
    node_space = decode_space(_required(graph, "node_space", field), field=f"{field}.node_space")
    edge_space = None
    if graph.HasField("edge_space"):
        edge_space = decode_space(graph.edge_space, field=f"{field}.edge_space")
    return spaces.Graph(node_space, edge_space)


def _decode_tuple(message: space_pb2.TupleSpace, field: str) -> spaces.Tuple[Any]:
    return spaces.Tuple(
        tuple(
            decode_space(sub, field=f"{field}.spaces[{index}]")
            for index, sub in enumerate(message.spaces)
        )
    )


def _decode_one_of(one_of: space_pb2.OneOfSpace, field: str) -> spaces.OneOf[Any]:
    if not one_of.spaces:
        raise InvalidValueError(
            f"{field}.spaces: empty; expected at least one space", field=f"{field}.spaces"
        )
    return spaces.OneOf(
        tuple(
            decode_space(sub, field=f"{field}.spaces[{index}]")
            for index, sub in enumerate(one_of.spaces)
        )
    )


def _required(message: Any, name: str, field: str) -> space_pb2.Space:
    if not message.HasField(name):
        raise InvalidValueError(
            f"{field}.{name}: missing; expected a Space", field=f"{field}.{name}"
        )
    sub: space_pb2.Space = getattr(message, name)
    return sub


# Keyed by the name of the Space's `kind`; each takes that field's message.
_SPACE_DECODERS: Final[dict[str, Callable[[Any, str], spaces.Space[Any]]]] = {
    "box": _decode_box,
    "discrete": _decode_discrete,
    "multi_discrete": _decode_multi_discrete,
    "multi_binary": _decode_multi_binary,
    "dict": _decode_dict,
    "tuple": _decode_tuple,
    "text": _decode_text,
    "sequence": _decode_sequence,
    "graph": _decode_graph,
    "one_of": _decode_one_of,
}


# --- membership, with reasons ------------------------------------------------------------

#: Errors a hostile value can make numpy or Gymnasium raise while it is examined.
_CHECK_ERRORS: Final = (TypeError, ValueError, OverflowError, IndexError, KeyError, RecursionError)


def find_violation(space: spaces.Space[Any], value: Any) -> str | None:
    """Say why ``value`` is not in ``space``, or return None when it is.

    This is ``space.contains(value)`` with a reason, for refusing input from the network:
    it accepts what ``contains`` accepts, except that values must have the form the
    protocol gives them (value.proto): an array (or numpy scalar) for a Box,
    MultiDiscrete or MultiBinary, a tuple for a Tuple, an unstacked Sequence or a OneOf,
    where ``contains`` would also take a list. Arrays inside are checked with numpy,
    whatever their length (the nodes of a Graph, a stacked Sequence), and a value that
    makes numpy or Gymnasium raise is reported rather than raised.

    Args:
        space: A single (unbatched) space.
        value: A value of it, as decoded from the wire.

    Returns:
        None, or a description of the first problem found, starting with where it is
        inside the value (``"entry 'position': ..."``, ``"element 3 of the sequence:
        ..."``).

    Example:
        >>> from gymnasium import spaces
        >>> find_violation(spaces.Text(3, charset="ab"), "abc")
        "'c' (position 2) is not in the character set 'ab'"
        >>> find_violation(spaces.OneOf((spaces.Discrete(2),)), (0, np.int64(1))) is None
        True
    """
    try:
        return _violation(space, value)
    except _CHECK_ERRORS as error:
        return f"{_summary(value)} cannot be checked against {space} ({type(error).__name__})"


def _violation(space: spaces.Space[Any], value: Any) -> str | None:
    for cls in type(space).__mro__:
        check = _VIOLATIONS.get(cls)
        if check is not None:
            return check(space, value)
    return None if space.contains(value) else f"{_summary(value)} is not in {space}"


def _array_space_violation(
    space: spaces.Box | spaces.MultiDiscrete | spaces.MultiBinary, value: Any
) -> str | None:
    if isinstance(value, np.generic):
        # Gymnasium samples 0-d integer Boxes as numpy scalars.
        value = np.asarray(value)
    elif not isinstance(value, np.ndarray):
        return f"{_summary(value)}, not an array"
    if value.shape != space.shape:
        return f"an array of shape {value.shape}; expected shape {space.shape}"
    return _array_violation(space, value)


def _discrete_violation(space: spaces.Discrete, value: Any) -> str | None:
    # Discrete.contains: a Python int that fits the dtype, or a 0-d numpy integer whose
    # dtype casts safely to the space's.
    if isinstance(value, int):
        info = np.iinfo(space.dtype)
        inside = info.min <= value <= info.max
    elif isinstance(value, np.generic | np.ndarray) and value.dtype.kind in "iu":
        if value.shape != ():
            return f"an array of shape {value.shape}; expected a single integer"
        if not np.can_cast(value.dtype, space.dtype):
            return f"dtype {value.dtype}, which does not cast safely to {space.dtype}"
        inside = True
    else:
        return f"{_summary(value)}; expected an integer"
    start, n = int(space.start), int(space.n)
    if inside and start <= int(value) < start + n:
        return None
    return f"{int(value)}, outside [{start}, {start + n})"


def _dict_violation(space: spaces.Dict, value: Any) -> str | None:
    if not isinstance(value, dict) or value.keys() != space.spaces.keys():
        got = f"keys {list(value)}" if isinstance(value, dict) else _summary(value)
        return f"{got}; expected a dict with keys {list(space.spaces)}"
    for key, sub_space in space.spaces.items():
        if (problem := _violation(sub_space, value[key])) is not None:
            return f"entry {key!r}: {problem}"
    return None


def _tuple_violation(space: spaces.Tuple[Any], value: Any) -> str | None:
    if type(value) is not tuple or len(value) != len(space.spaces):
        got = f"a tuple of {len(value)}" if type(value) is tuple else _summary(value)
        return f"{got}; expected a tuple of {len(space.spaces)} items"
    for index, (sub_space, item) in enumerate(zip(space.spaces, value, strict=True)):
        if (problem := _violation(sub_space, item)) is not None:
            return f"item {index}: {problem}"
    return None


def _text_violation(space: spaces.Text, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{_summary(value)}; expected a str"
    if not space.min_length <= len(value) <= space.max_length:
        expected = f"{space.min_length} to {space.max_length}"
        return f"a str of {len(value)} characters; expected {expected}"
    charset = space.character_set
    if charset.issuperset(value):
        return None
    position, char = next((i, c) for i, c in enumerate(value) if c not in charset)
    return f"{char!r} (position {position}) is not in the character set {space.characters!r}"


def _sequence_violation(space: spaces.Sequence, value: Any) -> str | None:
    if space.stack:
        return _stack_violation(space.feature_space, value, "the sequence")[0]
    return _items_violation(space.feature_space, value, "the sequence")[0]


def _graph_violation(space: spaces.Graph, value: Any) -> str | None:
    if not isinstance(value, spaces.GraphInstance) or value.nodes is None:
        got = "a GraphInstance without nodes" if value is not None else "None"
        if not isinstance(value, spaces.GraphInstance):
            got = _summary(value)
        return f"{got}; expected a GraphInstance with nodes"
    problem, num_nodes = _stack_violation(space.node_space, value.nodes, "the nodes")
    if problem is not None:
        return problem
    edges, links = value.edges, value.edge_links
    if edges is None and links is None:
        return None
    if edges is None or links is None:
        return "edges without edge_links, or edge_links without edges; expected both or neither"
    if space.edge_space is None:
        return "edges, which this Graph (edge_space None) does not have"
    problem, num_edges = _stack_violation(space.edge_space, edges, "the edges")
    return problem or _links_violation(links, num_edges, num_nodes)


def _links_violation(links: Any, num_edges: int, num_nodes: int) -> str | None:
    if not isinstance(links, np.ndarray) or links.dtype.kind not in "iu":
        return f"edge_links is {_summary(links)}; expected an integer array"
    if links.shape != (num_edges, 2):
        return f"edge_links has shape {links.shape}; expected ({num_edges}, 2)"
    if num_edges and (links.min() < 0 or links.max() >= num_nodes):
        return f"edge_links holds indices outside [0, {num_nodes}), the nodes"
    return None


def _one_of_violation(space: spaces.OneOf[Any], value: Any) -> str | None:
    if type(value) is not tuple or len(value) != 2:
        return f"{_summary(value)}; expected a tuple (index, value)"
    index = value[0]
    # As OneOf.contains: the index is an int or a numpy int64.
    if not isinstance(index, int | np.int64) or not 0 <= index < len(space.spaces):
        return (
            f"the index {index!r} ({type(index).__name__}); expected an int or numpy int64 "
            f"in [0, {len(space.spaces)})"
        )
    if (problem := _violation(space.spaces[index], value[1])) is not None:
        return f"the value of option {int(index)}: {problem}"
    return None


_VIOLATIONS: Final[dict[type, Callable[[Any, Any], str | None]]] = {
    spaces.Box: _array_space_violation,
    spaces.MultiDiscrete: _array_space_violation,
    spaces.MultiBinary: _array_space_violation,
    spaces.Discrete: _discrete_violation,
    spaces.Dict: _dict_violation,
    spaces.Tuple: _tuple_violation,
    spaces.Text: _text_violation,
    spaces.Sequence: _sequence_violation,
    spaces.Graph: _graph_violation,
    spaces.OneOf: _one_of_violation,
}
_ARRAY_SPACES: Final = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def _array_violation(
    space: spaces.Box | spaces.MultiDiscrete | spaces.MultiBinary | spaces.Discrete,
    array: npt.NDArray[Any],
) -> str | None:
    """Check an array of values of ``space`` (or a stack of them) element-wise."""
    if isinstance(space, spaces.MultiBinary):
        if array.dtype.kind not in "biuf":
            return f"dtype {array.dtype}; expected numbers"
        inside = (array == 0) | (array == 1)
        expected = "0 or 1"
    else:
        if isinstance(space, spaces.Discrete) and array.dtype.kind not in "iu":
            return f"dtype {array.dtype}; expected an integer dtype"
        if not np.can_cast(array.dtype, space.dtype):
            return f"dtype {array.dtype}, which does not cast safely to {space.dtype}"
        low: Any
        high: Any
        if isinstance(space, spaces.Box):
            low, high = space.low, space.high
        elif isinstance(space, spaces.Discrete):
            low, high = space.start, space.start + space.n - 1
        else:
            low, high = space.start, space.start + (space.nvec - 1)
        # NaN compares false both ways, so it is never inside.
        inside = (array >= low) & (array <= high)
        expected = "the space's bounds (NaN is never inside)"
    if inside.all():
        return None
    # argmax finds the first offender without listing them all (argwhere would).
    bad = tuple(int(i) for i in np.unravel_index(int(np.argmax(~inside)), inside.shape))
    where = f" at {bad}" if bad else ""
    return f"{array[bad].item()!r}{where} is outside {expected}"


def _stack_violation(space: spaces.Space[Any], value: Any, what: str) -> tuple[str | None, int]:
    """Check values of ``space`` stacked as Gymnasium stacks them; return their count.

    Gymnasium stacks values of array spaces along a new first axis, Dict and Tuple
    values key by key and item by item (as ``batch_space(space, n)``), and keeps the
    values of other spaces in a tuple.
    """
    if isinstance(space, _ARRAY_SPACES):
        shape = space.shape or ()
        if not isinstance(value, np.ndarray) or value.ndim != 1 + len(shape):
            return f"{what} is {_summary(value)}; expected an array of shape (n, *{shape})", 0
        if value.shape[1:] != shape:
            return f"{what} has shape {value.shape}; expected (n, *{shape})", 0
        problem = _array_violation(space, value)
        return (None if problem is None else f"{what}: {problem}"), value.shape[0]
    if isinstance(space, spaces.Dict | spaces.Tuple):
        parts = _stacked_parts(space, value)
        if isinstance(parts, str):
            return f"{what} {parts}", 0
        return _parts_violation(parts, what)
    return _items_violation(space, value, what)


def _stacked_parts(
    space: spaces.Dict | spaces.Tuple[Any], value: Any
) -> str | list[tuple[str, spaces.Space[Any], Any]]:
    """The (name, space, stack) parts of a stacked Dict or Tuple value, or a problem."""
    if isinstance(space, spaces.Dict):
        if not isinstance(value, dict) or value.keys() != space.spaces.keys():
            got = f"keys {list(value)}" if isinstance(value, dict) else _summary(value)
            return f"has {got}; expected a dict with keys {list(space.spaces)}"
        return [(f"entry {key!r}", sub, value[key]) for key, sub in space.spaces.items()]
    if type(value) is not tuple or len(value) != len(space.spaces):
        return f"is {_summary(value)}; expected a tuple of {len(space.spaces)} stacks"
    return [(f"item {i}", sub, value[i]) for i, sub in enumerate(space.spaces)]


def _parts_violation(
    parts: list[tuple[str, spaces.Space[Any], Any]], what: str
) -> tuple[str | None, int]:
    """Check the stacks of a stacked Dict or Tuple: each, and that they are as long."""
    lengths = set()
    for name, sub_space, part in parts:
        problem, length = _stack_violation(sub_space, part, f"{what}, {name}")
        if problem is not None:
            return problem, 0
        lengths.add(length)
    if len(lengths) > 1:
        return f"{what} stacks parts of different lengths {sorted(lengths)}", 0
    return None, lengths.pop() if lengths else 0


def _items_violation(space: spaces.Space[Any], value: Any, what: str) -> tuple[str | None, int]:
    """Check a tuple of values of ``space``; return their count."""
    if type(value) is not tuple:
        return f"{what} is {_summary(value)}; expected a tuple", 0
    for index, item in enumerate(value):
        if (problem := _violation(space, item)) is not None:
            return f"element {index} of {what}: {problem}", 0
    return None, len(value)


def _summary(value: Any) -> str:
    """A short description of a value: never its whole content, which may be huge."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"a str of {len(value)} characters"
    if isinstance(value, bool | int | float | np.generic):
        return f"{value!r} ({type(value).__name__})"
    if isinstance(value, tuple | list | dict):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__module__}.{type(value).__qualname__}"
