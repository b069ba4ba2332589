"""The gRPC servicer: a translator between the wire and the server's rule modules.

For every call it decodes the request, asks the rule modules (:mod:`.validation`,
:mod:`.policy`, :mod:`.sequencing`) and the registry, runs the operation on the
session, and encodes the result. It holds no environment logic and no rule of its
own; every exception becomes a precise status (unary calls) or a per-request
``error`` response (the session stream), never UNKNOWN.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import duration_pb2

from gymrpc import __version__
from gymrpc.errors import (
    EnvironmentFailureError,
    GymrpcError,
    InvalidActionError,
    InvalidArgumentError,
    InvalidOptionError,
    OutOfOrderError,
    ResponseTooLargeError,
    ShuttingDownError,
)
from gymrpc.fieldpath import join_index, join_key
from gymrpc.modes import autoreset_from_proto, vectorization_from_proto
from gymrpc.protocol import PROTOCOL_VERSION
from gymrpc.tensors import decode_tensor, fill_tensor
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc
from gymrpc.values import decode_value, fill_map, fill_value
from gymrpc_server.auth import Identity
from gymrpc_server.calls import abort, identity_of, internal_error
from gymrpc_server.catalogue import Vectorization
from gymrpc_server.describe import EnvironmentDescriber, fill_np_random_seed, session_message
from gymrpc_server.lifecycle import Lifecycle
from gymrpc_server.metrics import NO_METRICS, Recorder
from gymrpc_server.policy import REFLECTIVE_METHODS, AccessPolicy
from gymrpc_server.registry import SessionRegistry
from gymrpc_server.scores.evaluation import EvaluationRules
from gymrpc_server.session import Seeds, Session
from gymrpc_server.validation import check_seed, check_session_id, per_env_seeds

__all__ = ["EnvServicer", "ServicerSettings"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class ServicerSettings:
    """What the servicer reports and enforces beyond the registry's limits."""

    max_message_bytes: int
    max_tensor_elements: int
    capabilities: tuple[str, ...]
    worker_targets: tuple[str, ...] = ()
    #: The challenge's settings as GetServerInfo reports them; None without scores.
    scoring: pb.Scoring | None = None


