"""Results: batch layout, and the stream and unary forms giving the same bytes."""

from __future__ import annotations

from typing import Any, Final

from google.protobuf.message import Message

from gymrpc.conformance.framework import Violation, check
from gymrpc.conformance.model import ConformanceModel
from gymrpc.conformance.probe import SEED, Probe, stream_result
from gymrpc.conformance.wire import actions_value, encode_tensor, expect_reset, expect_step
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import tensor_pb2, value_pb2

__all__ = ["batches", "stream_matches_unary"]

_ACTIONS: Final = ([0, 1, 2], [2, 2, 2], [1, 0, 1], [2, 1, 0], [0, 0, 0], [1, 1, 1], [2, 0, 2])


@check(
    "data.batches",
    rule="env_service.proto, Batches and Info dicts; StepResponse; tensor.proto",
    title="results are struct-of-arrays batches: observations int64 (num_envs, 2), rewards "
    "float64, flags bool, info keys with bool masks; values as documented",
)
def batches(probe: Probe) -> None:
    """Reset and step a batch of 3 on the unary calls and on the stream."""
    session = probe.create(num_envs=3)
    model = ConformanceModel(3)
    probe.reset(session, model)
    for actions in _ACTIONS[:3]:
        probe.step(session, model, actions)
    other = probe.create(num_envs=3)
    model = ConformanceModel(3)
    stream = probe.stream()
    subject = "stream reset"
    response = stream.request(
        1, subject, reset=pb.ResetRequest(session_id=other.session_id, seed=SEED)
    )
    expect_reset(stream_result(response, "reset", subject), model.reset(SEED), subject)
    for sequence, actions in enumerate(_ACTIONS[:3], start=2):
        subject = f"stream step {sequence} {actions}"
        request = pb.StepRequest(session_id=other.session_id, actions=actions_value(actions))
        response = stream.request(sequence, subject, step=request)
        expect_step(stream_result(response, "step", subject), model.step(actions), subject)


def _first_difference(received: Message, expected: Message) -> str:
    """The first top-level field that differs, for the failure message."""
    names = {field.name for field, _ in received.ListFields()} | {
        field.name for field, _ in expected.ListFields()
    }
    for name in sorted(names):
        got: Any = getattr(received, name)
        want: Any = getattr(expected, name)
        if got != want:
            return f"field {name}: {str(got).strip()[:120]!r} vs {str(want).strip()[:120]!r}"
    return "the same fields, different bytes"


def _identical(stream_message: Message, unary_message: Message, subject: str) -> None:
    same_bytes = stream_message.SerializeToString(deterministic=True) == (
        unary_message.SerializeToString(deterministic=True)
    )
    if stream_message != unary_message or not same_bytes:
        difference = _first_difference(stream_message, unary_message)
        raise Violation(
            subject,
            received=f"a stream result differing from the unary one ({difference})",
            expected="identical results for the same seeds and actions",
            rule="env_service.proto, Reset and Step (unary forms of a stream reset and step)",
        )


@check(
    "data.stream_matches_unary",
    rule="env_service.proto, Reset, Step and StreamSession",
    title="two sessions, one driven on the stream and one with unary calls, give "
    "byte-identical results for the same seeds, masks and actions",
)
def stream_matches_unary(probe: Probe) -> None:
    """Drive twin sessions through episode ends and a masked reset; compare every result."""
    options = {"episode_length": value_pb2.Value(int_value=3)}
    on_stream = probe.create(num_envs=3, options=options)
    unary = probe.create(num_envs=3, options=options)
    stream = probe.stream()
    sequence = 1
    subject = "Reset(seed) on both forms"
    response = stream.request(
        sequence, subject, reset=pb.ResetRequest(session_id=on_stream.session_id, seed=SEED)
    )
    unary_reset = probe.call("Reset", pb.ResetRequest(session_id=unary.session_id, seed=SEED))
    _identical(stream_result(response, "reset", subject), unary_reset, subject)
    for index, actions in enumerate(_ACTIONS):
        sequence += 1
        subject = f"step {index + 1} {actions} on both forms"
        if index == 4:
            mask = encode_tensor([False, True, False], tensor_pb2.DATA_TYPE_BOOL)
            response = stream.request(
                sequence,
                "masked reset on both forms",
                reset=pb.ResetRequest(session_id=on_stream.session_id, reset_mask=mask),
            )
            unary_reset = probe.call(
                "Reset", pb.ResetRequest(session_id=unary.session_id, reset_mask=mask)
            )
            _identical(stream_result(response, "reset", subject), unary_reset, "masked reset")
            sequence += 1
        response = stream.request(
            sequence,
            subject,
            step=pb.StepRequest(session_id=on_stream.session_id, actions=actions_value(actions)),
        )
        unary_step = probe.call(
            "Step", pb.StepRequest(session_id=unary.session_id, actions=actions_value(actions))
        )
        _identical(stream_result(response, "step", subject), unary_step, subject)
