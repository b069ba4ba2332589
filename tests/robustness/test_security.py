"""Security: tokens, isolation between users, hidden state, TLS, exposure and no pickle.

A server with a tokens file answers nothing but health without a valid token; a user
cannot touch, or learn of, another user's session; hidden state is for admins only,
whatever the path to it; TLS works end to end and fails cleanly when it should; an
open server refuses to listen beyond loopback; and nothing on the wire is unpickled.
"""

from __future__ import annotations

import ast
import hashlib
import pickle
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import numpy as np
import pytest
import trustme
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from gymnasium.vector import AutoresetMode
from gymrpc_testing import TOKENS, Running, Serve, create, rpc_error, status_of, step_request
from vector_reference import Lockstep, sync_reference

import gymrpc
from gymrpc.errors import SessionNotFoundError, UnavailableError, from_status
from gymrpc.tensors import encode_tensor
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1.tensor_pb2 import DataType, Tensor
from gymrpc.v1.value_pb2 import Value
from gymrpc.values import decode_map, decode_value, encode_value
from gymrpc_server.config import ServerConfig, is_loopback_address
from gymrpc_server.server import create_server

ROOT = Path(__file__).resolve().parents[2]
TURBOFAN = "gymrpc/Turbofan-v0"
CARTPOLE = "CartPole-v1"
HIDDEN = ("degradation", "max_degradation")
SERVICE = pb.DESCRIPTOR.services_by_name["EnvService"]


@pytest.fixture
def secured(serve: Serve, tokens_file: Path) -> Running:
    """alice and bob (users) and carol (admin); attributes open to users, as some allow."""
    return serve(tokens_file=tokens_file, attribute_access="all")


def health_check(channel: grpc.Channel) -> int:
    stub = cast(Any, health_pb2_grpc.HealthStub)(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status)


# --- authentication -----------------------------------------------------------------------

BAD_CREDENTIALS = {
    "none": None,
    "empty": "",
    "scheme-only": "Bearer",
    "wrong-token": "Bearer wrong-token-0123456789",
    "basic-scheme": f"Basic {TOKENS['alice']}",
    "no-scheme": TOKENS["alice"],
    "token-prefix": f"Bearer {TOKENS['alice'][:-1]}",
    "token-suffix": f"Bearer {TOKENS['alice']}0",
    "digest": f"Bearer {hashlib.sha256(TOKENS['alice'].encode()).hexdigest()}",
}
#: Every method the server registers, except the health service.
GUARDED = [f"/{SERVICE.full_name}/{method.name}" for method in SERVICE.methods] + [
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
]


def _raw(
    channel: grpc.Channel, path: str, credentials: str | None, body: bytes = b""
) -> Callable[[], object]:
    """Call a method by path with the given request body and authorization value."""
    metadata = () if credentials is None else (("authorization", credentials),)
    streaming = path.endswith(("StreamSession", "ServerReflectionInfo"))
    if streaming:
        stream: grpc.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(path)
        return lambda: list(stream(iter([body]), timeout=10, metadata=metadata))
    unary: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(path)
    return lambda: unary(body, timeout=10, metadata=metadata)


@pytest.mark.parametrize("credentials", list(BAD_CREDENTIALS))
def test_without_a_valid_token_only_health_answers(secured: Running, credentials: str) -> None:
    alice = secured.stub(TOKENS["alice"])
    session = create(alice, CARTPOLE)  # a real session: refusals must not depend on it
    channel = secured.channel()
    for path in GUARDED:
        error = rpc_error(_raw(channel, path, BAD_CREDENTIALS[credentials]))
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED, (path, error.details())
        assert "missing or invalid bearer token" in (error.details() or "")
    # Naming a real session changes nothing: no NOT_FOUND, no answer, no side effect.
    for method, request in (
        ("GetSession", pb.GetSessionRequest(session_id=session.session_id)),
        ("CloseSession", pb.CloseSessionRequest(session_id=session.session_id)),
        ("Reset", pb.ResetRequest(session_id=session.session_id, seed=0)),
    ):
        path = f"/{SERVICE.full_name}/{method}"
        body = request.SerializeToString()
        error = rpc_error(_raw(channel, path, BAD_CREDENTIALS[credentials], body))
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert health_check(channel) == health_pb2.HealthCheckResponse.SERVING
    # Nothing was done on alice's behalf.
    assert alice.GetSession(pb.GetSessionRequest(session_id=session.session_id)).session.needs_reset


# --- isolation between users ---------------------------------------------------------------