class EnvServicer(pb_grpc.EnvServiceServicer):
    """Implements ``gymrpc.v1.EnvService``.

    Args:
        registry: The sessions.
        describer: Catalogue entries for ListEnvironments.
        policy: Who may do what.
        lifecycle: Stopping flag, in-flight counter and open streams.
        settings: Limits and capabilities to report.
        metrics: Records steps, episodes and errors (:mod:`.metrics`); nothing by default.
    """

    def __init__(
        self,
        registry: SessionRegistry,
        describer: EnvironmentDescriber,
        policy: AccessPolicy,
        lifecycle: Lifecycle,
        settings: ServicerSettings,
        *,
        metrics: Recorder = NO_METRICS,
    ) -> None:
        self._registry = registry
        self._describer = describer
        self._policy = policy
        self._lifecycle = lifecycle
        self._settings = settings
        self._metrics = metrics

    # --- plumbing ----------------------------------------------------------------------

    def _unary(self, context: grpc.ServicerContext, handler: Callable[[Identity], _T]) -> _T:
        """Run a unary handler, turning every exception into a precise status."""
        if self._lifecycle.stopping.is_set():
            abort(context, ShuttingDownError("the server is shutting down; try again later"))
        identity = identity_of(context)
        with self._lifecycle:
            try:
                return handler(identity)
            except GymrpcError as error:
                failure: GymrpcError = error
            except Exception as error:
                failure = _internal(error)
        self._metrics.failed(failure)
        abort(context, failure)

    def _decode_map(self, values: Mapping[str, Any], field: str) -> dict[str, Any]:
        return {
            name: decode_value(
                value,
                field=join_key(field, name),
                max_elements=self._settings.max_tensor_elements,
            )
            for name, value in values.items()
        }

    def _error_bytes(self, response: pb.StreamSessionResponse, error: GymrpcError) -> bytes:
        """Count a stream request's error, and answer it (see :func:`_error_bytes`)."""
        self._metrics.failed(error)
        return _error_bytes(response, error)

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
            response.worker_targets.extend(self._settings.worker_targets)
            if self._settings.scoring is not None:
                response.scoring.CopyFrom(self._settings.scoring)
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
            vectorization = vectorization_from_proto(request.vectorization_mode)
            session = self._registry.create(
                identity,
                env_id=request.env_id,
                num_envs=request.num_envs,
                autoreset_mode=autoreset_from_proto(request.autoreset_mode),
                vectorization=None if vectorization is None else Vectorization(vectorization),
                options=self._decode_map(request.env_options, "env_options"),
                seed=request.seed if request.HasField("seed") else None,
                evaluation=request.evaluation,
            )
            response = pb.CreateSessionResponse()
            try:
                # Describing encodes the spaces: a space the protocol cannot describe
                # is refused here, once, before the caller learns the session's id.
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
                fill_np_random_seed(session, response.session)
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
                session.sequence.forget()
                self._reset(session, request, response, root="")
                return self._serialize_result(session, response, "reset")

        # The wire handler sends the bytes as they are (gymrpc_server.wire).
        return self._unary(context, handle)  # type: ignore[return-value]

    def Step(self, request: pb.StepRequest, context: grpc.ServicerContext) -> pb.StepResponse:
        """Step every sub-environment once (unary)."""

        def handle(identity: Identity) -> bytes:
            session = self._registry.get(identity, request.session_id)
            response = pb.StepResponse()
            with session.use():
                session.sequence.forget()
                self._step(identity, session, request, response, root="")
                return self._serialize_result(session, response, "step")

        return self._unary(context, handle)  # type: ignore[return-value]

    def StreamSession(  # type: ignore[override]
        self,
        request_iterator: Iterator[pb.StreamSessionRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[bytes]:
        """Serve a session stream: one response per request, in order (env_service.proto).

        Responses are yielded serialized; the wire handler sends them as they are.
        """
        identity = identity_of(context)
        bound: Session | None = None
        with self._lifecycle.stream(getattr(context, "raw", context)):
            for request in request_iterator:
                if self._lifecycle.stopping.is_set():
                    abort(context, ShuttingDownError("the server is shutting down; no new work"))
                with self._lifecycle:
                    response = pb.StreamSessionResponse(sequence=request.sequence)
                    try:
                        bound, data = self._stream_request(identity, bound, request, response)
                    except GymrpcError as error:
                        data = self._error_bytes(response, error)
                    except Exception as error:
                        data = self._error_bytes(response, _internal(error))
                    yield data

    def _stream_request(
        self,
        identity: Identity,
        bound: Session | None,
        request: pb.StreamSessionRequest,
        response: pb.StreamSessionResponse,
    ) -> tuple[Session | None, bytes]:
        """Run one stream request (rules 2-5 of StreamSession); return the bound session."""
        kind = request.WhichOneof("request")
        if kind is None:
            raise InvalidArgumentError(
                "request: no operation is set; expected exactly one of reset and step",
                field="request",
            )
        inner: pb.ResetRequest | pb.StepRequest = getattr(request, kind)
        session_field = join_key(kind, "session_id")
        check_session_id(inner.session_id, session_field)
        if bound is None:
            bound = self._registry.get(identity, inner.session_id, field=session_field)
        elif inner.session_id != bound.session_id:
            raise OutOfOrderError(
                f"{session_field}: {inner.session_id!r}, but this stream belongs to session "
                f"{bound.session_id!r}; expected the same session (open another stream for "
                "another session)",
                field=session_field,
            )
        with bound.use(session_field):
            replay = bound.sequence.admit(request.sequence, request)
            if replay is not None:
                return bound, replay
            try:
                if isinstance(inner, pb.ResetRequest):
                    self._reset(bound, inner, response.reset, root=kind)
                else:
                    self._step(identity, bound, inner, response.step, root=kind)
                data = self._serialize_result(bound, response, kind)
            except GymrpcError as error:
                data = self._error_bytes(response, error)
            except Exception as error:
                data = self._error_bytes(response, _internal(error))
            bound.sequence.remember(request.sequence, request, data)
        return bound, data

    def _reset(
        self, session: Session, request: pb.ResetRequest, response: pb.ResetResponse, *, root: str
    ) -> None:
        seed: Seeds = None
        which = request.WhichOneof("seeding")
        if session.evaluation:
            EvaluationRules.check_reset(seeding=which, has_options=bool(request.options), root=root)
        limit = self._settings.max_tensor_elements
        if which == "seed":
            check_seed(request.seed, session.num_envs, field=join_key(root, "seed"))
            seed = request.seed
        elif which == "seeds":
            seeds_field = join_key(root, "seeds")
            present = None
            if request.seeds.HasField("present"):
                present = decode_tensor(
                    request.seeds.present,
                    field=join_key(seeds_field, "present"),
                    max_elements=limit,
                )
            values = decode_tensor(
                request.seeds.values, field=join_key(seeds_field, "values"), max_elements=limit
            )
            seed = per_env_seeds(values, present, session.num_envs, field=seeds_field)
        mask = None
        mask_field = join_key(root, "reset_mask")
        if request.HasField("reset_mask"):
            mask = decode_tensor(request.reset_mask, field=mask_field, max_elements=limit)
        options_field = join_key(root, "options")
        options = self._decode_map(request.options, options_field)
        if "reset_mask" in options:
            field = join_key(options_field, "reset_mask")
            raise InvalidOptionError(
                f"{field}: a reset option named reset_mask; expected the mask in the "
                f"{mask_field} field, not in options",
                field=field,
            )
        observations, info = session.reset(seed, mask, options, root=root)
        try:
            fill_value(response.observations, observations, field="observations")
            fill_map(response.info, info, field="info")
            if not session.evaluation:  # an evaluation session's seeds are secret
                fill_value(response.np_random_seed, session.np_random_seed(), field="seed")
        except GymrpcError as error:
            raise _undeliverable(session, error) from error

    def _step(
        self,
        identity: Identity,
        session: Session,
        request: pb.StepRequest,
        response: pb.StepResponse,
        *,
        root: str,
    ) -> None:
        field = join_key(root, "actions")
        if not request.HasField("actions"):
            raise InvalidActionError(
                f"{field}: missing; expected one action per sub-environment", field=field
            )
        limit = self._settings.max_tensor_elements
        if request.actions.WhichOneof("kind") == "array_value":
            # The environments only read their actions: a read-only view on the request's
            # bytes saves a copy of the whole batch.
            actions = decode_tensor(
                request.actions.array_value, field=field, max_elements=limit, copy=False
            )
        else:
            actions = decode_value(request.actions, field=field, max_elements=limit)
        started = time.perf_counter()
        result = session.step(
            actions, charge=lambda steps: self._registry.charge(identity, steps), field=field
        )
        self._metrics.stepped(session, result, time.perf_counter() - started)
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
                "result cannot be sent, so the session needs a full reset (expected fewer "
                "sub-environments or smaller infos)",
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
            names: Returns the ``(attribute name, field path)`` pairs to check; a
                callable, so that decoding them is answered like any other bad input.
            handler: The operation.
        """

        def handle(identity: Identity) -> _T:
            for name, field in names():
                self._policy.check_attribute(identity, name, field)
            session = self._registry.get(identity, session_id)
            if session.evaluation:
                raise EvaluationRules.refuse_attributes()
            with session.use():
                return handler(session)

        return self._unary(context, handle)

    @staticmethod
    def _call_names(request: pb.CallRequest) -> list[tuple[str, str]]:
        """The method's name and, for reflective methods, the attribute they reach."""
        names = [(request.name, "name")]
        if request.name not in REFLECTIVE_METHODS:
            return names
        if request.args:
            target, field = request.args[0], join_index("args", 0)
        elif "name" in request.kwargs:
            target, field = request.kwargs["name"], join_key("kwargs", "name")
        else:
            raise InvalidArgumentError(
                f"args: {request.name} takes an attribute name as its first argument; "
                "none was given; expected a string",
                field="args",
            )
        if target.WhichOneof("kind") != "string_value":
            raise InvalidArgumentError(
                f"{field}: {request.name} takes an attribute name; got a "
                f"{target.WhichOneof('kind')}; expected a string",
                field=field,
            )
        names.append((target.string_value, field))
        return names

    def Call(self, request: pb.CallRequest, context: grpc.ServicerContext) -> pb.CallResponse:
        """Call a method of every sub-environment."""

        def handle(session: Session) -> pb.CallResponse:
            limit = self._settings.max_tensor_elements
            args = [
                decode_value(value, field=join_index("args", index), max_elements=limit)
                for index, value in enumerate(request.args)
            ]
            kwargs = self._decode_map(request.kwargs, "kwargs")
            response = pb.CallResponse()
            results = session.call(request.name, args, kwargs, list(request.env_indices))
            for index, result in enumerate(results):
                fill_value(response.results.add(), result, field=join_index("results", index))
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
                fill_value(response.values.add(), value, field=join_index("values", index))
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
                decode_value(value, field=join_index("values", index), max_elements=limit)
                for index, value in enumerate(request.values)
            ]
            session.set_attr(request.name, values, list(request.env_indices))
            return pb.SetAttrResponse()

        return self._attribute(
            context, request.session_id, lambda: [(request.name, "name")], handle
        )

    def Render(self, request: pb.RenderRequest, context: grpc.ServicerContext) -> pb.RenderResponse:
        """Render the session's environments."""

        def handle(identity: Identity) -> bytes:
            session = self._registry.get(identity, request.session_id)
            response = pb.RenderResponse()
            with session.use():
                frames = session.render(list(request.env_indices))
                try:
                    fill_value(response.frames, frames, field="frames")
                except GymrpcError as error:
                    raise _undeliverable(session, error, broken=False) from error
                data = response.SerializeToString()
            limit = self._settings.max_message_bytes
            if len(data) > limit:
                # Nothing changed (rendering only reads): a smaller selection will fit.
                per_frame = max(
                    len(data) // max(len(request.env_indices) or session.num_envs, 1), 1
                )
                raise ResponseTooLargeError(
                    f"env_indices: the frames of {len(request.env_indices) or session.num_envs} "
                    f"sub-environments take {len(data):,} bytes, above this server's "
                    f"max_message_bytes of {limit:,}; expected at most {limit // per_frame} "
                    "sub-environments per Render call (select them with env_indices)",
                    field="env_indices",
                    metadata={"limit": str(limit), "result_bytes": str(len(data))},
                )
            return data

        # The wire handler sends the bytes as they are (gymrpc_server.wire).
        return self._unary(context, handle)  # type: ignore[return-value]


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
    return internal_error(error, "the environment service")
