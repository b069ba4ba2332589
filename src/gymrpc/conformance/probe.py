"""How the kit talks to a server: raw gRPC calls through the generated stubs.

* :class:`Target` says where the server is and how to reach it.
* :class:`Connection` is one channel for a whole run, with the handshake.
* :class:`Probe` is what a check uses: calls with the token and a deadline, requests
  that must fail, sessions it creates (closed when the check ends), streams, and the
  conformance environment's helpers.
* :class:`SessionStream` drives ``StreamSession`` one request at a time (or
  pipelined), reading responses with a timeout so a silent server fails a check
  instead of hanging the kit.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import grpc
from grpc_health.v1 import health_pb2_grpc

from gymrpc.conformance.framework import Skipped, Violation, call_of
from gymrpc.conformance.model import ENV_ID, ConformanceModel
from gymrpc.conformance.statuses import ErrorReport, Refusal, expect_refusal
from gymrpc.conformance.wire import actions_value, expect_reset, expect_step
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc
from gymrpc.v1 import value_pb2

__all__ = ["Connection", "Probe", "SessionStream", "Target"]

_MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
_UNCHANGED_RULE: Final = "errors.proto: a rejected request changes nothing on the server"
#: Seed the checks use unless they say otherwise.
SEED: Final = 20240611


@dataclass(frozen=True)
class Target:
    """A server to check.

    Attributes:
        address: ``host:port``.
        token: Bearer token sent with every call (``authorization: Bearer <token>``).
        tls_ca: PEM bytes of the CA to trust; enables TLS.
        timeout: Seconds a call or a stream response may take.
        env_id: The id under which the server serves the conformance environment.
    """

    address: str
    token: str | None = None
    tls_ca: bytes | None = None
    timeout: float = 10.0
    env_id: str = ENV_ID


class Connection:
    """One channel to the server, shared by the checks of a run.

    Args:
        target: The server.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        options = [
            # The conformance environment's results are tiny, but a catalogue of many
            # documented environments can exceed gRPC's 4 MiB default; 64 MiB is
            # gymrpc's default max_message_bytes.
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
        ]
        if target.tls_ca is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=target.tls_ca)
            self.channel = grpc.secure_channel(target.address, credentials, options)
        else:
            self.channel = grpc.insecure_channel(target.address, options)
        self.stub = pb_grpc.EnvServiceStub(self.channel)
        # The health stub's type stubs omit its methods.
        self.health: Any = health_pb2_grpc.HealthStub(self.channel)
        self._server_info: pb.GetServerInfoResponse | None = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata: the bearer token, if any."""
        token = self.target.token
        return (("authorization", f"Bearer {token}"),) if token else ()

    def server_info(self) -> pb.GetServerInfoResponse:
        """GetServerInfo, called once per connection."""
        if self._server_info is None:
            self._server_info = self.stub.GetServerInfo(
                pb.GetServerInfoRequest(), timeout=self.target.timeout, metadata=self.metadata
            )
        return self._server_info

    def handshake_problem(self) -> str | None:
        """Why GetServerInfo fails, or ``None`` when it works."""
        try:
            self.server_info()
        except grpc.RpcError as error:
            call = call_of(error)
            code = call.code() if call is not None else None
            details = call.details() if call is not None else str(error)
            hint = ""
            if code is grpc.StatusCode.UNAUTHENTICATED and not self.target.token:
                hint = " (the server wants a token: pass --token)"
            return f"GetServerInfo failed with {code.name if code else '?'}: {details}{hint}"
        return None


class Probe:
    """A check's access to the server; everything it opens is closed by :meth:`close`.

    Args:
        connection: The run's connection.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.target = connection.target
        self.stub = connection.stub
        self.health = connection.health
        self._sessions: list[str] = []
        self._streams: list[SessionStream] = []

    def close(self) -> None:
        """End the check's streams and close its sessions, ignoring errors."""
        for stream in self._streams:
            stream.cancel()
        for session_id in self._sessions:
            # A session the check closed itself is NOT_FOUND here: nothing to report.
            with contextlib.suppress(grpc.RpcError):
                self.stub.CloseSession(
                    pb.CloseSessionRequest(session_id=session_id),
                    timeout=self.target.timeout,
                    metadata=self.connection.metadata,
                )

    # --- calls ---------------------------------------------------------------------

    def call(
        self, method: str, request: Any, *, authenticated: bool = True, token: str | None = None
    ) -> Any:
        """Call a unary method of EnvService with a deadline.

        Args:
            method: The RPC name, e.g. ``"GetSession"``.
            request: The request message.
            authenticated: Send the target's token (if any).
            token: Send this token instead.

        Returns:
            The response.
        """
        if method in ("Reset", "Step"):
            # The unary forms are an optional feature (capability "unary_step").
            self.require("unary_step")
        metadata: tuple[tuple[str, str], ...] = ()
        if token is not None:
            metadata = (("authorization", f"Bearer {token}"),)
        elif authenticated:
            metadata = self.connection.metadata
        rpc = getattr(self.stub, method)
        return rpc(request, timeout=self.target.timeout, metadata=metadata)

    def refused(self, method: str, request: Any, subject: str, **kwargs: Any) -> ErrorReport:
        """Call a method that must fail and return its error.

        Raises:
            Violation: If the call succeeds.
        """
        try:
            self.call(method, request, **kwargs)
        except grpc.RpcError as error:
            return ErrorReport.from_call(error)
        raise Violation(subject, received="a success", expected="an error", rule="errors.proto")

    def expect_refused(
        self, method: str, request: Any, refusal: Refusal, subject: str
    ) -> ErrorReport:
        """Call a method that must fail as the error table says.

        Raises:
            Violation: If it succeeds or fails otherwise.
        """
        try:
            self.call(method, request)
        except grpc.RpcError as error:
            report = ErrorReport.from_call(error)
            expect_refusal(report, refusal, subject)
            return report
        raise Violation(
            subject,
            received="a success",
            expected=refusal.describe(),
            rule="errors.proto, the error table",
        )

    def server_info(self) -> pb.GetServerInfoResponse:
        """The handshake's answer (cached for the run)."""
        return self.connection.server_info()

    def capabilities(self) -> frozenset[str]:
        """The server's capabilities."""
        return frozenset(self.server_info().capabilities)

    def require(self, capability: str) -> None:
        """Skip the check unless the server announces ``capability``."""
        if capability not in self.capabilities():
            raise Skipped(f"the server does not announce the capability {capability!r}")

    # --- sessions -------------------------------------------------------------------

    def create(
        self,
        num_envs: int = 2,
        *,
        autoreset_mode: pb.AutoresetMode.ValueType = pb.AUTORESET_MODE_UNSPECIFIED,
        options: Mapping[str, value_pb2.Value] | None = None,
        seed: int | None = None,
        env_id: str | None = None,
    ) -> pb.Session:
        """Create a session (of the conformance environment by default).

        Raises:
            Skipped: If the server does not serve the conformance environment.
        """
        request = pb.CreateSessionRequest(
            env_id=env_id or self.target.env_id, num_envs=num_envs, autoreset_mode=autoreset_mode
        )
        for name, value in (options or {}).items():
            request.env_options[name].CopyFrom(value)
        if seed is not None:
            request.seed = seed
        try:
            session: pb.Session = self.call("CreateSession", request).session
        except grpc.RpcError as error:
            call = call_of(error)
            if call is not None and call.code() is grpc.StatusCode.NOT_FOUND:
                raise Skipped(
                    f"the server does not serve {request.env_id} (see catalogue.conformance_env)"
                ) from error
            raise
        self._sessions.append(session.session_id)
        return session

    def stream(self, *, authenticated: bool = True) -> SessionStream:
        """Open a StreamSession call; skip the check if the server has no ``stream``.

        Args:
            authenticated: Send the target's token (if any).
        """
        if authenticated:
            self.require("stream")
        metadata = self.connection.metadata if authenticated else ()
        stream = SessionStream(self.stub, metadata, self.target.timeout)
        self._streams.append(stream)
        return stream

    def reset(
        self,
        session: pb.Session,
        model: ConformanceModel,
        seed: int | None = SEED,
        subject: str = "",
    ) -> pb.ResetResponse:
        """Unary Reset of every sub-environment, checked against the model."""
        request = pb.ResetRequest(session_id=session.session_id)
        if seed is not None:
            request.seed = seed
        response: pb.ResetResponse = self.call("Reset", request)
        expect_reset(
            response, model.reset(seed), subject or f"Reset(seed={seed})", hidden=_hidden(session)
        )
        return response

    def step(
        self,
        session: pb.Session,
        model: ConformanceModel,
        actions: Sequence[int],
        subject: str = "",
    ) -> pb.StepResponse:
        """Unary Step, checked against the model."""
        response: pb.StepResponse = self.call(
            "Step", pb.StepRequest(session_id=session.session_id, actions=actions_value(actions))
        )
        expect_step(
            response,
            model.step(actions),
            subject or f"Step({list(actions)})",
            hidden=_hidden(session),
        )
        return response

    def expect_unchanged(self, session: pb.Session, model: ConformanceModel, after: str) -> None:
        """Step once with valid actions: the model's result, as if ``after`` never happened.

        Raises:
            Violation: Citing the rule that a refused request changes nothing.
        """
        actions = [index % 3 for index in range(session.num_envs)]
        try:
            self.step(session, model, actions, subject=f"the first Step after {after}")
        except Violation as violation:
            raise Violation(
                violation.subject,
                received=violation.received,
                expected=f"{violation.expected} (the refused request must change nothing)",
                rule=_UNCHANGED_RULE,
            ) from violation


