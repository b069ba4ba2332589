"""The session stream: rules 1-7 of StreamSession (env_service.proto).

Every check here drives ``StreamSession`` request by request and reads the wire: the
echoed sequence numbers, what each refused request consumed, what a repeated request
is answered with, and the field paths rooted at the StreamSessionRequest.
"""

from __future__ import annotations

from typing import Final

import grpc

from gymrpc.conformance.framework import Violation, check
from gymrpc.conformance.model import ConformanceModel
from gymrpc.conformance.probe import SEED, Probe, SessionStream, stream_result
from gymrpc.conformance.probe import stream_error as _stream_error
from gymrpc.conformance.statuses import Refusal
from gymrpc.conformance.wire import actions_value, encode_tensor, expect_reset, expect_step
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import tensor_pb2, value_pb2

__all__: list[str] = []

_INVALID: Final = grpc.StatusCode.INVALID_ARGUMENT
_PATHS: Final = "env_service.proto, Field paths (rooted at the StreamSessionRequest)"


def _rule(numbers: str) -> str:
    return f"env_service.proto, StreamSession rule {numbers}"


class _Driver:
    """A session, its model and a stream, with the checks' common moves."""

    def __init__(self, probe: Probe, num_envs: int = 2) -> None:
        self.probe = probe
        self.session = probe.create(num_envs=num_envs)
        self.model = ConformanceModel(num_envs)
        self.stream = probe.stream()

    def step_request(self, actions: list[int]) -> pb.StepRequest:
        return pb.StepRequest(session_id=self.session.session_id, actions=actions_value(actions))

    def reset(
        self, sequence: int, seed: int = SEED, stream: SessionStream | None = None
    ) -> pb.StreamSessionResponse:
        subject = f"stream reset, sequence {sequence}"
        request = pb.ResetRequest(session_id=self.session.session_id, seed=seed)
        response = (stream or self.stream).request(sequence, subject, reset=request)
        expect_reset(stream_result(response, "reset", subject), self.model.reset(seed), subject)
        return response

    def step(
        self,
        sequence: int,
        actions: list[int],
        stream: SessionStream | None = None,
        subject: str = "",
    ) -> pb.StreamSessionResponse:
        subject = subject or f"stream step {actions}, sequence {sequence}"
        response = (stream or self.stream).request(
            sequence, subject, step=self.step_request(actions)
        )
        expect_step(stream_result(response, "step", subject), self.model.step(actions), subject)
        return response

    def last_sequence(self, subject: str, expected: int, rule: str) -> None:
        described = self.probe.call(
            "GetSession", pb.GetSessionRequest(session_id=self.session.session_id)
        )
        if described.session.last_sequence != expected:
            raise Violation(
                f"GetSession.last_sequence {subject}",
                received=str(described.session.last_sequence),
                expected=str(expected),
                rule=rule,
            )


def stream_error(
    response: pb.StreamSessionResponse, refusal: Refusal, subject: str, rule: str = ""
) -> None:
    """The error table's row, without the message wording (the errors.* checks' job)."""
    _stream_error(response, refusal, subject, rule, message_format=False)


def _remembered(
    response: pb.StreamSessionResponse,
    first: pb.StreamSessionResponse,
    subject: str,
    expected: str,
    rule: str,
) -> None:
    """Check that a repeated request was answered from memory: the response ``first`` got."""
    if response != first:
        raise Violation(
            subject,
            received=str(response).strip().replace("\n", " ")[:200],
            expected=expected,
            rule=rule,
        )


def _out_of_order(last: int, field: str = "sequence") -> Refusal:
    metadata = (("last_sequence", str(last)),) if field == "sequence" else ()
    return Refusal(_INVALID, "OUT_OF_ORDER", field=field, metadata=metadata)


