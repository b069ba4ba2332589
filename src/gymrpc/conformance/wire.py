"""Tensors, values and results read straight off the wire, by the schema's rules.

The kit has its own small codec (tensor.proto and value.proto, nothing more) rather
than gymrpc's client codecs: a conformance check must not share code, and therefore
mistakes, with the implementation it checks. Everything received is validated as it
is read; a broken rule is a :class:`~gymrpc.conformance.framework.Violation`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final, TypeAlias, cast

import numpy as np
import numpy.typing as npt

from gymrpc.conformance.framework import Violation
from gymrpc.conformance.model import ExpectedReset, ExpectedStep
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import tensor_pb2, value_pb2

__all__ = [
    "DTYPES",
    "DataType",
    "actions_value",
    "encode_tensor",
    "expect_reset",
    "expect_step",
    "info_entries",
    "read_array",
    "read_tensor",
]

TENSOR_RULE: Final = "tensor.proto, Tensor encoding rules"
BATCH_RULE: Final = "env_service.proto, Batches"
INFO_RULE: Final = "env_service.proto, Info dicts"
RESULT_RULE: Final = "docs/conformance.md, the conformance environment"

#: numpy dtype of each DataType, little-endian whatever this machine's byte order.
DTYPES: Final[dict[int, np.dtype[Any]]] = {
    tensor_pb2.DATA_TYPE_BOOL: np.dtype("|b1"),
    tensor_pb2.DATA_TYPE_INT8: np.dtype("|i1"),
    tensor_pb2.DATA_TYPE_INT16: np.dtype("<i2"),
    tensor_pb2.DATA_TYPE_INT32: np.dtype("<i4"),
    tensor_pb2.DATA_TYPE_INT64: np.dtype("<i8"),
    tensor_pb2.DATA_TYPE_UINT8: np.dtype("|u1"),
    tensor_pb2.DATA_TYPE_UINT16: np.dtype("<u2"),
    tensor_pb2.DATA_TYPE_UINT32: np.dtype("<u4"),
    tensor_pb2.DATA_TYPE_UINT64: np.dtype("<u8"),
    tensor_pb2.DATA_TYPE_FLOAT16: np.dtype("<f2"),
    tensor_pb2.DATA_TYPE_FLOAT32: np.dtype("<f4"),
    tensor_pb2.DATA_TYPE_FLOAT64: np.dtype("<f8"),
}


DataType: TypeAlias = tensor_pb2.DataType.ValueType


def dtype_name(code: int) -> str:
    """``DATA_TYPE_INT64`` for 5; the number for values the schema does not know."""
    try:
        return tensor_pb2.DataType.Name(cast(DataType, code))
    except ValueError:
        return str(code)


def encode_tensor(array: npt.ArrayLike, dtype: DataType) -> tensor_pb2.Tensor:
    """A Tensor of ``dtype`` holding ``array`` (C order, little-endian)."""
    data = np.ascontiguousarray(np.asarray(array, dtype=DTYPES[dtype]))
    return tensor_pb2.Tensor(dtype=dtype, shape=list(data.shape), data=data.tobytes())


def actions_value(
    actions: Sequence[int], dtype: DataType = tensor_pb2.DATA_TYPE_INT64
) -> value_pb2.Value:
    """A batch of Discrete actions as an ``array_value``."""
    return value_pb2.Value(array_value=encode_tensor(list(actions), dtype))


def read_tensor(tensor: tensor_pb2.Tensor, where: str) -> npt.NDArray[Any]:
    """Decode a received Tensor, checking every encoding rule.

    Args:
        tensor: The tensor.
        where: Its place in the response, for the failure message.

    Returns:
        The array (read-only, little-endian dtype).

    Raises:
        Violation: For an unknown dtype, a negative dimension, a byte length that does
            not match the shape, or a bool byte other than 0 and 1.
    """
    dtype = DTYPES.get(tensor.dtype)
    if dtype is None:
        raise Violation(
            f"{where}.dtype",
            received=dtype_name(tensor.dtype),
            expected="a DataType other than DATA_TYPE_UNSPECIFIED",
            rule=TENSOR_RULE,
        )
    shape = tuple(int(size) for size in tensor.shape)
    if any(size < 0 for size in shape):
        raise Violation(
            f"{where}.shape",
            received=str(list(shape)),
            expected="dimensions >= 0",
            rule=TENSOR_RULE,
        )
    expected_bytes = math.prod(shape) * dtype.itemsize
    if len(tensor.data) != expected_bytes:
        raise Violation(
            f"{where}.data",
            received=f"{len(tensor.data)} bytes for {dtype_name(tensor.dtype)} {list(shape)}",
            expected=f"{expected_bytes} bytes",
            rule=TENSOR_RULE,
        )
    array = np.frombuffer(tensor.data, dtype=dtype).reshape(shape)
    if (
        tensor.dtype == tensor_pb2.DATA_TYPE_BOOL
        and np.frombuffer(tensor.data, np.uint8).max(initial=0) > 1
    ):
        raise Violation(
            f"{where}.data", received="a bool byte above 1", expected="0 or 1", rule=TENSOR_RULE
        )
    return array


def read_array(
    value: value_pb2.Value,
    where: str,
    *,
    dtype: DataType,
    shape: tuple[int, ...],
    rule: str = BATCH_RULE,
) -> npt.NDArray[Any]:
    """Decode an ``array_value`` that must have a given dtype and shape.

    Raises:
        Violation: For another kind of Value, another dtype or another shape.
    """
    kind = value.WhichOneof("kind")
    if kind != "array_value":
        raise Violation(where, received=f"a {kind} Value", expected="an array_value", rule=rule)
    return read_tensor_as(value.array_value, where, dtype=dtype, shape=shape, rule=rule)


def read_tensor_as(
    tensor: tensor_pb2.Tensor, where: str, *, dtype: DataType, shape: tuple[int, ...], rule: str
) -> npt.NDArray[Any]:
    """Decode a Tensor that must have a given dtype and shape."""
    array = read_tensor(tensor, where)
    if tensor.dtype != dtype or array.shape != shape:
        raise Violation(
            where,
            received=f"{dtype_name(tensor.dtype)} of shape {list(array.shape)}",
            expected=f"{dtype_name(dtype)} of shape {list(shape)}",
            rule=rule,
        )
    return array


def info_entries(info: value_pb2.ValueMap, num_envs: int, where: str) -> dict[str, value_pb2.Value]:
    """Read a vector info dict, checking the rules of "Info dicts" at every level.

    Every key ``k`` has a mask ``_k`` (BOOL, shape (num_envs,)) and every mask a key;
    values have num_envs as first dimension; nested dicts follow the same rules.

    Returns:
        The entries by key.

    Raises:
        Violation: For a duplicate key, a missing or malformed mask, or a value whose
            first dimension is not num_envs.
    """
    entries: dict[str, value_pb2.Value] = {}
    for entry in info.entries:
        if entry.key in entries:
            raise Violation(
                where, received=f"key {entry.key!r} twice", expected="unique keys", rule=INFO_RULE
            )
        entries[entry.key] = entry.value
    for key, value in entries.items():
        path = f"{where}.{key}"
        if key.startswith("_"):
            if key[1:] not in entries:
                raise Violation(
                    path,
                    received="a mask without its key",
                    expected=f"an entry {key[1:]!r} next to it",
                    rule=INFO_RULE,
                )
            read_array(
                value, path, dtype=tensor_pb2.DATA_TYPE_BOOL, shape=(num_envs,), rule=INFO_RULE
            )
            continue
        if f"_{key}" not in entries:
            raise Violation(
                path, received="a key without mask", expected=f"a mask '_{key}'", rule=INFO_RULE
            )
        _check_info_value(value, num_envs, path)
    return entries


def _check_info_value(value: value_pb2.Value, num_envs: int, path: str) -> None:
    kind = value.WhichOneof("kind")
    if kind == "dict_value":
        info_entries(value.dict_value, num_envs, path)
        return
    if kind == "array_value":
        array = read_tensor(value.array_value, path)
        first = array.shape[0] if array.ndim else None
    elif kind == "object_array_value":
        first = value.object_array_value.shape[0] if value.object_array_value.shape else None
        if len(value.object_array_value.items) != math.prod(value.object_array_value.shape):
            raise Violation(
                path,
                received=f"{len(value.object_array_value.items)} items",
                expected=f"product(shape) = {math.prod(value.object_array_value.shape)} items",
                rule="value.proto, ObjectArray",
            )
    else:
        raise Violation(
            path,
            received=f"a {kind} Value",
            expected="an array_value, object_array_value or dict_value per key",
            rule=INFO_RULE,
        )
    if first != num_envs:
        raise Violation(
            path,
            received=f"first dimension {first}",
            expected=f"{num_envs} (one value per sub-environment)",
            rule=INFO_RULE,
        )


def _mask(entries: dict[str, value_pb2.Value], key: str, num_envs: int, where: str) -> list[bool]:
    if f"_{key}" not in entries:
        return [False] * num_envs
    return [
        bool(item)
        for item in read_array(
            entries[f"_{key}"],
            f"{where}._{key}",
            dtype=tensor_pb2.DATA_TYPE_BOOL,
            shape=(num_envs,),
        ).tolist()
    ]


def _episode_steps(
    entries: dict[str, value_pb2.Value],
    num_envs: int,
    where: str,
    *,
    reported: Sequence[bool],
    expected: Sequence[int | None],
    subject: str,
) -> None:
    """Compare the ``episode_step`` info (INT64 per "Info dicts") with the expectation."""
    mask = _mask(entries, "episode_step", num_envs, where)
    if mask != list(reported):
        raise Violation(
            f"{subject}: {where}._episode_step",
            received=str(mask),
            expected=str(list(reported)),
            rule=INFO_RULE,
        )
    if not any(reported):
        return
    values = read_array(
        entries["episode_step"],
        f"{where}.episode_step",
        dtype=tensor_pb2.DATA_TYPE_INT64,
        shape=(num_envs,),
        rule=INFO_RULE,
    ).tolist()
    got = [value if used else None for value, used in zip(values, reported, strict=True)]
    want = [value if used else None for value, used in zip(expected, reported, strict=True)]
    if got != want:
        raise Violation(
            f"{subject}: {where}.episode_step",
            received=str(got),
            expected=str(want),
            rule=RESULT_RULE,
        )


def _observations(
    value: value_pb2.Value, num_envs: int, subject: str, where: str
) -> list[list[int]]:
    array = read_array(
        value, f"{subject}: {where}", dtype=tensor_pb2.DATA_TYPE_INT64, shape=(num_envs, 2)
    )
    return [[int(item) for item in row] for row in array.tolist()]


def expect_reset(
    response: pb.ResetResponse, expected: ExpectedReset, subject: str, *, hidden: bool = False
) -> None:
    """Check a ResetResponse of the conformance environment, value by value.

    Args:
        response: The response.
        expected: The model's prediction.
        subject: What was sent, for the failure message.
        hidden: Whether the session exposes hidden state (``next_value`` allowed).

    Raises:
        Violation: At the first difference.
    """
    num_envs = len(expected.observations)
    observations = _observations(response.observations, num_envs, subject, "observations")
    if observations != expected.observations:
        raise Violation(
            f"{subject}: observations",
            received=str(observations),
            expected=str(expected.observations),
            rule=RESULT_RULE,
        )
    entries = info_entries(response.info, num_envs, "info")
    _episode_steps(
        entries,
        num_envs,
        "info",
        reported=expected.reported,
        expected=expected.episode_steps,
        subject=subject,
    )
    _no_hidden_state(entries, hidden, subject)


def _no_hidden_state(entries: dict[str, value_pb2.Value], hidden: bool, subject: str) -> None:
    if "next_value" in entries and not hidden:
        raise Violation(
            f"{subject}: info",
            received="the privileged key 'next_value'",
            expected="no next_value unless the session set expose_hidden_state",
            rule=RESULT_RULE,
        )


def expect_step(
    response: pb.StepResponse, expected: ExpectedStep, subject: str, *, hidden: bool = False
) -> None:
    """Check a StepResponse of the conformance environment, value by value.

    Args:
        response: The response.
        expected: The model's prediction.
        subject: What was sent, for the failure message.
        hidden: Whether the session exposes hidden state.

    Raises:
        Violation: At the first difference; dtypes and shapes are checked first.
    """
    num_envs = len(expected.observations)
    observations = _observations(response.observations, num_envs, subject, "observations")
    rewards = read_tensor_as(
        response.rewards,
        f"{subject}: rewards",
        dtype=tensor_pb2.DATA_TYPE_FLOAT64,
        shape=(num_envs,),
        rule="env_service.proto, StepResponse.rewards",
    ).tolist()
    flags = [
        [
            bool(item)
            for item in read_tensor_as(
                tensor,
                f"{subject}: {name}",
                dtype=tensor_pb2.DATA_TYPE_BOOL,
                shape=(num_envs,),
                rule=f"env_service.proto, StepResponse.{name}",
            ).tolist()
        ]
        for name, tensor in (
            ("terminations", response.terminations),
            ("truncations", response.truncations),
        )
    ]
    got = (observations, rewards, flags[0], flags[1])
    want = (expected.observations, expected.rewards, expected.terminations, expected.truncations)
    names = ("observations", "rewards", "terminations", "truncations")
    for name, received, wanted in zip(names, got, want, strict=True):
        if received != wanted:
            raise Violation(
                f"{subject}: {name}", received=str(received), expected=str(wanted), rule=RESULT_RULE
            )
    entries = info_entries(response.info, num_envs, "info")
    _episode_steps(
        entries,
        num_envs,
        "info",
        reported=[True] * num_envs,
        expected=expected.episode_steps,
        subject=subject,
    )
    _no_hidden_state(entries, hidden, subject)
    if expected.final_observations:
        _expect_finals(entries, expected, subject)


def _expect_finals(
    entries: dict[str, value_pb2.Value], expected: ExpectedStep, subject: str
) -> None:
    """SAME_STEP: ``final_obs`` and ``final_info`` as AutoresetMode documents them."""
    rule = "env_service.proto, AUTORESET_MODE_SAME_STEP"
    num_envs = len(expected.observations)
    ended = [item is not None for item in expected.final_observations]
    if not any(ended):
        present = sorted(key for key in entries if "final_" in key)
        if present:
            raise Violation(
                f"{subject}: info",
                received=f"keys {present} although no sub-environment ended",
                expected="no final_* keys",
                rule=rule,
            )
        return
    for key in ("final_obs", "final_info"):
        if key not in entries or _mask(entries, key, num_envs, "info") != ended:
            raise Violation(
                f"{subject}: info.{key}",
                received="missing"
                if key not in entries
                else str(_mask(entries, key, num_envs, "info")),
                expected=f"present with mask {ended}",
                rule=rule,
            )
    final_obs = entries["final_obs"]
    if final_obs.WhichOneof("kind") != "object_array_value" or list(
        final_obs.object_array_value.shape
    ) != [num_envs]:
        raise Violation(
            f"{subject}: info.final_obs",
            received=f"a {final_obs.WhichOneof('kind')}",
            expected=f"an object_array_value of shape [{num_envs}]",
            rule=rule,
        )
    for index, item in enumerate(final_obs.object_array_value.items):
        want = expected.final_observations[index]
        where = f"{subject}: info.final_obs[{index}]"
        if want is None:
            if item.WhichOneof("kind") != "null_value":
                raise Violation(
                    where, received=f"a {item.WhichOneof('kind')}", expected="null_value", rule=rule
                )
            continue
        got = read_array(item, where, dtype=tensor_pb2.DATA_TYPE_INT64, shape=(2,), rule=rule)
        if [int(v) for v in got.tolist()] != want:
            raise Violation(where, received=str(got.tolist()), expected=str(want), rule=RESULT_RULE)
    final_info = entries["final_info"]
    if final_info.WhichOneof("kind") != "dict_value":
        raise Violation(
            f"{subject}: info.final_info",
            received=f"a {final_info.WhichOneof('kind')}",
            expected="a dict_value (a vector info dict)",
            rule=rule,
        )
    inner = info_entries(final_info.dict_value, num_envs, "info.final_info")
    _episode_steps(
        inner,
        num_envs,
        "info.final_info",
        reported=ended,
        expected=[step if step is not None else 0 for step in expected.final_episode_steps],
        subject=subject,
    )
