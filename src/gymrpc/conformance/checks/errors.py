"""The error table of errors.proto: every row a client can provoke, and the error model.

Each check sends requests that the table says must be refused, and checks the code,
the ErrorInfo reason and field path, the details and the message (errors.proto, "The
error model"), then that the refused request changed nothing: the next valid step
gives exactly the documented result, or no session was created.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Final, cast

import grpc

from gymrpc.conformance.framework import Skipped, Violation, check
from gymrpc.conformance.model import ConformanceModel
from gymrpc.conformance.probe import SEED, Probe, stream_error, stream_result
from gymrpc.conformance.statuses import ErrorReport, Refusal, check_model, expect_refusal
from gymrpc.conformance.wire import actions_value, encode_tensor, expect_reset, expect_step
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import tensor_pb2, value_pb2

__all__: list[str] = []

_TABLE: Final = "errors.proto, the error table"
_INVALID: Final = grpc.StatusCode.INVALID_ARGUMENT
_UNCHANGED: Final = "errors.proto: a rejected request changes nothing on the server"
# DataType values a receiver must reject: UNSPECIFIED, and a number the schema lacks.
_UNDEFINED: Final = (
    tensor_pb2.DATA_TYPE_UNSPECIFIED,
    cast(tensor_pb2.DataType.ValueType, 99),
)


def _ready(probe: Probe, num_envs: int = 2) -> tuple[pb.Session, ConformanceModel]:
    """A session that was reset and stepped once."""
    session = probe.create(num_envs=num_envs)
    model = ConformanceModel(num_envs)
    probe.reset(session, model)
    probe.step(session, model, [1] * num_envs)
    return session, model


def _open_sessions(probe: Probe) -> int:
    info: pb.GetServerInfoResponse = probe.call("GetServerInfo", pb.GetServerInfoRequest())
    return info.usage.open_sessions


def _refuse_creations(
    probe: Probe, cases: Iterable[tuple[pb.CreateSessionRequest, Refusal, str]]
) -> None:
    """CreateSession requests that must be refused, and must not create a session."""
    before = _open_sessions(probe)
    for request, refusal, subject in cases:
        probe.expect_refused("CreateSession", request, refusal, subject)
    after = _open_sessions(probe)
    if after != before:
        raise Violation(
            "GetServerInfo usage.open_sessions around refused CreateSession calls",
            received=f"{before} before, {after} after",
            expected="no change",
            rule=_UNCHANGED,
        )


def _create_request(
    probe: Probe, num_envs: int = 1, **options: value_pb2.Value
) -> pb.CreateSessionRequest:
    """A CreateSession request for the conformance environment."""
    request = pb.CreateSessionRequest(env_id=probe.target.env_id, num_envs=num_envs)
    for name, value in options.items():
        request.env_options[name].CopyFrom(value)
    return request


def _brief(request: object) -> str:
    """A request in one short line, for failure messages."""
    return " ".join(str(request).split())[:80]


@check(
    "errors.model",
    rule="errors.proto, The error model",
    title="errors of every code carry a google.rpc.Status with one ErrorInfo (domain "
    "gymrpc.v1), BadRequest / QuotaFailure / ResourceInfo as the code requires, a one-line "
    "message starting with the field path; on calls and on the stream",
)
def error_model(probe: Probe) -> None:
    """Provoke one error of each code a client can cause and check only the model."""
    samples: list[tuple[str, object]] = [
        ("GetSession", pb.GetSessionRequest(session_id="conformance-kit-missing")),
        ("CreateSession", _create_request(probe, num_envs=0)),
    ]
    limit = probe.server_info().limits.max_num_envs
    if limit < 2**32 - 1:
        samples.append(("CreateSession", _create_request(probe, num_envs=limit + 1)))
    session = probe.create(num_envs=1)
    samples.append(
        ("Step", pb.StepRequest(session_id=session.session_id, actions=actions_value([0])))
    )
    for method, request in samples:
        subject = f"{method}({_brief(request)})"
        check_model(probe.refused(method, request, subject), subject)
    stream = probe.stream()
    subject = "a stream step before any reset"
    response = stream.request(
        1, subject, step=pb.StepRequest(session_id=session.session_id, actions=actions_value([0]))
    )
    if response.WhichOneof("response") != "error":
        raise Violation(subject, received="a result", expected="an error response", rule=_TABLE)
    check_model(ErrorReport.from_status(response.error), subject)


@check(
    "errors.empty_session_id",
    rule="errors.proto table (INVALID_ARGUMENT: an empty session_id); StreamSession rule 3b",
    title="an empty session_id is INVALID_ARGUMENT (not NOT_FOUND) on every call and on the "
    "stream (field reset.session_id / step.session_id), consuming no sequence number",
)
def empty_session_id(probe: Probe) -> None:
    """Send every session request with ``session_id`` empty."""
    session, model = _ready(probe)
    refusal = Refusal(_INVALID, "INVALID_ARGUMENT", field="session_id")
    requests = (
        ("GetSession", pb.GetSessionRequest()),
        ("CloseSession", pb.CloseSessionRequest()),
        ("Reset", pb.ResetRequest(seed=1)),
        ("Step", pb.StepRequest(actions=actions_value([0, 0]))),
    )
    for method, request in requests:
        probe.expect_refused(method, request, refusal, f"{method} with session_id ''")
    probe.expect_unchanged(session, model, "requests with an empty session_id")
    stream = probe.stream()
    for kind, request in (
        ("reset", pb.ResetRequest(seed=1)),
        ("step", pb.StepRequest(actions=actions_value([0, 0]))),
    ):
        subject = f"stream {kind} with session_id ''"
        response = stream.request(1, subject, **{kind: request})  # type: ignore[arg-type]
        stream_error(
            response,
            Refusal(_INVALID, "INVALID_ARGUMENT", field=f"{kind}.session_id"),
            subject,
            rule=_TABLE + "; env_service.proto, StreamSession rule 3b",
        )
    actions = [2, 2]
    subject = "sequence 1 again, on the real session (the refusals consumed nothing)"
    response = stream.request(
        1,
        subject,
        step=pb.StepRequest(session_id=session.session_id, actions=actions_value(actions)),
    )
    expect_step(stream_result(response, "step", subject), model.step(actions), subject)


@check(
    "errors.session_not_found",
    rule="errors.proto table (NOT_FOUND / SESSION_NOT_FOUND); StreamSession rule 3b",
    title="an unknown session id is NOT_FOUND SESSION_NOT_FOUND with ResourceInfo, on every "
    "call and as a stream's first request",
)
def session_not_found(probe: Probe) -> None:
    """Name a session that never existed."""
    missing = f"conformance-kit-no-such-session-{secrets.token_hex(8)}"
    refusal = Refusal(
        grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND", field="session_id", mentions=(missing,)
    )
    requests = (
        ("GetSession", pb.GetSessionRequest(session_id=missing)),
        ("CloseSession", pb.CloseSessionRequest(session_id=missing)),
        ("Reset", pb.ResetRequest(session_id=missing, seed=1)),
        ("Step", pb.StepRequest(session_id=missing, actions=actions_value([0, 0]))),
    )
    for method, request in requests:
        probe.expect_refused(method, request, refusal, f"{method} of an unknown session")
    session = probe.create(num_envs=2)
    model = ConformanceModel(2)
    stream = probe.stream()
    subject = "a stream's first request naming an unknown session"
    response = stream.request(1, subject, reset=pb.ResetRequest(session_id=missing, seed=1))
    stream_error(
        response,
        Refusal(
            grpc.StatusCode.NOT_FOUND,
            "SESSION_NOT_FOUND",
            field="reset.session_id",
            mentions=(missing,),
        ),
        subject,
    )
    subject = "then sequence 1 on a real session (the stream goes on, unbound)"
    response = stream.request(
        1, subject, reset=pb.ResetRequest(session_id=session.session_id, seed=SEED)
    )
    expect_reset(stream_result(response, "reset", subject), model.reset(SEED), subject)


@check(
    "errors.env_not_found",
    rule="errors.proto table (NOT_FOUND / ENV_NOT_FOUND)",
    title="an unknown env_id is NOT_FOUND ENV_NOT_FOUND (field env_id, ResourceInfo); no "
    "session is created",
)
def env_not_found(probe: Probe) -> None:
    """Ask for an environment nobody registers."""
    env_id = "gymrpc/ConformanceNoSuchEnvironment-v0"
    request = pb.CreateSessionRequest(env_id=env_id, num_envs=1)
    refusal = Refusal(
        grpc.StatusCode.NOT_FOUND, "ENV_NOT_FOUND", field="env_id", mentions=(env_id,)
    )
    _refuse_creations(probe, [(request, refusal, f"CreateSession(env_id={env_id!r})")])


@check(
    "errors.invalid_num_envs",
    rule="errors.proto table (INVALID_ARGUMENT / INVALID_NUM_ENVS)",
    title="num_envs 0 is INVALID_ARGUMENT INVALID_NUM_ENVS, field num_envs",
)
def invalid_num_envs(probe: Probe) -> None:
    """Ask for a batch of no environments."""
    request = _create_request(probe, num_envs=0)
    refusal = Refusal(_INVALID, "INVALID_NUM_ENVS", field="num_envs")
    _refuse_creations(probe, [(request, refusal, "CreateSession(num_envs=0)")])


@check(
    "errors.num_envs_limit",
    rule="errors.proto table (RESOURCE_EXHAUSTED / NUM_ENVS_LIMIT); ServerLimits.max_num_envs",
    title="num_envs one above limits.max_num_envs is RESOURCE_EXHAUSTED NUM_ENVS_LIMIT with "
    "QuotaFailure, field num_envs",
)
def num_envs_limit(probe: Probe) -> None:
    """Ask for one sub-environment more than the server's reported limit."""
    limit = probe.server_info().limits.max_num_envs
    if limit >= 2**32 - 1:
        raise Skipped("limits.max_num_envs is the largest uint32: no request can exceed it")
    request = _create_request(probe, num_envs=limit + 1)
    refusal = Refusal(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "NUM_ENVS_LIMIT",
        field="num_envs",
        mentions=(str(limit + 1),),
    )
    _refuse_creations(probe, [(request, refusal, f"CreateSession(num_envs={limit + 1})")])


