"""The gRPC servicer: authenticates, decodes requests, runs them on sessions, encodes.

It holds no environment logic: sessions and the catalogue do the work and raise
gymrpc errors; this module turns those into statuses (unary calls) or per-request
``error`` responses (the session stream), and never lets an exception escape as
UNKNOWN.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import duration_pb2
from grpc_status import rpc_status

from gymrpc.errors import (
    AuthenticationError,
    EnvironmentFailureError,
    GymrpcError,
    InternalServerError,
    InvalidActionError,
    InvalidArgumentError,
    InvalidOptionError,
    OutOfOrderError,
    PermissionDeniedError,
    ResponseTooLargeError,
    ShuttingDownError,
)
from gymrpc.modes import autoreset_from_proto
from gymrpc.protocol import PROTOCOL_VERSION
from gymrpc.tensors import decode_tensor, fill_tensor
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc
from gymrpc.values import decode_value, fill_map, fill_value
from gymrpc_server import __version__
from gymrpc_server.auth import Authenticator, Identity
from gymrpc_server.catalogue import Vectorization
from gymrpc_server.describe import EnvironmentDescriber, session_message
from gymrpc_server.lifecycle import Lifecycle
from gymrpc_server.registry import SessionRegistry
from gymrpc_server.session import ReplayEntry, Seeds, Session
from gymrpc_server.validation import check_seed, per_env_seeds

__all__ = ["EnvServicer", "ServicerSettings"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
# Methods that reach another attribute by the name in their first argument: that name
# passes the same access checks as the method's own.
_REFLECTIVE_METHODS = frozenset(
    {"get_wrapper_attr", "set_wrapper_attr", "has_wrapper_attr", "get_attr", "set_attr", "call"}
)
_VECTORIZATION = {
    pb.VECTORIZATION_MODE_UNSPECIFIED: None,
    pb.VECTORIZATION_MODE_VECTOR_ENTRY_POINT: Vectorization.NATIVE,
    pb.VECTORIZATION_MODE_SYNC: Vectorization.SYNC,
}


@dataclass(frozen=True)
class ServicerSettings:
    """What the servicer reports and enforces beyond the registry's limits."""

    max_message_bytes: int
    max_tensor_elements: int
    capabilities: tuple[str, ...]
    attribute_access_for_users: bool = False
    privileged_options: frozenset[str] = frozenset()


