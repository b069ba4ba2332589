"""Session life cycle: CreateSession, GetSession, CloseSession, and NOT_FOUND after close."""

from __future__ import annotations

from typing import Final

import grpc

from gymrpc.conformance.checks.catalogue import expect_conformance_spaces
from gymrpc.conformance.framework import Violation, check
from gymrpc.conformance.model import DEFAULT_EPISODE_LENGTH, ConformanceModel
from gymrpc.conformance.probe import Probe, stream_error, stream_result
from gymrpc.conformance.statuses import Refusal
from gymrpc.conformance.wire import actions_value, expect_reset
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import value_pb2

__all__ = ["close_with_open_stream", "lifecycle"]

_RULE: Final = "env_service.proto, CreateSession, Session, GetSession and CloseSession"
_PATHS: Final = "env_service.proto, Field paths (the stream's root) and StreamSession rule 3b"


def _expect(session: pb.Session, subject: str, **fields: object) -> None:
    for name, want in fields.items():
        got = getattr(session, name)
        if got != want:
            raise Violation(
                f"{subject}: {name}", received=repr(got), expected=repr(want), rule=_RULE
            )


def _not_found(session_id: str, field: str = "session_id") -> Refusal:
    return Refusal(
        grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND", field=field, mentions=(session_id,)
    )


@check(
    "session.lifecycle",
    rule=_RULE,
    title="create, describe, reset, close; every later request on the session is NOT_FOUND",
)
def lifecycle(probe: Probe) -> None:
    """Follow one session from creation to NOT_FOUND."""
    session = probe.create(num_envs=2)
    subject = "CreateSession(num_envs=2)"
    if not session.session_id:
        raise Violation(subject, received="an empty session_id", expected="an id", rule=_RULE)
    _expect(
        session,
        subject,
        env_id=probe.target.env_id,
        num_envs=2,
        autoreset_mode=pb.AUTORESET_MODE_NEXT_STEP,  # UNSPECIFIED means NEXT_STEP
        needs_reset=True,
        last_sequence=0,
        max_episode_steps=0,
    )
    if session.vectorization_mode == pb.VECTORIZATION_MODE_UNSPECIFIED:
        raise Violation(
            f"{subject}: vectorization_mode",
            received="VECTORIZATION_MODE_UNSPECIFIED",
            expected="the mode in force (never UNSPECIFIED)",
            rule=_RULE,
        )
    expect_conformance_spaces(
        session.single_observation_space, session.single_action_space, subject, rule=_RULE
    )
    in_force = {
        "episode_length": value_pb2.Value(int_value=DEFAULT_EPISODE_LENGTH),
        "expose_hidden_state": value_pb2.Value(bool_value=False),
    }
    for name, value in in_force.items():
        if session.env_options.get(name) != value:
            raise Violation(
                f"{subject}: env_options",
                received=f"{name} = {str(session.env_options.get(name)).strip() or 'missing'}",
                expected=f"the options in force, defaults included ({name} = {str(value).strip()})",
                rule=_RULE,
            )
    described = probe.call("GetSession", pb.GetSessionRequest(session_id=session.session_id))
    # GetSession adds the environments' seeds (Session.np_random_seed), which
    # CreateSession leaves out; everything else is the same.
    described.session.ClearField("np_random_seed")
    if described.session != session:
        raise Violation(
            "GetSession of a new session",
            received=str(described.session).replace("\n", " ")[:300],
            expected="the Session CreateSession returned (np_random_seed aside)",
            rule=_RULE,
        )
    other = probe.create(
        num_envs=1,
        autoreset_mode=pb.AUTORESET_MODE_DISABLED,
        options={"episode_length": value_pb2.Value(int_value=3)},
    )
    _expect(
        other,
        "CreateSession(DISABLED, episode_length=3)",
        autoreset_mode=pb.AUTORESET_MODE_DISABLED,
    )
    if other.session_id == session.session_id:
        raise Violation(
            "two CreateSession calls",
            received="the same session_id",
            expected="distinct ids",
            rule=_RULE,
        )
    if other.env_options.get("episode_length") != value_pb2.Value(int_value=3):
        raise Violation(
            "CreateSession(episode_length=3): env_options.episode_length",
            received=str(other.env_options.get("episode_length")).strip(),
            expected="int_value: 3",
            rule=_RULE,
        )
    probe.reset(session, ConformanceModel(2))
    after_reset = probe.call("GetSession", pb.GetSessionRequest(session_id=session.session_id))
    _expect(after_reset.session, "GetSession after a reset", needs_reset=False)
    probe.call("CloseSession", pb.CloseSessionRequest(session_id=session.session_id))
    session_id = session.session_id
    requests = (
        ("GetSession", pb.GetSessionRequest(session_id=session_id)),
        ("Reset", pb.ResetRequest(session_id=session_id, seed=1)),
        ("Step", pb.StepRequest(session_id=session_id, actions=actions_value([0, 0]))),
        ("CloseSession", pb.CloseSessionRequest(session_id=session_id)),
    )
    for method, request in requests:
        probe.expect_refused(
            method, request, _not_found(session_id), f"{method} after CloseSession"
        )


@check(
    "session.close",
    rule="env_service.proto, CloseSession and StreamSession rules 3b and 6; Field paths",
    title="closing a session under an open stream: its requests get SESSION_NOT_FOUND "
    "(field step.session_id), the stream goes on and ends OK",
)
def close_with_open_stream(probe: Probe) -> None:
    """Close a session while a stream is bound to it."""
    session = probe.create(num_envs=2)
    model = ConformanceModel(2)
    stream = probe.stream()
    reset = pb.ResetRequest(session_id=session.session_id, seed=7)
    response = stream.request(1, "stream reset", reset=reset)
    expect_reset(stream_result(response, "reset", "stream reset"), model.reset(7), "stream reset")
    probe.call("CloseSession", pb.CloseSessionRequest(session_id=session.session_id))
    step = pb.StepRequest(session_id=session.session_id, actions=actions_value([0, 1]))
    for sequence in (2, 3):
        subject = f"stream step {sequence} after CloseSession"
        response = stream.request(sequence, subject, step=step)
        stream_error(response, _not_found(session.session_id, "step.session_id"), subject, _PATHS)
    code = stream.finish("half-close after the errors")
    if code is not grpc.StatusCode.OK:
        raise Violation(
            "half-close after the errors",
            received=f"the stream ending {code.name}",
            expected="OK",
            rule="env_service.proto, StreamSession rule 6",
        )
    fresh = probe.stream()
    subject = "a new stream's first request on the closed session"
    response = fresh.request(4, subject, reset=reset)
    stream_error(response, _not_found(session.session_id, "reset.session_id"), subject, _PATHS)
