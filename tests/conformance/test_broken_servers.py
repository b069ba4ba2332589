"""The kit can fail: deliberately broken servers, each caught by the check aimed at it.

Every server here is our own server with one rule broken, by a subclass of
``EnvServicer`` passed to ``create_server(config, servicer_class=...)``. For each, the
whole kit runs: the aimed check must fail with a reason naming the rule and what was
received, a few named checks that depend on the same rule may fail too, and every
other check must give exactly the verdict it gives on the intact server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import pytest

from gymrpc.conformance import CHECKS, CheckResult, Outcome, Target, run_checks
from gymrpc.errors import GymrpcError, SessionNotFoundError
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import tensor_pb2
from gymrpc_server.auth import Identity
from gymrpc_server.registry import SessionRegistry
from gymrpc_server.sequencing import SequenceGuard
from gymrpc_server.servicer import EnvServicer
from gymrpc_server.session import Session


class _Registry:
    """A registry that lets a broken server change what ``get`` does.

    Args:
        inner: The real registry; every other attribute is its own.
        get: Replaces ``SessionRegistry.get``.
    """

    def __init__(self, inner: SessionRegistry, get: Callable[..., Session]) -> None:
        self._inner = inner
        self.get = get

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _GuardedServicer(EnvServicer):
    """A servicer whose sessions get another sequence guard, and other hooks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        real: SessionRegistry = self._registry
        self._real_get = real.get
        self._registry = _Registry(real, self._get)  # type: ignore[assignment]

    def guard(self, current: SequenceGuard) -> SequenceGuard:
        """The guard a session should have; the real one by default."""
        return current

    def _get(self, owner: Identity, session_id: str, field: str = "session_id") -> Session:
        session = self._real_get(owner, session_id, field)
        session.sequence = self.guard(session.sequence)
        return session


# --- the broken servers -------------------------------------------------------------


class EmptyIdNotFound(_GuardedServicer):
    """Answers an empty session id with NOT_FOUND, as if it named a missing session."""

    def _get(self, owner: Identity, session_id: str, field: str = "session_id") -> Session:
        if not session_id:
            raise SessionNotFoundError(
                f"{field}: no session '' for this user", field=field, metadata={"resource_name": ""}
            )
        return super()._get(owner, session_id, field)


class _RunsEverything(SequenceGuard):
    """Runs every stream request: no sequence check at all."""

    def admit(self, sequence: int, request: Any, *, field: str = "sequence") -> bytes | None:
        self.last_sequence = max(self.last_sequence, sequence)
        return None


class SkipsSequenceCheck(_GuardedServicer):
    """Runs stale and repeated stream requests instead of refusing or replaying them."""

    def guard(self, current: SequenceGuard) -> SequenceGuard:
        if isinstance(current, _RunsEverything):
            return current
        return _RunsEverything(current.last_sequence)


class _ReplaysByNumber(SequenceGuard):
    """Replays the remembered response for any request with its number."""

    def admit(self, sequence: int, request: Any, *, field: str = "sequence") -> bytes | None:
        remembered = self._replay
        if remembered is not None and sequence == remembered.sequence:
            return remembered.response
        return super().admit(sequence, request, field=field)


class ReplaysDifferentContent(_GuardedServicer):
    """Answers a repeat of the latest number with different content from memory."""

    def guard(self, current: SequenceGuard) -> SequenceGuard:
        if isinstance(current, _ReplaysByNumber):
            return current
        replacement = _ReplaysByNumber(current.last_sequence)
        replacement._replay = current._replay
        return replacement


class _NeverForgets(SequenceGuard):
    """Keeps the remembered response across unary Reset and Step."""

    def forget(self) -> None:
        return None


class UnaryDoesNotForget(_GuardedServicer):
    """A unary Step leaves the stream's remembered response in place."""

    def guard(self, current: SequenceGuard) -> SequenceGuard:
        if isinstance(current, _NeverForgets):
            return current
        replacement = _NeverForgets(current.last_sequence)
        replacement._replay = current._replay
        return replacement


def _as_int32(observations: Any) -> None:
    tensor = observations.array_value
    values = np.frombuffer(tensor.data, dtype="<i8").astype("<i4")
    tensor.dtype = tensor_pb2.DATA_TYPE_INT32
    tensor.data = values.tobytes()


class WrongObservationDtype(EnvServicer):
    """Sends int64 observations as int32."""

    def _reset(self, session: Session, request: Any, response: Any, *, root: str) -> None:
        super()._reset(session, request, response, root=root)
        _as_int32(response.observations)

    def _step(
        self, identity: Identity, session: Session, request: Any, response: Any, *, root: str
    ) -> None:
        super()._step(identity, session, request, response, root=root)
        _as_int32(response.observations)


class UnrootedFieldPaths(EnvServicer):
    """Names fields on the stream without the stream request's root (actions, not
    step.actions)."""

    def _reset(self, session: Session, request: Any, response: Any, *, root: str) -> None:
        super()._reset(session, request, response, root="")

    def _step(
        self, identity: Identity, session: Session, request: Any, response: Any, *, root: str
    ) -> None:
        super()._step(identity, session, request, response, root="")


class _Bare(GymrpcError):  # noqa: N818 (named for what it sends)
    """An error whose status carries no details."""

    def __init__(self, error: GymrpcError) -> None:
        super().__init__(error.message)
        self._error = error

    def to_status(self) -> Any:
        status = self._error.to_status()
        del status.details[:]
        return status