def anonymized(status: status_pb2.Status, session_id: str) -> list[str]:
    """A status as text, with the session id it names replaced by a placeholder."""
    parts = [str(status.code), status.message]
    for detail in status.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.ResourceInfo,
            error_details_pb2.BadRequest,
        ):
            message = kind()
            if detail.Unpack(message):
                parts.append(json_format.MessageToJson(message, sort_keys=True))
    return [part.replace(session_id, "<session>") for part in parts]


@dataclass
class Intruder:
    """Another user, trying every request that names a session on one session id."""

    running: Running
    token: str

    def answers(self, session_id: str) -> dict[str, list[str]]:
        stub = self.running.stub(self.token)
        requests: dict[str, Callable[[], object]] = {
            "GetSession": lambda: stub.GetSession(pb.GetSessionRequest(session_id=session_id)),
            "CloseSession": lambda: stub.CloseSession(
                pb.CloseSessionRequest(session_id=session_id)
            ),
            "Reset": lambda: stub.Reset(pb.ResetRequest(session_id=session_id, seed=0)),
            "Step": lambda: stub.Step(step_request(session_id, [0, 1])),
            "Render": lambda: stub.Render(pb.RenderRequest(session_id=session_id)),
            "Call": lambda: stub.Call(pb.CallRequest(session_id=session_id, name="close")),
            "GetAttr": lambda: stub.GetAttr(pb.GetAttrRequest(session_id=session_id, name="spec")),
            "SetAttr": lambda: stub.SetAttr(
                pb.SetAttrRequest(session_id=session_id, name="spec", values=[encode_value(1)])
            ),
        }
        answers = {
            name: anonymized(status_of(rpc_error(call)), session_id)
            for name, call in requests.items()
        }
        stream = self.running.stream(stub)
        for number, operation in enumerate(("reset", "step"), start=1):
            request = pb.StreamSessionRequest(sequence=number)
            if operation == "reset":
                request.reset.CopyFrom(pb.ResetRequest(session_id=session_id, seed=0))
            else:
                request.step.CopyFrom(step_request(session_id, [0, 1]))
            response = stream.round_trip(request)
            assert response.WhichOneof("response") == "error"
            answers[f"StreamSession {operation}"] = anonymized(response.error, session_id)
        stream.close()
        return answers

    def attach(self, session_id: str) -> None:
        with pytest.raises(SessionNotFoundError, match="no session") as info:
            gymrpc.RemoteVectorEnv(
                CARTPOLE, target=self.running.target, token=self.token, session_id=session_id
            )
        assert isinstance(info.value, KeyError)


@pytest.mark.parametrize("intruder", ["bob", "carol"], ids=["user", "admin"])
def test_another_users_session_is_indistinguishable_from_none(
    secured: Running, intruder: str
) -> None:
    mallory = Intruder(secured, TOKENS[intruder])
    never = mallory.answers(secrets.token_urlsafe(24))
    for answers in never.values():
        assert answers[0] == str(grpc.StatusCode.NOT_FOUND.value[0]), answers
    remote = gymrpc.make_vec(
        CARTPOLE, 2, target=secured.target, token=TOKENS["alice"], vectorization_mode="sync"
    )
    with Lockstep(remote, sync_reference(CARTPOLE, 2, AutoresetMode.NEXT_STEP)) as alice:
        session_id = remote.session_id
        # Before the first reset, in the middle of an episode (alice's stream open and
        # bound), and after it: always the answer for an id that never existed.
        assert mallory.answers(session_id) == never
        alice.run(steps=10, seed=4)
        assert mallory.answers(session_id) == never
        mallory.attach(session_id)
        alice.run(steps=10, seed=5)  # untouched: still exactly Gymnasium's episode
    assert mallory.answers(session_id) == never  # and after alice closed it
    info = secured.stub(TOKENS[intruder]).GetServerInfo(pb.GetServerInfoRequest())
    assert (info.usage.open_sessions, info.usage.steps_used) == (0, 0)


# --- hidden state -----------------------------------------------------------------------------

VECTORIZATIONS = {
    "default": pb.VECTORIZATION_MODE_UNSPECIFIED,
    "native": pb.VECTORIZATION_MODE_VECTOR_ENTRY_POINT,
    "sync": pb.VECTORIZATION_MODE_SYNC,
}


def hidden_keys(stub: Any, session: pb.Session) -> set[str]:
    """The hidden-state keys in the info of a reset and a step of a session."""
    reset = stub.Reset(pb.ResetRequest(session_id=session.session_id, seed=0))
    step = stub.Step(step_request(session.session_id, [0] * session.num_envs))
    keys = set(decode_map(reset.info)) | set(decode_map(step.info))
    return keys & set(HIDDEN)