@check(
    "stream.order",
    rule=_rule("1, 6 and 7"),
    title="pipelined requests get one response each, in order, echoing their sequence; "
    "half-close ends the stream OK; a new stream continues the session",
)
def order(probe: Probe) -> None:
    """Send five requests before reading any response."""
    driver = _Driver(probe)
    stream = driver.stream
    plan: list[tuple[int, list[int] | None]] = [
        (1, None),
        (2, [0, 1]),
        (3, [1, 2]),
        (4, [2, 0]),
        (5, [1, 1]),
    ]
    for sequence, actions in plan:
        if actions is None:
            stream.send(
                sequence, reset=pb.ResetRequest(session_id=driver.session.session_id, seed=SEED)
            )
        else:
            stream.send(sequence, step=driver.step_request(actions))
    for sequence, actions in plan:
        subject = f"pipelined request {sequence}"
        response = stream.receive(subject)
        if response.sequence != sequence:
            raise Violation(
                subject,
                received=f"the response to sequence {response.sequence}",
                expected=f"the response to {sequence} (responses in request order)",
                rule=_rule("1"),
            )
        if actions is None:
            expect_reset(
                stream_result(response, "reset", subject), driver.model.reset(SEED), subject
            )
        else:
            expect_step(
                stream_result(response, "step", subject), driver.model.step(actions), subject
            )
    code = stream.finish("half-close after 5 answered requests")
    if code is not grpc.StatusCode.OK:
        raise Violation(
            "half-close after 5 answered requests",
            received=code.name,
            expected="OK",
            rule=_rule("6"),
        )
    driver.step(6, [2, 2], stream=probe.stream(), subject="sequence 6 on a new stream")


@check(
    "stream.no_operation",
    rule=_rule("3a and 4"),
    title="a request with neither reset nor step is INVALID_ARGUMENT (field request) and "
    "consumes nothing, bound or not",
)
def no_operation(probe: Probe) -> None:
    """Send empty requests on a fresh stream and on a bound one."""
    driver = _Driver(probe)
    refusal = Refusal(_INVALID, "INVALID_ARGUMENT", field="request")
    subject = "a first request with neither reset nor step, sequence 1"
    stream_error(driver.stream.request(1, subject), refusal, subject, _rule("3a"))
    driver.reset(1)
    subject = "a request with neither reset nor step, sequence 2"
    stream_error(driver.stream.request(2, subject), refusal, subject, _rule("3a"))
    driver.step(2, [1, 0], subject="sequence 2 again, a step (the refusal consumed nothing)")


@check(
    "stream.binding",
    rule=_rule("2 and 3b"),
    title="a bound stream refuses a request naming another session with OUT_OF_ORDER "
    "(field step.session_id), consuming nothing and leaving the other session alone",
)
def binding(probe: Probe) -> None:
    """Name a second session on a stream bound to a first."""
    driver = _Driver(probe)
    other = probe.create(num_envs=2)
    driver.reset(1)
    subject = "sequence 2 naming another session on a bound stream"
    request = pb.StepRequest(session_id=other.session_id, actions=actions_value([0, 0]))
    response = driver.stream.request(2, subject, step=request)
    stream_error(response, _out_of_order(1, "step.session_id"), subject, _rule("3b"))
    driver.step(2, [1, 2], subject="sequence 2 again, on the bound session")
    described = probe.call("GetSession", pb.GetSessionRequest(session_id=other.session_id))
    if described.session.last_sequence != 0 or not described.session.needs_reset:
        raise Violation(
            "the other session after the refused request",
            received=f"last_sequence {described.session.last_sequence}, needs_reset "
            f"{described.session.needs_reset}",
            expected="last_sequence 0, needs_reset true (untouched)",
            rule=_rule("4"),
        )


