"""The kit's own readers of the wire reject what the schema forbids.

The end-to-end proof is tests/conformance/test_broken_servers.py; these tests pin
down the pieces: field path grammar, tensor rules, spaces, the error model.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path
from types import ModuleType

import grpc
import pytest
from gymnasium import spaces

from gymrpc.conformance import CHECKS, Violation, framework, model, statuses
from gymrpc.conformance.spaces import rebuild_space
from gymrpc.conformance.statuses import ErrorReport, Refusal, expect_refusal, field_path_problem
from gymrpc.conformance.wire import encode_tensor, info_entries, read_tensor
from gymrpc.errors import InvalidActionError, SessionNotFoundError
from gymrpc.v1 import space_pb2, tensor_pb2, value_pb2
from gymrpc_server.envs import conformance as conformance_env

INT64, BOOL = tensor_pb2.DATA_TYPE_INT64, tensor_pb2.DATA_TYPE_BOOL


@pytest.mark.parametrize(
    "path",
    [
        "step.actions",
        "actions[3]",
        "actions.position[3]",
        "actions[1][0]",
        "reset_mask.data",
        "reset.seeds.values",
        "env_options.step_size",
        'env_options["my option"]',
        'env_options["a \\"quoted\\" key"]',
    ],
)
def test_field_paths_of_the_schema_are_accepted(path: str) -> None:
    assert field_path_problem(path) is None


@pytest.mark.parametrize(
    "path",
    ["", "step..actions", "actions.", "actions[-1]", "[1]", "env_options[my option]", "a b"],
)
def test_other_field_paths_are_refused(path: str) -> None:
    assert field_path_problem(path) is not None


@pytest.mark.parametrize(
    ("tensor", "complaint"),
    [
        (tensor_pb2.Tensor(dtype=INT64, shape=[2], data=bytes(15)), "15 bytes"),
        (tensor_pb2.Tensor(dtype=BOOL, shape=[2], data=b"\x01\x02"), "a bool byte above 1"),
        (tensor_pb2.Tensor(dtype=INT64, shape=[-1], data=b""), "[-1]"),
        (tensor_pb2.Tensor(shape=[1], data=bytes(8)), "DATA_TYPE_UNSPECIFIED"),
    ],
    ids=["byte-length", "bool-byte", "negative-dimension", "no-dtype"],
)
def test_tensors_breaking_an_encoding_rule_are_violations(
    tensor: tensor_pb2.Tensor, complaint: str
) -> None:
    with pytest.raises(Violation, match=r"tensor\.proto") as raised:
        read_tensor(tensor, "observations")
    assert complaint in raised.value.received


def test_tensors_are_read_little_endian() -> None:
    tensor = tensor_pb2.Tensor(
        dtype=INT64, shape=[2], data=b"\x01" + bytes(7) + b"\x00" * 7 + b"\x01"
    )
    assert read_tensor(tensor, "t").tolist() == [1, 1 << 56]


def test_an_info_key_without_its_mask_is_a_violation() -> None:
    info = value_pb2.ValueMap()
    info.entries.add(key="episode_step").value.array_value.CopyFrom(encode_tensor([1, 2], INT64))
    with pytest.raises(Violation, match="Info dicts"):
        info_entries(info, 2, "info")
    info.entries.add(key="_episode_step").value.array_value.CopyFrom(encode_tensor([True], BOOL))
    with pytest.raises(Violation, match="shape"):
        info_entries(info, 2, "info")


def test_spaces_rebuild_exactly() -> None:
    space = space_pb2.Space()
    entry = space.dict.entries.add(key="position")
    entry.space.box.dtype = tensor_pb2.DATA_TYPE_FLOAT32
    entry.space.box.shape.append(2)
    entry.space.box.low.CopyFrom(encode_tensor([-1, -1], tensor_pb2.DATA_TYPE_FLOAT32))
    entry.space.box.high.CopyFrom(encode_tensor([1, 1], tensor_pb2.DATA_TYPE_FLOAT32))
    space.dict.entries.add(key="count").space.discrete.n = 4
    expected = spaces.Dict(
        {"position": spaces.Box(-1.0, 1.0, shape=(2,)), "count": spaces.Discrete(4)}
    )
    assert rebuild_space(space, "space") == expected


def test_a_box_whose_bounds_do_not_match_is_a_violation() -> None:
    box = space_pb2.Space()
    box.box.dtype = INT64
    box.box.shape.append(2)
    box.box.low.CopyFrom(encode_tensor([0, 0, 0], INT64))
    box.box.high.CopyFrom(encode_tensor([1, 1], INT64))
    with pytest.raises(Violation, match="BoxSpace"):
        rebuild_space(box, "space")
    with pytest.raises(Violation, match="DiscreteSpace"):
        rebuild_space(space_pb2.Space(discrete=space_pb2.DiscreteSpace(n=0)), "space")


def _report(error: InvalidActionError | SessionNotFoundError) -> ErrorReport:
    return ErrorReport.from_status(error.to_status())


def test_an_error_following_the_model_passes() -> None:
    error = InvalidActionError("actions[1]: 3 is outside Discrete(3)", field="actions[1]")
    expect_refusal(
        _report(error),
        Refusal(
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ACTION", field="actions[1]", mentions=("3",)
        ),
        "Step",
    )


def test_an_error_without_bad_request_is_a_violation() -> None:
    status = InvalidActionError("actions[1]: 3", field="actions[1]").to_status()
    del status.details[1:]  # keep ErrorInfo, drop BadRequest
    refusal = Refusal(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ACTION", field="actions[1]")
    with pytest.raises(Violation, match="BadRequest"):
        expect_refusal(ErrorReport.from_status(status), refusal, "Step")


def test_a_wrong_reason_or_field_is_a_violation() -> None:
    report = _report(SessionNotFoundError("session_id: no session 'x'", field="session_id"))
    with pytest.raises(Violation, match=r"expected INVALID_ARGUMENT \(INVALID_ARGUMENT"):
        expect_refusal(report, Refusal(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"), "x")
    with pytest.raises(Violation, match=r"field step\.session_id"):
        expect_refusal(
            report,
            Refusal(grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND", field="step.session_id"),
            "x",
        )


def test_the_documentation_lists_every_check_in_order() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "conformance.md").read_text()
    documented = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", text, flags=re.MULTILINE)
    assert documented == [check.id for check in CHECKS]


@pytest.mark.parametrize(
    "module",
    [framework, model, statuses, conformance_env],
    ids=lambda module: module.__name__,
)
def test_docstring_examples(module: ModuleType) -> None:
    failures, attempted = doctest.testmod(module)
    assert attempted > 0
    assert failures == 0
