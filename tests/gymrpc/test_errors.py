"""Errors survive the trip through google.rpc.Status with their class and details."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from gymrpc import errors


def concrete_error_classes() -> list[type[errors.GymrpcError]]:
    return [
        getattr(errors, name)
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), errors.GymrpcError)
    ]


@pytest.mark.parametrize("cls", concrete_error_classes(), ids=lambda c: c.__name__)
def test_status_round_trip_keeps_class_message_and_field(cls: type[errors.GymrpcError]) -> None:
    error = cls("actions: 3 actions; expected 4", field="actions", metadata={"session_id": "s1"})
    status = status_pb2.Status.FromString(error.to_status().SerializeToString())
    assert status.code == cls.code.value[0]
    rebuilt = errors.from_status(status)
    assert isinstance(rebuilt, cls)
    assert str(rebuilt) == "actions: 3 actions; expected 4"
    assert rebuilt.reason == error.reason
    assert rebuilt.metadata == {"session_id": "s1"}
    if cls.code is grpc.StatusCode.INVALID_ARGUMENT:
        assert rebuilt.field == "actions"


def test_python_base_classes() -> None:
    assert issubclass(errors.InvalidActionError, ValueError)
    assert issubclass(errors.SessionNotFoundError, KeyError)
    assert issubclass(errors.EpisodeEndedError, RuntimeError)
    assert issubclass(errors.PermissionDeniedError, PermissionError)
    assert issubclass(errors.UnavailableError, ConnectionError)
    assert issubclass(errors.DeadlineExceededError, TimeoutError)
    assert str(errors.SessionNotFoundError("no session 'x'")) == "no session 'x'"


def test_details_follow_the_code() -> None:
    status = errors.InvalidActionError("bad", field="actions").to_status()
    kinds = {detail.TypeName() for detail in status.details}
    assert kinds == {"google.rpc.ErrorInfo", "google.rpc.BadRequest"}
    status = errors.StepQuotaExhaustedError("quota", field="actions").to_status()
    assert {d.TypeName() for d in status.details} == {
        "google.rpc.ErrorInfo",
        "google.rpc.QuotaFailure",
    }
    status = errors.SessionNotFoundError("gone", metadata={"resource_name": "abc"}).to_status()
    resource = error_details_pb2.ResourceInfo()
    assert status.details[1].Unpack(resource)
    assert (resource.resource_type, resource.resource_name) == ("session", "abc")


def test_unknown_reason_falls_back_to_the_code() -> None:
    status = status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0], message="gone")
    info = error_details_pb2.ErrorInfo(reason="SOMETHING_NEW", domain=errors.DOMAIN)
    status.details.add().Pack(info)
    error = errors.from_status(status)
    assert type(error) is errors.NotFoundError
    assert error.reason == "SOMETHING_NEW"


def test_errors_can_be_copied() -> None:
    import copy

    error = errors.InvalidOptionError("bad option", field="env_options.x")
    clone = copy.deepcopy(error)
    assert type(clone) is errors.InvalidOptionError
    assert clone.field == "env_options.x"


def test_error_classes_and_the_reason_enum_correspond_one_to_one() -> None:
    from gymrpc.v1 import errors_pb2

    reasons = {
        name.removeprefix("ERROR_REASON_")
        for name in errors_pb2.ErrorReason.DESCRIPTOR.values_by_name
        if name != "ERROR_REASON_UNSPECIFIED"
    }
    assert set(errors.REASON_CLASSES) == reasons
    classes = list(errors.REASON_CLASSES.values())
    assert len(set(classes)) == len(classes), "two reasons share a class"
    for reason, cls in errors.REASON_CLASSES.items():
        assert cls.default_reason == reason
    # Every other exported class is a base standing for a code, or raised by the client
    # itself; none claims a reason of the enum.
    for cls in concrete_error_classes():
        if cls in classes:
            continue
        assert cls in errors.BASE_CLASSES + errors.CLIENT_CLASSES, cls
        assert cls.default_reason not in reasons, cls