class EnvServicer(pb_grpc.EnvServiceServicer):
    """Implements ``gymrpc.v1.EnvService``.

    Args:
        registry: The sessions.
        describer: Catalogue entries for ListEnvironments.
        authenticator: Maps call metadata to identities.
        lifecycle: Stopping flag and in-flight counter.
        settings: Limits and capabilities to report.
    """

    def __init__(
        self,
        registry: SessionRegistry,
        describer: EnvironmentDescriber,
        authenticator: Authenticator,
        lifecycle: Lifecycle,
        settings: ServicerSettings,
    ) -> None:
        self._registry = registry
        self._describer = describer
        self._auth = authenticator
        self._lifecycle = lifecycle
        self._settings = settings

    # --- plumbing ----------------------------------------------------------------------

    def _identify(self, context: grpc.ServicerContext) -> Identity:
        identity = self._auth.identify(context.invocation_metadata())
        if identity is None:
            _abort(context, _unauthenticated())
        return identity

    def _unary(self, context: grpc.ServicerContext, handler: Callable[[Identity], _T]) -> _T:
        """Run a unary handler, turning every exception into a precise status."""
        if self._lifecycle.stopping.is_set():
            _abort(context, ShuttingDownError("the server is shutting down; try again later"))
        identity = self._identify(context)
        with self._lifecycle:
            try:
                return handler(identity)
            except GymrpcError as error:
                failure: GymrpcError = error
            except Exception as error:
                failure = _internal(error)
        _abort(context, failure)

    def _decode_map(self, values: Mapping[str, Any], field: str) -> dict[str, Any]:
        return {
            name: decode_value(
                value, field=f"{field}.{name}", max_elements=self._settings.max_tensor_elements
            )
            for name, value in values.items()
        }

    # --- control plane -----------------------------------------------------------------

    def GetServerInfo(
        self, request: pb.GetServerInfoRequest, context: grpc.ServicerContext
    ) -> pb.GetServerInfoResponse:
        """Describe versions, capabilities, limits and the caller."""

        def handle(identity: Identity) -> pb.GetServerInfoResponse:
            limits = self._registry.limits
            response = pb.GetServerInfoResponse(server_version=__version__)
            response.protocol_version.major, response.protocol_version.minor = PROTOCOL_VERSION
            response.capabilities.extend(self._settings.capabilities)
            response.limits.max_num_envs = limits.max_num_envs
            response.limits.max_sessions_per_user = limits.max_sessions_per_user
            response.limits.max_message_bytes = self._settings.max_message_bytes
            response.limits.step_quota = limits.step_quota
            response.limits.max_tensor_elements = self._settings.max_tensor_elements
            response.limits.session_idle_timeout.CopyFrom(
                duration_pb2.Duration(
                    seconds=int(limits.session_idle_timeout),
                    nanos=int(limits.session_idle_timeout % 1 * 1e9),
                )
            )
            response.identity.user = identity.user
            response.identity.role = pb.ROLE_ADMIN if identity.is_admin else pb.ROLE_USER
            open_sessions, steps = self._registry.usage(identity)
            response.usage.open_sessions, response.usage.steps_used = open_sessions, steps
            return response

        return self._unary(context, handle)

    def ListEnvironments(
        self, request: pb.ListEnvironmentsRequest, context: grpc.ServicerContext
    ) -> pb.ListEnvironmentsResponse:
        """List the servable environments."""
        return self._unary(
            context,
            lambda _: pb.ListEnvironmentsResponse(environments=self._describer.describe_all()),
        )

    def CreateSession(
        self, request: pb.CreateSessionRequest, context: grpc.ServicerContext
    ) -> pb.CreateSessionResponse:
        """Create a session."""

        def handle(identity: Identity) -> pb.CreateSessionResponse:
            if request.vectorization_mode not in _VECTORIZATION:
                raise InvalidArgumentError(
                    f"vectorization_mode: {request.vectorization_mode} is not a "
                    "VectorizationMode; expected 0, 1 or 2",
                    field="vectorization_mode",
                )
            session = self._registry.create(
                identity,
                env_id=request.env_id,
                num_envs=request.num_envs,
                autoreset_mode=autoreset_from_proto(request.autoreset_mode),
                vectorization=_VECTORIZATION[request.vectorization_mode],
                options=self._decode_map(request.env_options, "env_options"),
                seed=request.seed if request.HasField("seed") else None,
            )
            response = pb.CreateSessionResponse()
            try:
                with session.use():
                    session_message(session, response.session)
            except BaseException:
                # The caller never learns the id: do not leave the session counting
                # against their limit until it idles out. The first error is the one
                # the caller gets; a failure to close is logged, not lost.
                try:
                    self._registry.close(identity, session.session_id)
                except Exception:
                    logger.exception("could not close session %s", session.session_id[:8])
                raise
            return response

        return self._unary(context, handle)

    def GetSession(
        self, request: pb.GetSessionRequest, context: grpc.ServicerContext
    ) -> pb.GetSessionResponse:
        """Describe one of the caller's sessions."""

        def handle(identity: Identity) -> pb.GetSessionResponse:
            session = self._registry.get(identity, request.session_id)
            response = pb.GetSessionResponse()
            with session.use():
                session_message(session, response.session)
            return response

        return self._unary(context, handle)

    def CloseSession(
        self, request: pb.CloseSessionRequest, context: grpc.ServicerContext
    ) -> pb.CloseSessionResponse:
        """Close one of the caller's sessions."""

        def handle(identity: Identity) -> pb.CloseSessionResponse:
            self._registry.close(identity, request.session_id)
            return pb.CloseSessionResponse()

        return self._unary(context, handle)

    # --- data plane --------------------------------------------------------------------

    def Reset(self, request: pb.ResetRequest, context: grpc.ServicerContext) -> pb.ResetResponse:
        """Reset all or some sub-environments (unary)."""

        def handle(identity: Identity) -> bytes:
            session = self._registry.get(identity, request.session_id)
            response = pb.ResetResponse()
            with session.use():
                session.replay = None
                self._reset(session, request, response)
                return self._serialize_result(session, response, "reset")

        # The wire handler sends the bytes as they are (gymrpc_server.wire).
        return self._unary(context, handle)  # type: ignore[return-value]

    def Step(self, request: pb.StepRequest, context: grpc.ServicerContext) -> pb.StepResponse:
        """Step every sub-environment once (unary)."""

        def handle(identity: Identity) -> bytes:
            session = self._registry.get(identity, request.session_id)
            response = pb.StepResponse()
            with session.use():
                session.replay = None
                self._step(identity, session, request, response)
                return self._serialize_result(session, response, "step")

        return self._unary(context, handle)  # type: ignore[return-value]

    def StreamSession(  # type: ignore[override]
        self,
        request_iterator: Iterator[pb.StreamSessionRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[bytes]:
        """Serve a session stream: one response per request, in order.

        Responses are yielded serialized; the wire handler sends them as they are.
        """
        identity = self._identify(context)
        bound: Session | None = None
        for request in request_iterator:
            if self._lifecycle.stopping.is_set():
                _abort(context, ShuttingDownError("the server is shutting down; no new work"))
            with self._lifecycle:
                response = pb.StreamSessionResponse(sequence=request.sequence)
                try:
                    bound, data = self._stream_request(identity, bound, request, response)
                except GymrpcError as error:
                    data = _error_bytes(response, error)
                except Exception as error:
                    data = _error_bytes(response, _internal(error))
                yield data

    def _stream_request(
        self,
        identity: Identity,
        bound: Session | None,
        request: pb.StreamSessionRequest,
        response: pb.StreamSessionResponse,
    ) -> tuple[Session, bytes]:
        """Run one stream request on its session; return the session and the answer."""
        kind = request.WhichOneof("request")
        if kind is None:
            raise InvalidArgumentError(
                "request: no operation is set; expected reset or step", field="request"
            )
        inner: pb.ResetRequest | pb.StepRequest = getattr(request, kind)
        if bound is None:
            bound = self._registry.get(identity, inner.session_id)
        elif inner.session_id != bound.session_id:
            raise OutOfOrderError(
                f"{kind}.session_id: {inner.session_id!r}, but this stream belongs to session "
                f"{bound.session_id!r}; open another stream for another session",
                field=f"{kind}.session_id",
            )
        with bound.use():
            replay = bound.replay
            if replay is not None and request.sequence == replay.sequence:
                if replay.request != request:
                    raise OutOfOrderError(
                        f"sequence: {request.sequence} repeats the previous request's number "
                        "with different content; sequence numbers must increase",
                        field="sequence",
                    )
                return bound, replay.response
            if request.sequence <= bound.last_sequence:
                raise OutOfOrderError(
                    f"sequence: {request.sequence} is not greater than {bound.last_sequence}, "
                    "the last sequence used on this session",
                    field="sequence",
                    metadata={"last_sequence": str(bound.last_sequence)},
                )
            bound.last_sequence = request.sequence
            try:
                if isinstance(inner, pb.ResetRequest):
                    self._reset(bound, inner, response.reset)
                else:
                    self._step(identity, bound, inner, response.step)
                data = self._serialize_result(bound, response, kind)
            except GymrpcError as error:
                data = _error_bytes(response, error)
            except Exception as error:
                data = _error_bytes(response, _internal(error))
            bound.replay = ReplayEntry(request.sequence, request, data)
        return bound, data

    def _reset(
        self, session: Session, request: pb.ResetRequest, response: pb.ResetResponse
    ) -> None:
        seed: Seeds = None
        which = request.WhichOneof("seeding")
        limit = self._settings.max_tensor_elements
        if which == "seed":
            check_seed(request.seed, session.num_envs)
            seed = request.seed
        elif which == "seeds":
            present = None
            if request.seeds.HasField("present"):
                present = decode_tensor(
                    request.seeds.present, field="seeds.present", max_elements=limit
                )
            values = decode_tensor(request.seeds.values, field="seeds.values", max_elements=limit)
            seed = per_env_seeds(values, present, session.num_envs)
        mask = None
        if request.HasField("reset_mask"):
            mask = decode_tensor(request.reset_mask, field="reset_mask", max_elements=limit)
        options = self._decode_map(request.options, "options")
        if "reset_mask" in options:
            raise InvalidOptionError(
                "options.reset_mask: pass the mask in the reset_mask field, not in options",
                field="options.reset_mask",
            )
        observations, info = session.reset(seed, mask, options)
        try:
            fill_value(response.observations, observations, field="observations")
            fill_map(response.info, info, field="info")
        except GymrpcError as error:
            raise _undeliverable(session, error) from error

    def _step(
        self,
        identity: Identity,
        session: Session,
        request: pb.StepRequest,
        response: pb.StepResponse,
    ) -> None:
        if not request.HasField("actions"):
            raise InvalidActionError(
                "actions: missing; expected one action per sub-environment", field="actions"
            )
        actions = decode_value(
            request.actions, field="actions", max_elements=self._settings.max_tensor_elements
        )
        result = session.step(actions, charge=lambda steps: self._registry.charge(identity, steps))
        try:
            fill_value(response.observations, result.observations, field="observations")
            fill_tensor(response.rewards, result.rewards)
            fill_tensor(response.terminations, result.terminations)
            fill_tensor(response.truncations, result.truncations)
            fill_map(response.info, result.info, field="info")
        except GymrpcError as error:
            raise _undeliverable(session, error) from error

    def _serialize_result(
        self,
        session: Session,
        response: pb.ResetResponse | pb.StepResponse | pb.StreamSessionResponse,
        operation: str,
    ) -> bytes:
        """Serialize a result, refusing one gRPC would refuse to send.

        CreateSession refuses batches whose observations cannot fit; this catches the
        rest (large infos, unbounded spaces). The environments have moved on, so the
        session needs a reset. Serializing here, once, is how the size is known: the
        wire handler then sends these bytes as they are.
        """
        data = response.SerializeToString()
        size = len(data)
        limit = self._settings.max_message_bytes
        if size > limit:
            session.mark_broken()
            raise ResponseTooLargeError(
                f"{operation}: {session.env_id} returned a result of {size:,} bytes, above "
                f"this server's max_message_bytes of {limit:,}; the {operation} ran but its "
                "result cannot be sent, so the session needs a full reset (fewer "
                "sub-environments or smaller infos would fit)",
                metadata={
                    "session_id": session.session_id,
                    "limit": str(limit),
                    "result_bytes": str(size),
                },
            )
        return data

    # --- sub-environment access ---------------------------------------------------------

    def _attribute(
        self,
        context: grpc.ServicerContext,
        session_id: str,
        names: Callable[[], list[tuple[str, str]]],
        handler: Callable[[Session], _T],
    ) -> _T:
        """Run an attribute operation after the access checks every one of them needs.

        Args:
            context: The call's context.
            session_id: The session.
            names: Returns the ``(attribute name, request field)`` pairs to check; a
                callable, so that decoding them is answered like any other bad input.
            handler: The operation.
        """

        def handle(identity: Identity) -> _T:
            for name, field in names():
                self._check_name(identity, name, field)
            session = self._registry.get(identity, session_id)
            with session.use():
                return handler(session)

        return self._unary(context, handle)

    def _check_name(self, identity: Identity, name: str, field: str) -> None:
        if not name or name.startswith("_"):
            raise PermissionDeniedError(
                f"{field}: {name!r}; names that are empty or start with an underscore are "
                "never accessible",
                field=field,
            )
        if identity.is_admin:
            return
        if not self._settings.attribute_access_for_users:
            raise PermissionDeniedError(
                f"{field}: reading or changing environment attributes ({name!r}) is "
                f"reserved to admins on this server; user {identity.user!r} is not one",
                field=field,
            )
        if name in self._settings.privileged_options:
            raise PermissionDeniedError(
                f"{field}: {name!r} is privileged; only admins may access it", field=field
            )

    def _call_names(self, request: pb.CallRequest) -> list[tuple[str, str]]:
        """The method's name and, for reflective methods, the attribute they reach."""
        names = [(request.name, "name")]
        if request.name not in _REFLECTIVE_METHODS:
            return names
        if request.args:
            target, field = request.args[0], "args[0]"
        elif "name" in request.kwargs:
            target, field = request.kwargs["name"], "kwargs.name"
        else:
            raise InvalidArgumentError(
                f"args: {request.name} takes an attribute name as its first argument; "
                "none was given",
                field="args",
            )
        if target.WhichOneof("kind") != "string_value":
            raise InvalidArgumentError(
                f"{field}: {request.name} takes an attribute name; expected a string, got a "
                f"{target.WhichOneof('kind')}",
                field=field,
            )
        names.append((target.string_value, field))
        return names

    def Call(self, request: pb.CallRequest, context: grpc.ServicerContext) -> pb.CallResponse:
        """Call a method of every sub-environment."""

        def handle(session: Session) -> pb.CallResponse:
            limit = self._settings.max_tensor_elements
            args = [
                decode_value(value, field=f"args[{index}]", max_elements=limit)
                for index, value in enumerate(request.args)
            ]
            kwargs = self._decode_map(request.kwargs, "kwargs")
            response = pb.CallResponse()
            results = session.call(request.name, args, kwargs, list(request.env_indices))
            for index, result in enumerate(results):
                fill_value(response.results.add(), result, field=f"results[{index}]")
            return response

        return self._attribute(
            context, request.session_id, lambda: self._call_names(request), handle
        )

    def GetAttr(
        self, request: pb.GetAttrRequest, context: grpc.ServicerContext
    ) -> pb.GetAttrResponse:
        """Read an attribute of every sub-environment."""

        def handle(session: Session) -> pb.GetAttrResponse:
            response = pb.GetAttrResponse()
            for index, value in enumerate(
                session.get_attr(request.name, list(request.env_indices))
            ):
                fill_value(response.values.add(), value, field=f"{request.name}[{index}]")
            return response

        return self._attribute(
            context, request.session_id, lambda: [(request.name, "name")], handle
        )

    def SetAttr(
        self, request: pb.SetAttrRequest, context: grpc.ServicerContext
    ) -> pb.SetAttrResponse:
        """Set an attribute of every sub-environment."""

        def handle(session: Session) -> pb.SetAttrResponse:
            limit = self._settings.max_tensor_elements
            values = [
                decode_value(value, field=f"values[{index}]", max_elements=limit)
                for index, value in enumerate(request.values)
            ]
            session.set_attr(request.name, values, list(request.env_indices))
            return pb.SetAttrResponse()

        return self._attribute(
            context, request.session_id, lambda: [(request.name, "name")], handle
        )

    def Render(self, request: pb.RenderRequest, context: grpc.ServicerContext) -> pb.RenderResponse:
        """Render the session's environments."""

        def handle(identity: Identity) -> pb.RenderResponse:
            session = self._registry.get(identity, request.session_id)
            response = pb.RenderResponse()
            with session.use():
                frames = session.render()
                try:
                    fill_value(response.frames, frames, field="frames")
                except GymrpcError as error:
                    raise _undeliverable(session, error, broken=False) from error
            return response

        return self._unary(context, handle)


def _undeliverable(
    session: Session, error: GymrpcError, *, broken: bool = True
) -> EnvironmentFailureError:
    """The error for a result the protocol cannot carry.

    The environment has moved on but its result cannot be sent: the client cannot
    know the state, so the session needs a reset.
    """
    if broken:
        session.mark_broken()
    return EnvironmentFailureError(
        f"{session.env_id} returned a result the protocol cannot carry: {error}"
        + ("; the session needs a full reset" if broken else ""),
        metadata={"session_id": session.session_id},
    )


def _error_bytes(response: pb.StreamSessionResponse, error: GymrpcError) -> bytes:
    """Replace the response's content by ``error`` and serialize it."""
    sequence = response.sequence
    response.Clear()
    response.sequence = sequence
    response.error.CopyFrom(error.to_status())
    return response.SerializeToString()


def _internal(error: Exception) -> GymrpcError:
    logger.exception("unexpected server error")
    return InternalServerError(
        f"the server failed unexpectedly ({type(error).__name__}: {error}); please report it"
    )


def _unauthenticated() -> AuthenticationError:
    return AuthenticationError(
        "authorization: missing or invalid bearer token; send the metadata "
        "'authorization: Bearer <token>'",
        field="authorization",
    )


def _abort(context: grpc.ServicerContext, error: GymrpcError) -> NoReturn:
    context.abort_with_status(rpc_status.to_status(error.to_status()))
    raise AssertionError("abort_with_status returned")  # pragma: no cover