def _hidden(session: pb.Session) -> bool:
    option = session.env_options.get("expose_hidden_state")
    return option is not None and option.WhichOneof("kind") == "bool_value" and option.bool_value


class _End:
    """Marks the end of a stream's responses."""

    def __init__(self, error: grpc.RpcError | None) -> None:
        self.error = error


class SessionStream:
    """One StreamSession call, driven request by request.

    Args:
        stub: The EnvService stub.
        metadata: Call metadata (the token).
        timeout: Seconds to wait for each response.
    """

    def __init__(
        self, stub: pb_grpc.EnvServiceStub, metadata: tuple[tuple[str, str], ...], timeout: float
    ) -> None:
        self._timeout = timeout
        self._requests: queue.SimpleQueue[pb.StreamSessionRequest | None] = queue.SimpleQueue()
        self._responses: queue.SimpleQueue[pb.StreamSessionResponse | _End] = queue.SimpleQueue()
        self._ended: _End | None = None
        # The deadline bounds the whole call: a server that stops answering cannot keep
        # the kit's reader thread alive.
        self._call = stub.StreamSession(
            iter(self._requests.get, None), metadata=metadata, timeout=max(60.0, 6 * timeout)
        )
        self._reader = threading.Thread(target=self._read, name="conformance-stream", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        responses: Iterator[pb.StreamSessionResponse] = self._call
        try:
            for response in responses:
                self._responses.put(response)
        except grpc.RpcError as error:
            self._responses.put(_End(error))
            return
        self._responses.put(_End(None))

    def send(
        self,
        sequence: int,
        *,
        reset: pb.ResetRequest | None = None,
        step: pb.StepRequest | None = None,
    ) -> pb.StreamSessionRequest:
        """Send one request without waiting for its response."""
        request = pb.StreamSessionRequest(sequence=sequence)
        if reset is not None:
            request.reset.CopyFrom(reset)
        if step is not None:
            request.step.CopyFrom(step)
        self._requests.put(request)
        return request

    def send_request(self, request: pb.StreamSessionRequest) -> None:
        """Send a prepared request."""
        self._requests.put(request)

    def receive(self, subject: str) -> pb.StreamSessionResponse:
        """The next response.

        Raises:
            Violation: If the stream ended or nothing came within the timeout.
        """
        rule = "env_service.proto, StreamSession rule 1"
        if self._ended is not None:
            raise Violation(
                subject, received="a stream that had ended", expected="a response", rule=rule
            )
        try:
            item = self._responses.get(timeout=self._timeout)
        except queue.Empty:
            raise Violation(
                subject,
                received=f"no response within {self._timeout:g} s",
                expected="one response per request",
                rule=rule,
            ) from None
        if isinstance(item, _End):
            self._ended = item
            ending = "OK" if item.error is None else ErrorReport.from_call(item.error).describe()
            raise Violation(
                subject,
                received=f"the end of the stream ({ending})",
                expected="a response, the stream going on (errors travel in responses)",
                rule="env_service.proto, StreamSession rules 3 and 6",
            )
        return item

    def request(
        self,
        sequence: int,
        subject: str,
        *,
        reset: pb.ResetRequest | None = None,
        step: pb.StepRequest | None = None,
    ) -> pb.StreamSessionResponse:
        """Send one request and return its response, checking the echoed sequence."""
        self.send(sequence, reset=reset, step=step)
        response = self.receive(subject)
        if response.sequence != sequence:
            raise Violation(
                subject,
                received=f"a response with sequence {response.sequence}",
                expected=f"sequence {sequence}, the request's",
                rule="env_service.proto, StreamSession rule 1",
            )
        return response

    def finish(self, subject: str) -> grpc.StatusCode:
        """Half-close and wait for the end of the stream; return its status code.

        Raises:
            Violation: If more responses arrive, or the stream does not end in time.
        """
        self._requests.put(None)
        if self._ended is not None:
            return (
                grpc.StatusCode.OK
                if self._ended.error is None
                else ErrorReport.from_call(self._ended.error).code
            )
        try:
            item = self._responses.get(timeout=self._timeout)
        except queue.Empty:
            raise Violation(
                subject,
                received="no end of stream",
                expected="the stream to end",
                rule="env_service.proto, StreamSession rule 6",
            ) from None
        if not isinstance(item, _End):
            raise Violation(
                subject,
                received=f"an extra response (sequence {item.sequence})",
                expected="exactly one response per request",
                rule="env_service.proto, StreamSession rule 1",
            )
        self._ended = item
        return grpc.StatusCode.OK if item.error is None else ErrorReport.from_call(item.error).code

    def ending_error(self) -> ErrorReport | None:
        """The status the stream ended with, once :meth:`receive` has seen the end."""
        if self._ended is None or self._ended.error is None:
            return None
        return ErrorReport.from_call(self._ended.error)

    def cancel(self) -> None:
        """Cancel the call (cleanup)."""
        self._requests.put(None)
        self._call.cancel()


def stream_error(
    response: pb.StreamSessionResponse,
    refusal: Refusal,
    subject: str,
    rule: str = "",
    *,
    message_format: bool = True,
) -> ErrorReport:
    """Check that a stream response is the error the table says.

    Args:
        response: The response.
        refusal: The error expected.
        subject: What was sent, for the failure message.
        rule: The rule being checked; the error table by default.
        message_format: Check the message's wording too (see ``statuses.check_model``).

    Raises:
        Violation: For a result, or another error.
    """
    kind = response.WhichOneof("response")
    if kind != "error":
        raise Violation(
            subject,
            received=f"a {kind} result" if kind else "a response with nothing set",
            expected=refusal.describe(),
            rule=rule or "errors.proto, the error table",
        )
    report = ErrorReport.from_status(response.error)
    expect_refusal(report, refusal, subject, rule, message_format=message_format)
    return report


def stream_result(response: pb.StreamSessionResponse, kind: str, subject: str) -> Any:
    """The ``reset`` or ``step`` result of a stream response.

    Raises:
        Violation: For an error or the other kind of result.
    """
    got = response.WhichOneof("response")
    if got != kind:
        received = (
            f"an error {ErrorReport.from_status(response.error).describe()}"
            if got == "error"
            else f"{got!r}"
        )
        raise Violation(
            subject,
            received=received,
            expected=f"a {kind} result",
            rule="env_service.proto, StreamSessionResponse",
        )
    return getattr(response, kind)