@check(
    "errors.invalid_option",
    rule="errors.proto table (INVALID_ARGUMENT / INVALID_OPTION); Field paths",
    title="unknown, ill-typed and out-of-range env options are INVALID_OPTION naming "
    "env_options.<name> (quoted in brackets when the name needs it)",
)
def invalid_option(probe: Probe) -> None:
    """Create sessions with bad options."""

    def case(
        name: str, value: value_pb2.Value, field: str, *mentions: str
    ) -> tuple[pb.CreateSessionRequest, Refusal, str]:
        request = _create_request(probe, num_envs=1, **{name: value})
        refusal = Refusal(_INVALID, "INVALID_OPTION", field=field, mentions=mentions)
        return request, refusal, f"CreateSession(env_options={{{name!r}: {str(value).strip()}}})"

    _refuse_creations(
        probe,
        [
            case(
                "no_such_option",
                value_pb2.Value(int_value=1),
                "env_options.no_such_option",
                "no_such_option",
            ),
            case(
                "no such option",
                value_pb2.Value(int_value=1),
                'env_options["no such option"]',
                "no such option",
            ),
            case(
                "episode_length",
                value_pb2.Value(string_value="five"),
                "env_options.episode_length",
                "five",
            ),
            case("episode_length", value_pb2.Value(int_value=0), "env_options.episode_length"),
            case(
                "episode_length",
                value_pb2.Value(int_value=101),
                "env_options.episode_length",
                "101",
            ),
        ],
    )