@pytest.mark.parametrize("vectorization", list(VECTORIZATIONS))
def test_hidden_state_is_for_admins_only(secured: Running, vectorization: str) -> None:
    alice, carol = secured.stub(TOKENS["alice"]), secured.stub(TOKENS["carol"])
    mode = VECTORIZATIONS[vectorization]
    for exposed, code in (
        (encode_value(True), grpc.StatusCode.PERMISSION_DENIED),
        # A numpy bool is not a bool option; refused before privileges are considered.
        (Value(scalar_value=encode_tensor(np.bool_(True))), grpc.StatusCode.INVALID_ARGUMENT),
    ):
        request = pb.CreateSessionRequest(env_id=TURBOFAN, num_envs=2, vectorization_mode=mode)
        request.env_options["expose_hidden_state"].CopyFrom(exposed)
        error = rpc_error(lambda: alice.CreateSession(request))
        assert error.code() is code, error.details()
    session = create(alice, TURBOFAN, vectorization_mode=mode)
    assert hidden_keys(alice, session) == set()
    options = pb.ResetRequest(session_id=session.session_id)
    options.options["expose_hidden_state"].CopyFrom(encode_value(True))
    assert rpc_error(lambda: alice.Reset(options)).code() is grpc.StatusCode.INVALID_ARGUMENT
    admin = create(
        carol, TURBOFAN, vectorization_mode=mode, env_options={"expose_hidden_state": True}
    )
    assert hidden_keys(carol, admin) == set(HIDDEN)


def _attribute_requests(session_id: str) -> dict[str, Callable[[Any], object]]:
    value = [encode_value(True)]
    return {
        "GetAttr": lambda stub: stub.GetAttr(
            pb.GetAttrRequest(session_id=session_id, name="expose_hidden_state")
        ),
        "SetAttr": lambda stub: stub.SetAttr(
            pb.SetAttrRequest(session_id=session_id, name="expose_hidden_state", values=value)
        ),
        "Call": lambda stub: stub.Call(
            pb.CallRequest(session_id=session_id, name="expose_hidden_state")
        ),
        "GetAttr-private": lambda stub: stub.GetAttr(
            pb.GetAttrRequest(session_id=session_id, name="_model")
        ),
        "Call-dunder": lambda stub: stub.Call(
            pb.CallRequest(session_id=session_id, name="__setattr__", args=value)
        ),
    }


def test_privileged_and_private_attributes_are_refused_to_users(secured: Running) -> None:
    alice = secured.stub(TOKENS["alice"])
    session = create(alice, TURBOFAN, vectorization_mode=pb.VECTORIZATION_MODE_SYNC)
    for name, call in _attribute_requests(session.session_id).items():
        error = rpc_error(lambda: call(alice))
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED, (name, error.details())
    # Ordinary attributes are open on this server, and hidden state stayed hidden.
    values = alice.GetAttr(pb.GetAttrRequest(session_id=session.session_id, name="step_size"))
    assert [decode_value(value) for value in values.values] == [10, 10]
    assert hidden_keys(alice, session) == set()


WRAPPER_CALLS: dict[str, tuple[str, list[Any]]] = {
    "set_wrapper_attr-privileged": ("set_wrapper_attr", ["expose_hidden_state", True]),
    "get_wrapper_attr-privileged": ("get_wrapper_attr", ["expose_hidden_state"]),
    "get_wrapper_attr-private": ("get_wrapper_attr", ["_needs_reset"]),
}


@pytest.mark.parametrize("case", list(WRAPPER_CALLS))
def test_reflective_calls_cannot_reach_privileged_attributes(secured: Running, case: str) -> None:
    alice = secured.stub(TOKENS["alice"])
    session = create(alice, TURBOFAN, vectorization_mode=pb.VECTORIZATION_MODE_SYNC)
    alice.Reset(pb.ResetRequest(session_id=session.session_id, seed=0))
    name, args = WRAPPER_CALLS[case]
    request = pb.CallRequest(
        session_id=session.session_id, name=name, args=[encode_value(arg) for arg in args]
    )
    outcome: pb.CallResponse | grpc.RpcError
    try:
        outcome = alice.Call(request)
    except grpc.RpcError as error:
        outcome = error
    if isinstance(outcome, grpc.RpcError):
        assert outcome.code() is grpc.StatusCode.PERMISSION_DENIED, outcome.details()
    else:
        step = alice.Step(step_request(session.session_id, [0, 0]))
        exposed = set(decode_map(step.info)) & set(HIDDEN)
        pytest.fail(
            f"{name}{tuple(args)} answered {[decode_value(v) for v in outcome.results]}; "
            f"hidden keys now in alice's info: {sorted(exposed)}"
        )