class NoErrorDetails(EnvServicer):
    """Ends failed unary calls with a status that has no ErrorInfo (no details)."""

    def _unary(self, context: grpc.ServicerContext, handler: Callable[[Identity], Any]) -> Any:
        def bare(identity: Identity) -> Any:
            try:
                return handler(identity)
            except GymrpcError as error:
                raise _Bare(error) from error

        return super()._unary(context, bare)


class CloseKeepsSession(EnvServicer):
    """Answers CloseSession with OK and closes nothing."""

    def CloseSession(  # noqa: N802 (the RPC's name)
        self, request: pb.CloseSessionRequest, context: grpc.ServicerContext
    ) -> pb.CloseSessionResponse:
        def handle(identity: Identity) -> pb.CloseSessionResponse:
            self._registry.get(identity, request.session_id)  # refuses unknown ids
            return pb.CloseSessionResponse()

        return self._unary(context, handle)


# --- the expectations ----------------------------------------------------------------


@dataclass(frozen=True)
class Breakage:
    """One broken server and what the kit must say about it.

    Attributes:
        servicer: The broken servicer.
        caught_by: The check aimed at the broken rule.
        says: Text the aimed check's reason must contain.
        may_also_fail: Checks that also depend on the broken rule.
    """

    servicer: type[EnvServicer]
    caught_by: str
    says: tuple[str, ...]
    may_also_fail: frozenset[str] = frozenset()


BREAKAGES = [
    pytest.param(
        Breakage(
            EmptyIdNotFound,
            "errors.empty_session_id",
            (
                "GetSession with session_id ''",
                "received NOT_FOUND (SESSION_NOT_FOUND, field session_id)",
                "expected INVALID_ARGUMENT (INVALID_ARGUMENT, field session_id)",
            ),
        ),
        id="empty-session-id-answered-not-found",
    ),
    pytest.param(
        Breakage(
            SkipsSequenceCheck,
            "stream.sequence",
            ("a first request with sequence 0", "received a reset result", "OUT_OF_ORDER"),
            frozenset(
                {
                    "stream.retry",
                    "stream.retry_different",
                    "stream.consumption",
                    "stream.unary_forgets",
                }
            ),
        ),
        id="sequence-check-skipped",
    ),
    pytest.param(
        Breakage(
            ReplaysDifferentContent,
            "stream.retry_different",
            (
                "sequence 2 repeated with actions [1, 1] instead of [0, 1]",
                "received a step result",
                "expected INVALID_ARGUMENT (OUT_OF_ORDER, field sequence)",
            ),
            frozenset({"stream.consumption"}),
        ),
        id="repeat-with-different-content-replayed",
    ),
    pytest.param(
        Breakage(
            UnaryDoesNotForget,
            "stream.unary_forgets",
            ("after the unary Step", "received a step result", "OUT_OF_ORDER"),
        ),
        id="unary-step-keeps-the-replay",
    ),
    pytest.param(
        Breakage(
            WrongObservationDtype,
            "data.batches",
            (
                "observations",
                "received DATA_TYPE_INT32 of shape [3, 2]",
                "expected DATA_TYPE_INT64",
                "Batches",
            ),
            frozenset(
                {check.id for check in CHECKS}
                - {
                    "handshake.server_info",
                    "catalogue.environments",
                    "catalogue.conformance_env",
                    "errors.model",
                    "errors.env_not_found",
                    "errors.invalid_num_envs",
                    "errors.num_envs_limit",
                    "errors.invalid_option",
                    "errors.unknown_enum",
                    "health.serving",
                }
            ),
        ),
        id="observations-with-the-wrong-dtype",
    ),
    pytest.param(
        Breakage(
            UnrootedFieldPaths,
            "stream.field_paths",
            (
                "step actions [0, 3], sequence 2",
                "field actions[1]",
                "expected INVALID_ARGUMENT (INVALID_ACTION, field step.actions[1])",
                "Field paths",
            ),
            frozenset({"stream.consumption"}),
        ),
        id="field-paths-without-the-stream-root",
    ),
    pytest.param(
        Breakage(
            NoErrorDetails,
            "errors.model",
            (
                "with 0 ErrorInfo details",
                "expected exactly one google.rpc.ErrorInfo",
                "The error model",
            ),
            frozenset({check.id for check in CHECKS if check.id.startswith("errors.")})
            | {"session.lifecycle", "autoreset.disabled"},
        ),
        id="errors-without-error-info",
    ),
    pytest.param(
        Breakage(
            CloseKeepsSession,
            "session.lifecycle",
            (
                "GetSession after CloseSession",
                "received a success",
                "expected NOT_FOUND (SESSION_NOT_FOUND",
            ),
            frozenset({"session.close"}),
        ),
        id="close-keeps-the-session",
    ),
]


@pytest.fixture(scope="module")
def verdicts(baseline: dict[str, CheckResult]) -> dict[str, Outcome]:
    """The intact server's verdict per check, the reference for every broken one."""
    return {check_id: result.outcome for check_id, result in baseline.items()}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_the_aimed_check_catches_the_broken_rule(
    breakage: Breakage, serve_target: Callable[..., Target], verdicts: dict[str, Outcome]
) -> None:
    results = {r.check_id: r for r in run_checks(serve_target(breakage.servicer))}
    aimed = results[breakage.caught_by]
    assert aimed.outcome is Outcome.FAIL, aimed.line()
    for text in breakage.says:
        assert text in aimed.reason, aimed.reason
    assert verdicts[breakage.caught_by] is Outcome.PASS, "the intact server passes it"
    for check_id, result in results.items():
        if check_id == breakage.caught_by or check_id in breakage.may_also_fail:
            continue
        assert result.outcome is verdicts[check_id], (
            f"{check_id} changed verdict on a server broken elsewhere: {result.line()}"
        )