@check(
    "errors.unknown_enum",
    rule="errors.proto table (INVALID_ARGUMENT: an unknown enum value)",
    title="an autoreset_mode or vectorization_mode the schema does not define is "
    "INVALID_ARGUMENT naming the field",
)
def unknown_enum(probe: Probe) -> None:
    """Send enum numbers no version of the schema defines."""
    cases = []
    for field in ("autoreset_mode", "vectorization_mode"):
        request = _create_request(probe, num_envs=1)
        setattr(request, field, 97)
        cases.append(
            (
                request,
                Refusal(_INVALID, "INVALID_ARGUMENT", field=field),
                f"CreateSession({field}=97)",
            )
        )
    _refuse_creations(probe, cases)


@check(
    "errors.permission_denied",
    rule="errors.proto table (PERMISSION_DENIED); OptionSpec.privileged",
    title="a non-admin setting the privileged option expose_hidden_state is PERMISSION_DENIED "
    "(field env_options.expose_hidden_state); setting it to its default is allowed",
)
def permission_denied(probe: Probe) -> None:
    """Ask for hidden state as an ordinary user."""
    if probe.server_info().identity.role == pb.ROLE_ADMIN:
        raise Skipped("the caller is an admin; run the kit with a user's token to check this")
    request = _create_request(
        probe, num_envs=1, expose_hidden_state=value_pb2.Value(bool_value=True)
    )
    refusal = Refusal(
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
        field="env_options.expose_hidden_state",
    )
    _refuse_creations(
        probe, [(request, refusal, "CreateSession(expose_hidden_state=True) as a user")]
    )
    session = probe.create(
        num_envs=1, options={"expose_hidden_state": value_pb2.Value(bool_value=False)}
    )
    probe.reset(
        session, ConformanceModel(1), subject="Reset of a session with expose_hidden_state=False"
    )