@check(
    "stream.sequence",
    rule=_rule("3c and 4"),
    title="sequence numbers start above 0 and increase strictly per session on any stream: "
    "lower or equal numbers are OUT_OF_ORDER (field sequence, metadata last_sequence) and "
    "consume nothing",
)
def sequence(probe: Probe) -> None:
    """Send stale numbers on the same stream and on a new one."""
    driver = _Driver(probe)
    subject = "a first request with sequence 0"
    request = pb.ResetRequest(session_id=driver.session.session_id, seed=SEED)
    response = driver.stream.request(0, subject, reset=request)
    stream_error(response, _out_of_order(0), subject, _rule("3c"))
    driver.reset(5)
    driver.step(6, [1, 1])
    for stale in (4, 0):
        subject = f"a step with sequence {stale} after 6"
        response = driver.stream.request(stale, subject, step=driver.step_request([2, 2]))
        stream_error(response, _out_of_order(6), subject, _rule("3c"))
    subject = "a step with sequence 3 after 6, on a new stream"
    response = probe.stream().request(3, subject, step=driver.step_request([2, 2]))
    stream_error(response, _out_of_order(6), subject, _rule("3c"))
    driver.last_sequence("after the refused requests", 6, _rule("4"))
    driver.step(7, [0, 2], subject="sequence 7 after the refusals (nothing was stepped)")


@check(
    "stream.consumption",
    rule=_rule("4 and 5"),
    title="a request that passes the checks consumes its number even when it fails "
    "(INVALID_ACTION): the corrected request with that number is OUT_OF_ORDER, the identical "
    "one gets the same error again, the session did not change",
)
def consumption(probe: Probe) -> None:
    """Fail a step on its action and try to reuse its number."""
    driver = _Driver(probe)
    driver.reset(1)
    driver.step(2, [1, 1])
    bad = driver.step_request([0, 3])
    subject = "a step with actions [0, 3], sequence 3"
    first = driver.stream.request(3, subject, step=bad)
    stream_error(first, Refusal(_INVALID, "INVALID_ACTION", field="step.actions[1]"), subject)
    driver.last_sequence("after a request that failed at INVALID_ACTION", 3, _rule("4"))
    subject = "the corrected step, again with sequence 3"
    response = driver.stream.request(3, subject, step=driver.step_request([0, 2]))
    stream_error(response, _out_of_order(3), subject, _rule("3c and 4"))
    subject = "the failed step sent again unchanged, sequence 3"
    again = driver.stream.request(3, subject, step=bad)
    _remembered(again, first, subject, "the remembered error response, unchanged", _rule("5"))
    driver.step(4, [0, 2], subject="sequence 4 (the failed request changed nothing)")


@check(
    "stream.retry",
    rule=_rule("5 and 7"),
    title="a request repeated with the latest number and identical content, on the same or a "
    "new stream, is answered from memory and not run again",
)
def retry(probe: Probe) -> None:
    """Repeat a step after the stream that sent it has ended."""
    driver = _Driver(probe)
    driver.reset(1)
    first = driver.step(2, [2, 1])
    driver.stream.finish("half-close of the first stream")
    second = probe.stream()
    subject = "sequence 2 repeated identically on a new stream"
    replayed = second.request(2, subject, step=driver.step_request([2, 1]))
    _remembered(replayed, first, subject, "the response sequence 2 got the first time", _rule("5"))
    third = driver.step(3, [1, 1], stream=second, subject="sequence 3 (the retry was not run)")
    subject = "sequence 3 repeated identically on the same stream"
    response = second.request(3, subject, step=driver.step_request([1, 1]))
    _remembered(response, third, subject, "the remembered one", _rule("5"))


@check(
    "stream.retry_different",
    rule=_rule("3c"),
    title="the latest number repeated with different content is OUT_OF_ORDER (field sequence, "
    "metadata last_sequence), and the remembered response survives it",
)
def retry_different(probe: Probe) -> None:
    """Reuse the latest number for another request."""
    driver = _Driver(probe)
    driver.reset(1)
    first = driver.step(2, [0, 1])
    subject = "sequence 2 repeated with actions [1, 1] instead of [0, 1]"
    response = driver.stream.request(2, subject, step=driver.step_request([1, 1]))
    stream_error(response, _out_of_order(2), subject, _rule("3c"))
    subject = "sequence 2 repeated identically after that refusal"
    response = driver.stream.request(2, subject, step=driver.step_request([0, 1]))
    _remembered(response, first, subject, "the remembered one", _rule("5"))
    driver.step(3, [2, 2], subject="sequence 3 (nothing was run twice)")