# --- TLS ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """Files of a test CA, a server certificate it issued, and an unrelated CA."""

    ca: Path
    cert: Path
    key: Path
    other_ca: Path
    localhost_only_cert: Path
    localhost_only_key: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    files = {name: folder / f"{name}.pem" for name in Certificates.__dataclass_fields__}
    ca.cert_pem.write_to_path(str(files["ca"]))
    other.cert_pem.write_to_path(str(files["other_ca"]))
    for suffix, names in (("", ("localhost", "127.0.0.1")), ("localhost_only_", ("localhost",))):
        issued = ca.issue_cert(*names)
        issued.private_key_pem.write_to_path(str(files[f"{suffix}key"]))
        files[f"{suffix}cert"].write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    return Certificates(**files)


@pytest.fixture
def tls_server(serve: Serve, tokens_file: Path, certificates: Certificates) -> Running:
    return serve(tokens_file=tokens_file, tls_cert=certificates.cert, tls_key=certificates.key)


def test_tls_end_to_end(tls_server: Running, certificates: Certificates) -> None:
    target = f"localhost:{tls_server.port}"
    remote = gymrpc.make_vec(
        CARTPOLE,
        2,
        target=target,
        token=TOKENS["alice"],
        root_certificates=certificates.ca,
        vectorization_mode="sync",
        timeout=30,
    )
    assert "tls" in remote.server_info.capabilities
    assert remote.server_info.identity.user == "alice"
    with Lockstep(remote, sync_reference(CARTPOLE, 2, AutoresetMode.NEXT_STEP)) as pair:
        pair.run(steps=20, seed=0)
    credentials = grpc.ssl_channel_credentials(certificates.ca.read_bytes())
    with grpc.secure_channel(target, credentials) as channel:
        assert health_check(channel) == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("untrusted-ca", "CERTIFICATE_VERIFY_FAILED"),
        ("system-cas", "CERTIFICATE_VERIFY_FAILED"),
        ("plaintext", "cannot reach the gymrpc server"),
        ("wrong-hostname", "Hostname Verification Check failed"),
    ],
)
def test_tls_failures_are_clean(
    serve: Serve, tokens_file: Path, certificates: Certificates, how: str, expected: str
) -> None:
    only_localhost = how == "wrong-hostname"
    running = serve(
        tokens_file=tokens_file,
        tls_cert=certificates.localhost_only_cert if only_localhost else certificates.cert,
        tls_key=certificates.localhost_only_key if only_localhost else certificates.key,
    )
    host = "127.0.0.1" if only_localhost else "localhost"
    clients: dict[str, dict[str, Any]] = {
        "untrusted-ca": {"root_certificates": certificates.other_ca},
        "system-cas": {"tls": True},
        "plaintext": {"tls": False},
        "wrong-hostname": {"root_certificates": certificates.ca},
    }
    client = clients[how]
    # A deadline turns a hang into DeadlineExceededError, which is not what is expected.
    with pytest.raises(UnavailableError) as info:
        gymrpc.make_vec(
            CARTPOLE,
            2,
            target=f"{host}:{running.port}",
            token=TOKENS["alice"],
            timeout=20,
            **client,
        )
    message = str(info.value)
    assert f"{host}:{running.port}" in message, message
    assert expected in message, message
    assert isinstance(info.value, ConnectionError)
    assert len(running.server.registry) == 0


def test_a_tls_client_against_a_plaintext_server_fails_cleanly(
    running: Running, certificates: Certificates
) -> None:
    with pytest.raises(
        UnavailableError, match=f"cannot reach the gymrpc server at localhost:{running.port}"
    ):
        gymrpc.make_vec(
            CARTPOLE,
            2,
            target=f"localhost:{running.port}",
            root_certificates=certificates.ca,
            timeout=20,
        )


# --- exposure --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["0.0.0.0:0", "[::]:0", "192.0.2.7:0", "10.1.2.3:0", "example.com:0", "127.0.0.1.nip.io:0"],
)
def test_an_open_server_refuses_non_loopback_addresses(address: str) -> None:
    assert not is_loopback_address(address)
    message = f"refusing to serve {address} without a tokens file"
    with pytest.raises(ValueError, match=re.escape(message)):
        create_server(ServerConfig(address=address))


@pytest.mark.parametrize("address", ["127.0.0.1:0", "127.8.9.10:0", "localhost:0", "[::1]:0"])
def test_loopback_addresses_are_recognised(address: str) -> None:
    assert is_loopback_address(address)