@check(
    "errors.unauthenticated",
    rule="errors.proto table (UNAUTHENTICATED); env_service.proto, Authentication",
    title="with tokens configured, calls and streams without a valid bearer token are "
    "UNAUTHENTICATED (the stream ends with that status)",
    needs_handshake=False,
)
def unauthenticated(probe: Probe) -> None:
    """Call without a token, and with a wrong one."""
    try:
        info = probe.call("GetServerInfo", pb.GetServerInfoRequest(), authenticated=False)
    except grpc.RpcError:
        info = None
    if info is not None:
        if "auth" in info.capabilities:
            raise Violation(
                "GetServerInfo without a token",
                received="a success from a server announcing 'auth'",
                expected="UNAUTHENTICATED",
                rule="env_service.proto, Authentication",
            )
        raise Skipped("the server requires no token (no 'auth' capability)")
    refusal = Refusal(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
    requests = (
        ("GetServerInfo", pb.GetServerInfoRequest()),
        ("ListEnvironments", pb.ListEnvironmentsRequest()),
        ("CreateSession", _create_request(probe, num_envs=1)),
    )
    for method, request in requests:
        subject = f"{method} without a token"
        expect_refusal(
            probe.refused(method, request, subject, authenticated=False), refusal, subject
        )
        subject = f"{method} with a wrong token"
        wrong = f"conformance-kit-wrong-{secrets.token_hex(8)}"
        expect_refusal(probe.refused(method, request, subject, token=wrong), refusal, subject)
    stream = probe.stream(authenticated=False)
    stream.send(1, reset=pb.ResetRequest(session_id="conformance-kit-any", seed=1))
    subject = "a stream without a token"
    try:
        stream.receive(subject)
    except Violation as ended:
        if "end of the stream" not in ended.received:
            raise
    else:
        raise Violation(
            subject,
            received="a response",
            expected="the stream ending UNAUTHENTICATED",
            rule=_TABLE,
        )
    error = stream.ending_error()
    if error is None:
        raise Violation(subject, received="an OK end", expected="UNAUTHENTICATED", rule=_TABLE)
    expect_refusal(error, refusal, subject, "env_service.proto, StreamSession rule 6")


def _refuse_on_session(
    probe: Probe,
    session: pb.Session,
    model: ConformanceModel,
    cases: Iterable[tuple[str, object, Refusal, str]],
) -> None:
    """Send requests that must be refused; after each, check the session did not change."""
    for method, request, refusal, subject in cases:
        probe.expect_refused(method, request, refusal, subject)
        probe.expect_unchanged(session, model, subject)


@check(
    "errors.invalid_tensor",
    rule="errors.proto table (INVALID_ARGUMENT / INVALID_TENSOR); tensor.proto",
    title="malformed tensors (byte length, unknown dtype, negative dimension, bool byte 2) "
    "are INVALID_TENSOR naming the tensor; nothing changes",
)
def invalid_tensor(probe: Probe) -> None:
    """Send tensors that break each encoding rule."""
    session, model = _ready(probe)
    sid = session.session_id
    int64 = tensor_pb2.DATA_TYPE_INT64

    def step(tensor: tensor_pb2.Tensor, what: str) -> tuple[str, object, Refusal, str]:
        request = pb.StepRequest(session_id=sid, actions=value_pb2.Value(array_value=tensor))
        return (
            "Step",
            request,
            Refusal(_INVALID, "INVALID_TENSOR", field_under="actions"),
            f"Step with {what}",
        )

    mask = tensor_pb2.Tensor(dtype=tensor_pb2.DATA_TYPE_BOOL, shape=[2], data=b"\x01\x02")
    _refuse_on_session(
        probe,
        session,
        model,
        [
            step(
                tensor_pb2.Tensor(dtype=int64, shape=[2], data=b"\x00" * 15),
                "actions of 15 bytes for 2 int64",
            ),
            step(
                tensor_pb2.Tensor(dtype=_UNDEFINED[0], shape=[2], data=b"\x00" * 16),
                "actions of DATA_TYPE_UNSPECIFIED",
            ),
            step(
                tensor_pb2.Tensor(dtype=_UNDEFINED[1], shape=[2], data=b"\x00" * 16),
                "actions of dtype 99",
            ),
            step(tensor_pb2.Tensor(dtype=int64, shape=[-2], data=b""), "actions of shape [-2]"),
            (
                "Reset",
                pb.ResetRequest(session_id=sid, reset_mask=mask),
                Refusal(_INVALID, "INVALID_TENSOR", field_under="reset_mask"),
                "Reset with a bool reset_mask holding the byte 2",
            ),
        ],
    )


@check(
    "errors.invalid_value",
    rule="errors.proto table (INVALID_ARGUMENT / INVALID_VALUE); value.proto",
    title="a Value with no kind, or a ValueMap with a duplicate key, is INVALID_VALUE naming "
    "it; nothing changes",
)
def invalid_value(probe: Probe) -> None:
    """Send malformed Values as actions, reset options and env options."""
    session, model = _ready(probe)
    sid = session.session_id
    reset = pb.ResetRequest(session_id=sid)
    reset.options["conformance"].CopyFrom(value_pb2.Value())
    _refuse_on_session(
        probe,
        session,
        model,
        [
            (
                "Step",
                pb.StepRequest(session_id=sid, actions=value_pb2.Value()),
                Refusal(_INVALID, "INVALID_VALUE", field="actions"),
                "Step with actions = a Value with no kind",
            ),
            (
                "Reset",
                reset,
                Refusal(_INVALID, "INVALID_VALUE", field_under="options.conformance"),
                "Reset with the option 'conformance' = a Value with no kind",
            ),
        ],
    )
    duplicate = value_pb2.Value()
    for item in (1, 2):
        duplicate.dict_value.entries.add(key="twice").value.int_value = item
    request = _create_request(probe, num_envs=1, episode_length=duplicate)
    refusal = Refusal(_INVALID, "INVALID_VALUE", field_under="env_options.episode_length")
    _refuse_creations(
        probe, [(request, refusal, "CreateSession with a dict option holding a key twice")]
    )


@check(
    "errors.invalid_action",
    rule="errors.proto table (INVALID_ARGUMENT / INVALID_ACTION); StepRequest.actions; Field paths",
    title="actions outside Discrete(3) name the sub-environment (actions[i]); wrong dtype, "
    "count or kind name actions; nothing is stepped",
)
def invalid_action(probe: Probe) -> None:
    """Send actions that do not fit the batched action space."""
    session, model = _ready(probe, num_envs=3)
    sid = session.session_id

    def case(
        value: value_pb2.Value, refusal: Refusal, what: str
    ) -> tuple[str, object, Refusal, str]:
        return "Step", pb.StepRequest(session_id=sid, actions=value), refusal, f"Step with {what}"

    floats = value_pb2.Value(
        array_value=encode_tensor([0.0, 1.0, 2.0], tensor_pb2.DATA_TYPE_FLOAT64)
    )
    _refuse_on_session(
        probe,
        session,
        model,
        [
            case(
                actions_value([0, 3, 1]),
                Refusal(_INVALID, "INVALID_ACTION", field="actions[1]", mentions=("3",)),
                "actions [0, 3, 1]",
            ),
            case(
                actions_value([-1, 0, 0]),
                Refusal(_INVALID, "INVALID_ACTION", field="actions[0]", mentions=("-1",)),
                "actions [-1, 0, 0]",
            ),
            case(
                actions_value([0, 1, 2], tensor_pb2.DATA_TYPE_INT32),
                Refusal(_INVALID, "INVALID_ACTION", field_under="actions"),
                "int32 actions",
            ),
            case(
                actions_value([0, 1]),
                Refusal(_INVALID, "INVALID_ACTION", field_under="actions"),
                "2 actions for 3 sub-environments",
            ),
            case(
                floats,
                Refusal(_INVALID, "INVALID_ACTION", field_under="actions"),
                "float64 actions",
            ),
            case(
                value_pb2.Value(int_value=1),
                Refusal(_INVALID, "INVALID_ACTION", field_under="actions"),
                "an int_value instead of an array",
            ),
        ],
    )


@check(
    "errors.invalid_reset_mask",
    rule="errors.proto table (INVALID_ARGUMENT / INVALID_RESET_MASK); ResetRequest.reset_mask",
    title="a reset_mask all false, not bool, or not of shape (num_envs,) is INVALID_RESET_MASK; "
    "nothing is reset",
)
def invalid_reset_mask(probe: Probe) -> None:
    """Send bad reset masks."""
    session, model = _ready(probe)
    sid = session.session_id
    bool_ = tensor_pb2.DATA_TYPE_BOOL
    cases: list[tuple[tensor_pb2.Tensor, str, str | None]] = [
        (encode_tensor([False, False], bool_), "reset_mask [false, false]", "reset_mask"),
        (encode_tensor([1, 0], tensor_pb2.DATA_TYPE_UINT8), "a uint8 reset_mask", None),
        (encode_tensor([True] * 3, bool_), "a reset_mask of 3 for 2 sub-environments", None),
    ]
    _refuse_on_session(
        probe,
        session,
        model,
        [
            (
                "Reset",
                pb.ResetRequest(session_id=sid, reset_mask=mask),
                Refusal(_INVALID, "INVALID_RESET_MASK", field=field, field_under="reset_mask"),
                f"Reset with {what}",
            )
            for mask, what, field in cases
        ],
    )


@check(
    "errors.invalid_seed",
    rule="errors.proto table (INVALID_ARGUMENT / INVALID_SEED); PerEnvSeeds",
    title="per-env seeds of the wrong length or dtype, or a present mask of the wrong shape, "
    "are INVALID_SEED naming seeds; nothing is reset",
)
def invalid_seed(probe: Probe) -> None:
    """Send malformed per-environment seeds."""
    session, model = _ready(probe)
    sid = session.session_id
    uint64, bool_ = tensor_pb2.DATA_TYPE_UINT64, tensor_pb2.DATA_TYPE_BOOL
    cases = [
        (pb.PerEnvSeeds(values=encode_tensor([1, 2, 3], uint64)), "3 seeds for 2 sub-environments"),
        (pb.PerEnvSeeds(values=encode_tensor([1, 2], tensor_pb2.DATA_TYPE_INT64)), "int64 seeds"),
        (
            pb.PerEnvSeeds(
                values=encode_tensor([1, 2], uint64), present=encode_tensor([True], bool_)
            ),
            "a present mask of 1 for 2 sub-environments",
        ),
    ]
    _refuse_on_session(
        probe,
        session,
        model,
        [
            (
                "Reset",
                pb.ResetRequest(session_id=sid, seeds=seeds),
                Refusal(_INVALID, "INVALID_SEED", field_under="seeds"),
                f"Reset with {what}",
            )
            for seeds, what in cases
        ],
    )


@check(
    "errors.reset_required",
    rule="errors.proto table (FAILED_PRECONDITION / RESET_REQUIRED)",
    title="stepping before the first reset is FAILED_PRECONDITION RESET_REQUIRED, unary and on "
    "the stream; the session then resets and steps as documented",
)
def reset_required(probe: Probe) -> None:
    """Step a new session."""
    session = probe.create(num_envs=2)
    refusal = Refusal(grpc.StatusCode.FAILED_PRECONDITION, "RESET_REQUIRED")
    step = pb.StepRequest(session_id=session.session_id, actions=actions_value([1, 1]))
    probe.expect_refused("Step", step, refusal, "Step before any reset")
    stream = probe.stream()
    subject = "stream step before any reset"
    stream_error(stream.request(1, subject, step=step), refusal, subject)
    model = ConformanceModel(2)
    probe.reset(session, model, subject="the first Reset after the refused steps")
    probe.step(session, model, [1, 1], subject="the first Step after the refused steps")
