"""Tokens, roles, hidden state and attribute access, against real servers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from gymrpc_testing import (
    TOKENS,
    Running,
    Serve,
    create,
    reason_and_field,
    rpc_error,
    status_of,
    step_request,
)

from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.values import decode_map, decode_value, encode_value
from gymrpc_server.auth import Role, load_tokens


@pytest.fixture
def secured(serve: Serve, tokens_file: Path) -> Running:
    return serve(tokens_file=tokens_file)


def test_without_a_valid_token_only_health_answers(secured: Running) -> None:
    for token in (None, "wrong-token-0123456789", ""):
        stub = secured.stub(token)
        for call in (
            lambda: stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10),
            lambda: stub.ListEnvironments(pb.ListEnvironmentsRequest(), timeout=10),
            lambda: create(stub),
        ):
            error = rpc_error(call)
            assert error.code() is grpc.StatusCode.UNAUTHENTICATED
            assert "Bearer <token>" in (error.details() or "")
        stream = secured.stream(stub)
        with pytest.raises(grpc.RpcError) as info:
            stream.round_trip(
                pb.StreamSessionRequest(sequence=1, reset=pb.ResetRequest(session_id="x"))
            )
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        reflection = cast(Any, reflection_pb2_grpc.ServerReflectionStub)(secured.channel(token))
        responses = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
        with pytest.raises(grpc.RpcError) as info:
            list(responses)
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    health = cast(Any, health_pb2_grpc.HealthStub)(secured.channel())
    assert (
        health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
        == health_pb2.HealthCheckResponse.SERVING
    )


def test_tokens_map_to_users_and_roles(secured: Running) -> None:
    for user, role in (("alice", pb.ROLE_USER), ("bob", pb.ROLE_USER), ("carol", pb.ROLE_ADMIN)):
        info = secured.stub(TOKENS[user]).GetServerInfo(pb.GetServerInfoRequest(), timeout=10)
        assert (info.identity.user, info.identity.role) == (user, role)
        assert "auth" in info.capabilities


def test_hidden_state_is_for_admins_only(secured: Running) -> None:
    alice, carol = secured.stub(TOKENS["alice"]), secured.stub(TOKENS["carol"])
    error = rpc_error(
        lambda: create(alice, "gymrpc/Turbofan-v0", env_options={"expose_hidden_state": True})
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason_and_field(status_of(error)) == (
        "PERMISSION_DENIED",
        "env_options.expose_hidden_state",
    )
    # Asking explicitly for the default is fine.
    create(alice, "gymrpc/Turbofan-v0", env_options={"expose_hidden_state": False})
    for stub, exposed in ((alice, False), (carol, True)):
        options = {"expose_hidden_state": True} if exposed else {}
        session = create(stub, "gymrpc/Turbofan-v0", env_options=options)
        stub.Reset(pb.ResetRequest(session_id=session.session_id, seed=0))
        info = decode_map(stub.Step(step_request(session.session_id, [0, 0])).info)
        assert ("degradation" in info) is exposed
        assert ("max_degradation" in info) is exposed


@pytest.mark.parametrize(("role", "allowed"), [("user", False), ("admin", True)])
def test_open_server_grants_hidden_state_only_by_flag(
    serve: Serve, role: str, allowed: bool
) -> None:
    stub = serve(anonymous_role=role).stub()
    if allowed:
        create(stub, "gymrpc/Turbofan-v0", env_options={"expose_hidden_state": True})
    else:
        error = rpc_error(
            lambda: create(stub, "gymrpc/Turbofan-v0", env_options={"expose_hidden_state": True})
        )
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED


def test_attribute_access_is_for_admins_by_default(secured: Running) -> None:
    alice, carol = secured.stub(TOKENS["alice"]), secured.stub(TOKENS["carol"])
    mine = create(alice, "gymrpc-test/DictObs-v0", 2)
    error = rpc_error(
        lambda: alice.GetAttr(pb.GetAttrRequest(session_id=mine.session_id, name="horizon"))
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    session = create(carol, "gymrpc-test/DictObs-v0", 2, env_options={"horizon": 7})
    error = rpc_error(
        lambda: carol.Call(pb.CallRequest(session_id=session.session_id, name="render"))
    )
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    carol.Reset(pb.ResetRequest(session_id=session.session_id, seed=0))
    values = carol.GetAttr(pb.GetAttrRequest(session_id=session.session_id, name="horizon")).values
    assert [decode_value(v) for v in values] == [7, 7]
    carol.SetAttr(
        pb.SetAttrRequest(
            session_id=session.session_id, name="horizon", values=[encode_value(3), encode_value(4)]
        )
    )
    values = carol.GetAttr(pb.GetAttrRequest(session_id=session.session_id, name="horizon")).values
    assert [decode_value(v) for v in values] == [3, 4]
    results = carol.Call(pb.CallRequest(session_id=session.session_id, name="render")).results
    assert [decode_value(r).shape for r in results] == [(4, 6, 3), (4, 6, 3)]
    for name in ("_position", "__class__", ""):
        error = rpc_error(
            lambda: carol.GetAttr(pb.GetAttrRequest(session_id=session.session_id, name=name))
        )
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    error = rpc_error(
        lambda: carol.GetAttr(pb.GetAttrRequest(session_id=session.session_id, name="nothing"))
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    error = rpc_error(
        lambda: carol.GetAttr(pb.GetAttrRequest(session_id=session.session_id, name="np_random"))
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot be sent" in (error.details() or "")


def test_attribute_access_for_all_still_protects_privileged_names(serve: Serve) -> None:
    stub = serve(attribute_access="all").stub()
    session = create(stub, "gymrpc/Turbofan-v0", 2, vectorization_mode=pb.VECTORIZATION_MODE_SYNC)
    values = stub.GetAttr(pb.GetAttrRequest(session_id=session.session_id, name="step_size")).values
    assert [decode_value(v) for v in values] == [10, 10]
    error = rpc_error(
        lambda: stub.GetAttr(
            pb.GetAttrRequest(session_id=session.session_id, name="expose_hidden_state")
        )
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    native = create(stub, "gymrpc/Turbofan-v0", 2)
    error = rpc_error(
        lambda: stub.Call(pb.CallRequest(session_id=native.session_id, name="render"))
    )
    assert error.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "vectorization_mode SYNC" in (error.details() or "")


def test_render(running: Running) -> None:
    stub = running.stub()
    plain = create(stub, "gymrpc-test/DictObs-v0", 2)
    error = rpc_error(lambda: stub.Render(pb.RenderRequest(session_id=plain.session_id)))
    assert error.code() is grpc.StatusCode.UNIMPLEMENTED
    session = create(stub, "gymrpc-test/DictObs-v0", 2, env_options={"render_mode": "rgb_array"})
    stub.Reset(pb.ResetRequest(session_id=session.session_id, seed=0))
    frames = decode_value(stub.Render(pb.RenderRequest(session_id=session.session_id)).frames)
    assert isinstance(frames, tuple)
    assert [frame.shape for frame in frames] == [(4, 6, 3)] * 2
    assert frames[0].dtype == np.uint8


def test_tokens_file_validation(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    digest = "a" * 64
    path.write_text(f'[[tokens]]\nuser = "dan"\nrole = "admin"\ntoken_sha256 = "{digest}"\n')
    assert load_tokens(path)[digest].role is Role.ADMIN
    for text, message in (
        ("not toml [", "not valid TOML"),
        ("x = 1", "expected one or more [[tokens]]"),
        ('[[tokens]]\nuser = "a"\ntoken = "short"', "at least 16 characters"),
        ('[[tokens]]\nuser = ""\ntoken = "0123456789abcdef"', "'user' must be"),
        ('[[tokens]]\nuser = "a"\nrole = "root"\ntoken = "0123456789abcdef"', "role 'root'"),
        ('[[tokens]]\nuser = "a"', "exactly one of 'token' and 'token_sha256'"),
        ('[[tokens]]\nuser = "a"\ntoken = "0123456789abcdef"\npassword = 1', "unknown keys"),
        ('[[tokens]]\nuser = "a"\ntoken_sha256 = "xyz"', "64 hexadecimal digits"),
        (
            '[[tokens]]\nuser = "a"\ntoken = "0123456789abcdef"\n'
            '[[tokens]]\nuser = "b"\ntoken = "0123456789abcdef"',
            "appears twice",
        ),
    ):
        path.write_text(text)
        with pytest.raises(ValueError, match=re.escape(message)) as info:
            load_tokens(path)
        assert "0123456789abcdef" not in str(info.value)