@check(
    "stream.unary_forgets",
    rule=_rule("5"),
    title="a unary Step between stream requests consumes no number and forgets the remembered "
    "response: repeating the latest number is then OUT_OF_ORDER",
)
def unary_forgets(probe: Probe) -> None:
    """Step with the unary call between stream requests."""
    driver = _Driver(probe)
    driver.reset(1)
    driver.step(2, [1, 0])
    probe.step(driver.session, driver.model, [2, 2], subject="a unary Step after sequence 2")
    driver.last_sequence("after a unary Step", 2, _rule("5"))
    subject = "sequence 2 repeated identically after the unary Step"
    response = driver.stream.request(2, subject, step=driver.step_request([1, 0]))
    stream_error(response, _out_of_order(2), subject, _rule("3c and 5"))
    driver.step(3, [0, 0], subject="sequence 3 after the unary Step")


@check(
    "stream.field_paths",
    rule="env_service.proto, Field paths (rooted at the StreamSessionRequest on the stream)",
    title="errors on the stream name fields from the stream request: step.actions[1], "
    "reset.reset_mask, reset.seeds..., reset.options...; nothing changes",
)
def field_paths(probe: Probe) -> None:
    """Provoke field errors on the stream and read their paths."""
    driver = _Driver(probe)
    driver.reset(1)
    sid = driver.session.session_id
    bool_ = tensor_pb2.DATA_TYPE_BOOL
    options = pb.ResetRequest(session_id=sid)
    options.options["conformance"].CopyFrom(value_pb2.Value())
    cases: list[tuple[pb.StepRequest | pb.ResetRequest, Refusal, str]] = [
        (
            driver.step_request([0, 3]),
            Refusal(_INVALID, "INVALID_ACTION", field="step.actions[1]"),
            "step actions [0, 3]",
        ),
        (
            pb.StepRequest(
                session_id=sid, actions=actions_value([0, 1], tensor_pb2.DATA_TYPE_INT32)
            ),
            Refusal(_INVALID, "INVALID_ACTION", field_under="step.actions"),
            "int32 step actions",
        ),
        (
            pb.ResetRequest(session_id=sid, reset_mask=encode_tensor([False, False], bool_)),
            Refusal(_INVALID, "INVALID_RESET_MASK", field="reset.reset_mask"),
            "a reset with an all-false mask",
        ),
        (
            pb.ResetRequest(
                session_id=sid, reset_mask=tensor_pb2.Tensor(dtype=bool_, shape=[2], data=b"\x01")
            ),
            Refusal(_INVALID, "INVALID_TENSOR", field_under="reset.reset_mask"),
            "a reset mask of 1 byte for shape [2]",
        ),
        (
            pb.ResetRequest(
                session_id=sid,
                seeds=pb.PerEnvSeeds(values=encode_tensor([1, 2, 3], tensor_pb2.DATA_TYPE_UINT64)),
            ),
            Refusal(_INVALID, "INVALID_SEED", field_under="reset.seeds"),
            "a reset with 3 seeds for 2 sub-environments",
        ),
        (
            options,
            Refusal(_INVALID, "INVALID_VALUE", field_under="reset.options.conformance"),
            "a reset option with no kind",
        ),
    ]
    for sequence, (request, refusal, what) in enumerate(cases, start=2):
        subject = f"{what}, sequence {sequence}"
        kind = "step" if isinstance(request, pb.StepRequest) else "reset"
        response = driver.stream.request(sequence, subject, **{kind: request})  # type: ignore[arg-type]
        stream_error(response, refusal, subject, _PATHS)
    driver.step(len(cases) + 2, [1, 2], subject="a valid step after the refused requests")
