"""Autoreset modes (env_service.proto, AutoresetMode), on the conformance environment.

Episodes of 2 steps, with sub-environment 1 reset one step later than sub-environment
0 so that they end on different steps: every mode's treatment of an ended
sub-environment is then visible next to one that did not end.
"""

from __future__ import annotations

from typing import Final

import grpc

from gymrpc.conformance.framework import Violation, check
from gymrpc.conformance.model import ConformanceModel
from gymrpc.conformance.probe import Probe, stream_error
from gymrpc.conformance.statuses import Refusal
from gymrpc.conformance.wire import actions_value, encode_tensor, expect_reset
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import tensor_pb2, value_pb2

__all__: list[str] = []

_LENGTH: Final = 2


def _session(probe: Probe, mode: pb.AutoresetMode.ValueType) -> tuple[pb.Session, ConformanceModel]:
    session = probe.create(
        num_envs=2,
        autoreset_mode=mode,
        options={"episode_length": value_pb2.Value(int_value=_LENGTH)},
    )
    if session.autoreset_mode != mode:
        raise Violation(
            f"CreateSession(autoreset_mode={pb.AutoresetMode.Name(mode)})",
            received=f"Session.autoreset_mode {pb.AutoresetMode.Name(session.autoreset_mode)}",
            expected="the mode asked for, reported back",
            rule="env_service.proto, AutoresetMode",
        )
    return session, ConformanceModel(2, episode_length=_LENGTH, autoreset_mode=mode)


def _masked_reset(
    probe: Probe, session: pb.Session, model: ConformanceModel, mask: list[bool]
) -> None:
    request = pb.ResetRequest(
        session_id=session.session_id,
        reset_mask=encode_tensor(mask, tensor_pb2.DATA_TYPE_BOOL),
    )
    expect_reset(probe.call("Reset", request), model.reset(None, mask), f"Reset(reset_mask={mask})")


def _staggered(
    probe: Probe, mode: pb.AutoresetMode.ValueType
) -> tuple[pb.Session, ConformanceModel]:
    """A session whose sub-environment 1 is one step behind sub-environment 0."""
    session, model = _session(probe, mode)
    probe.reset(session, model)
    probe.step(session, model, [1, 1])
    _masked_reset(probe, session, model, [False, True])
    return session, model


@check(
    "autoreset.disabled",
    rule="env_service.proto, AUTORESET_MODE_DISABLED; errors.proto table (EPISODE_ENDED)",
    title="DISABLED: stepping while a sub-environment ended unreset is FAILED_PRECONDITION "
    "EPISODE_ENDED (unary and stream) and changes nothing; a reset_mask reset resumes it",
)
def disabled(probe: Probe) -> None:
    """End one sub-environment's episode and step anyway."""
    session, model = _staggered(probe, pb.AUTORESET_MODE_DISABLED)
    probe.step(session, model, [2, 0], subject="the step ending sub-environment 0's episode")
    refusal = Refusal(grpc.StatusCode.FAILED_PRECONDITION, "EPISODE_ENDED")
    step = pb.StepRequest(session_id=session.session_id, actions=actions_value([1, 1]))
    probe.expect_refused("Step", step, refusal, "Step while sub-environment 0 has ended")
    stream = probe.stream()
    subject = "stream step while sub-environment 0 has ended"
    stream_error(stream.request(1, subject, step=step), refusal, subject)
    _masked_reset(probe, session, model, [True, False])
    probe.step(session, model, [0, 1], subject="the step after resetting sub-environment 0")
    probe.expect_refused("Step", step, refusal, "Step while sub-environment 1 has ended")
    _masked_reset(probe, session, model, [False, True])
    probe.step(session, model, [1, 2], subject="the step after resetting sub-environment 1")


@check(
    "autoreset.next_step",
    rule="env_service.proto, AUTORESET_MODE_NEXT_STEP",
    title="NEXT_STEP: the step after an episode ends resets that sub-environment (reward 0, "
    "flags false, reset info) and ignores its action; a reset in between cancels this",
)
def next_step(probe: Probe) -> None:
    """Step through staggered episode ends."""
    session, model = _staggered(probe, pb.AUTORESET_MODE_NEXT_STEP)
    for actions in ([2, 2], [2, 1], [1, 2], [0, 0]):
        probe.step(session, model, actions)
    _masked_reset(probe, session, model, [True, False])
    probe.step(session, model, [1, 1], subject="the step after a reset covering an ended one")


@check(
    "autoreset.same_step",
    rule="env_service.proto, AUTORESET_MODE_SAME_STEP",
    title="SAME_STEP: an ended sub-environment is reset within the step; final_obs and "
    "final_info carry its terminal observation and info, masked; no final_* keys otherwise",
)
def same_step(probe: Probe) -> None:
    """Step through staggered episode ends, reading final_obs and final_info."""
    session, model = _staggered(probe, pb.AUTORESET_MODE_SAME_STEP)
    for actions in ([2, 2], [2, 1], [1, 2], [0, 0], [1, 1]):
        probe.step(session, model, actions)