# --- no pickle anywhere on the wire ---------------------------------------------------------------

UNSAFE_MODULES = frozenset({"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "marshal"})
UNSAFE_MODULES |= {"shelve", "joblib", "jsonpickle"}
SOURCES = sorted((ROOT / "src" / "gymrpc").rglob("*.py")) + sorted(
    (ROOT / "server" / "gymrpc_server").rglob("*.py")
)


def unsafe_uses(tree: ast.AST) -> Iterator[str]:
    """Imports of deserializers that run code, dynamic ones included, and allow_pickle."""
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Call):
            function = node.func
            called = (
                function.attr
                if isinstance(function, ast.Attribute)
                else getattr(function, "id", "")
            )
            if called in ("__import__", "import_module"):
                names = [
                    arg.value
                    for arg in node.args
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                ]
            for keyword in node.keywords:
                if keyword.arg == "allow_pickle" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    yield f"line {getattr(node, 'lineno', 0)}: allow_pickle"
        for name in names:
            if name.split(".")[0] in UNSAFE_MODULES:
                yield f"line {getattr(node, 'lineno', 0)}: {name}"


def test_no_module_imports_a_code_running_deserializer() -> None:
    assert len(SOURCES) > 30, "the source trees were not found"
    found = {
        str(path.relative_to(ROOT)): uses
        for path in SOURCES
        if (uses := list(unsafe_uses(ast.parse(path.read_text(), str(path)))))
    }
    assert found == {}
    # The scan itself finds what it looks for.
    sample = "import pickle\nimportlib.import_module('dill')\nnp.load(f, allow_pickle=True)"
    assert list(unsafe_uses(ast.parse(sample))) == [
        "line 1: pickle",
        "line 2: dill",
        "line 3: allow_pickle",
    ]


class _Armed:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_pickled_bytes_are_never_unpickled(secured: Running, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Armed(marker))
    armed = tmp_path / "armed"
    pickle.loads(pickle.dumps(_Armed(armed))).close()
    assert armed.exists(), "the payload is not armed"

    alice = secured.stub(TOKENS["alice"])
    session_id = create(alice, TURBOFAN, vectorization_mode=pb.VECTORIZATION_MODE_SYNC).session_id
    alice.Reset(pb.ResetRequest(session_id=session_id, seed=0))
    as_bytes = Value(bytes_value=payload)
    as_uint8 = Tensor(dtype=DataType.DATA_TYPE_UINT8, shape=[len(payload)], data=payload)
    as_int64 = Tensor(dtype=DataType.DATA_TYPE_INT64, shape=[2], data=payload)

    def step(actions: Value) -> Callable[[], object]:
        return lambda: alice.Step(pb.StepRequest(session_id=session_id, actions=actions))

    attempts: dict[str, tuple[Callable[[], object], str]] = {
        "actions-bytes": (step(as_bytes), "INVALID_ACTION"),
        "actions-uint8": (step(Value(array_value=as_uint8)), "INVALID_ACTION"),
        "actions-int64": (step(Value(array_value=as_int64)), "INVALID_TENSOR"),
        "env-option": (
            lambda: create(alice, TURBOFAN, env_options={"params": payload}),
            "INVALID_OPTION",
        ),
        "reset-mask": (
            lambda: alice.Reset(pb.ResetRequest(session_id=session_id, reset_mask=as_uint8)),
            "INVALID_RESET_MASK",
        ),
        "call-argument": (
            lambda: alice.Call(pb.CallRequest(session_id=session_id, name="step", args=[as_bytes])),
            "INVALID_ARGUMENT",
        ),
        "reset-option": (
            lambda: alice.Reset(pb.ResetRequest(session_id=session_id, options={"s": as_bytes})),
            "INVALID_OPTION",
        ),
    }
    for name, (attempt, reason) in attempts.items():
        refusal = from_status(status_of(rpc_error(attempt)))
        assert refusal.reason == reason, (name, refusal.message)
        assert not marker.exists(), f"{name}: the server unpickled the payload"
    # As a whole request body: parsed as protobuf (its bytes as unknown fields) and
    # refused, never unpickled.
    metadata = (("authorization", f"Bearer {TOKENS['alice']}"),)
    for method in ("Step", "CreateSession", "Reset", "GetSession"):
        path = f"/{SERVICE.full_name}/{method}"
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = secured.channel().unary_unary(path)
        with pytest.raises(grpc.RpcError):
            call(payload, timeout=10, metadata=metadata)
        assert not marker.exists(), f"{method}: the server unpickled the request body"
