"""Malformed, hostile and out-of-order requests against a real server, with a bystander.

Hypothesis sends random and malformed requests through the generated stubs, as a
client in any language could: tensors with wrong dtypes, shapes and byte lengths,
huge declared shapes, NaN and infinities in Box actions, wrong-count actions, bad
seeds and reset masks, unknown and ill-typed options, absurd ``num_envs`` and
``step_size``, empty oneofs, other users' and closed session ids, and stream requests
out of order. Every answer must be a proper refusal (never UNKNOWN or INTERNAL, a
message, a field for INVALID_ARGUMENT) or a correct result: the attacker's own
sessions are shadowed in-process by the same environments, so an accepted request
must give exactly what Gymnasium gives and a refused one must change nothing.
Meanwhile a bystander of another user steps a turbofan episode in a thread; it must
see no error and a trajectory bit-identical to an unattacked run.

Bugs this module found are fixed and pinned by the regression tests at its end. Run
with ``-s`` to see how many requests were fuzzed.
"""

from __future__ import annotations

import contextlib
import secrets
import string
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from math import prod
from typing import Any, ClassVar, Literal, TypeVar, cast

import grpc
import gymnasium
import numpy as np
import pytest
from google.protobuf import struct_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from gymnasium import spaces
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space
from gymrpc_testing import (
    TOKENS,
    TOKENS_TOML,
    Running,
    Stream,
    create,
    rpc_error,
    start_server,
    status_of,
    step_request,
    stop_server,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from vector_reference import assert_equivalent, sync_reference

import gymrpc
from gymrpc.errors import DOMAIN, GymrpcError, from_status
from gymrpc.spaces import decode_space
from gymrpc.tensors import decode_tensor, dtype_of, encode_tensor
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc
from gymrpc.v1.tensor_pb2 import DataType, Tensor
from gymrpc.v1.value_pb2 import ObjectArray, Value, ValueList, ValueMap, ValueMapEntry
from gymrpc.values import decode_map, decode_value, encode_value

TURBOFAN = "gymrpc/Turbofan-v0"
PENDULUM = "Pendulum-v1"
CARTPOLE = "CartPole-v1"
NATIVE = pb.VECTORIZATION_MODE_VECTOR_ENTRY_POINT
SYNC = pb.VECTORIZATION_MODE_SYNC
#: Batch size of the attacker's sessions.
NUM_ENVS = 2
#: The server's max_num_envs: small, so that absurd batch sizes are refused cheaply.
MAX_NUM_ENVS = 16
BYSTANDER_ENVS = 4
BYSTANDER_SEED = 2024
#: The bystander steps at most this often and this many times: it must keep stepping
#: throughout an attack without starving the attacker of the machine's two cores.
BYSTANDER_PAUSE = 0.004
BYSTANDER_MAX_STEPS = 4000
#: Never acceptable for anything a request can cause (errors.proto), nor a hang.
FORBIDDEN = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    }
)
CODES = {code.value[0]: code for code in grpc.StatusCode}

#: How many requests each category sent, for the summary line.
FUZZED: Counter[str] = Counter()
#: What the fuzzed requests got: a result, or a refusal by status code.
ANSWERS: Counter[str] = Counter()
#: How many steps the bystanders took while under attack, all checked.
BYSTANDER_STEPS: Counter[str] = Counter()

_Response = TypeVar("_Response", bound=Message)


# --- the arena: one server, an attacker and a bystander -----------------------------


@pytest.fixture(scope="module", autouse=True)
def fuzz_summary() -> Iterator[None]:
    """Print how many requests the module fuzzed, by category (visible with ``-s``)."""
    yield
    detail = ", ".join(f"{name}: {count}" for name, count in sorted(FUZZED.items()))
    answers = ", ".join(f"{name}: {count}" for name, count in ANSWERS.most_common())
    total = sum(count for name, count in FUZZED.items() if not name.startswith(" "))
    print(
        f"\ngymrpc robustness: fuzzed {total} requests ({detail}); answers: {answers}; "
        f"bystanders stepped {BYSTANDER_STEPS.total()} times undisturbed"
    )


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A server with users; alice attacks, bob is the bystander."""
    tokens = tmp_path_factory.mktemp("arena") / "tokens.toml"
    tokens.write_text(TOKENS_TOML)
    running = start_server(tokens_file=tokens, max_num_envs=MAX_NUM_ENVS)
    yield running
    stop_server(running)


def health(running: Running) -> int:
    """The server's overall health status (SERVING is 1)."""
    stub = cast(Any, health_pb2_grpc.HealthStub)(running.channel())
    response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    return int(response.status)


def normalized(result: tuple[Any, ...]) -> tuple[Any, ...]:
    """A step result as the protocol carries it: float64 rewards, bool flags."""
    observations, rewards, terminations, truncations, info = result
    return (
        observations,
        np.asarray(rewards, dtype=np.float64),
        np.asarray(terminations, dtype=np.bool_),
        np.asarray(truncations, dtype=np.bool_),
        info,
    )


def native_turbofan(num_envs: int) -> VectorEnv[Any, Any, Any]:
    """The turbofan's own vector implementation, in-process: the unattacked reference."""
    return gymnasium.make_vec(TURBOFAN, num_envs=num_envs, vectorization_mode="vector_entry_point")


class Bystander:
    """Bob steps a turbofan batch through the gymrpc client in a thread.

    Use it as a context manager around an attack, then call :meth:`assert_undisturbed`.
    """

    def __init__(self, running: Running) -> None:
        self.env = gymrpc.make_vec(
            TURBOFAN, BYSTANDER_ENVS, target=running.target, token=TOKENS["bob"], timeout=60.0
        )
        rng = np.random.default_rng(BYSTANDER_SEED)
        self.actions = rng.integers(0, 3, size=(BYSTANDER_MAX_STEPS, BYSTANDER_ENVS))
        self.trajectory: list[tuple[Any, ...]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._stepping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bystander", daemon=True)

    @property
    def session_id(self) -> str:
        return self.env.session_id

    def _run(self) -> None:
        try:
            self.trajectory.append(self.env.reset(seed=BYSTANDER_SEED))
            for actions in self.actions:
                if self._stop.wait(BYSTANDER_PAUSE):
                    return
                self.trajectory.append(normalized(self.env.step(actions)))
                self._stepping.set()
        except BaseException as error:  # reported by assert_undisturbed
            self.error = error
        finally:
            self._stepping.set()

    def __enter__(self) -> Bystander:
        self._thread.start()
        self._stepping.wait(60)  # the attack starts once the bystander steps
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(60)
        self.env.close()

    def assert_undisturbed(self) -> None:
        """No error, and every result equal to an unattacked run of the same seed."""
        assert not self._thread.is_alive(), "the bystander did not stop"
        assert self.error is None, f"the bystander saw {type(self.error).__name__}: {self.error}"
        assert len(self.trajectory) > 1, "the bystander never stepped during the attack"
        reference = native_turbofan(BYSTANDER_ENVS)
        try:
            assert_equivalent(self.trajectory[0], reference.reset(seed=BYSTANDER_SEED), "reset")
            for index, (got, actions) in enumerate(
                zip(self.trajectory[1:], self.actions, strict=False)
            ):
                want = normalized(reference.step(actions))
                assert_equivalent(got, want, f"bystander step {index}")
        finally:
            reference.close()
        BYSTANDER_STEPS["steps"] += len(self.trajectory) - 1


def watched(arena: Running, attack: Callable[[Bystander], None]) -> None:
    """Run an attack while bob steps; then check bob's trajectory and the server's health."""
    with Bystander(arena) as watcher:
        attack(watcher)
    watcher.assert_undisturbed()
    assert health(arena) == health_pb2.HealthCheckResponse.SERVING


# --- what every answer must look like ---------------------------------------------------


def assert_proper_refusal(status: status_pb2.Status) -> GymrpcError:
    """A refusal a client can act on: a deliberate code, a message, details, a field."""
    code = CODES.get(status.code)
    assert code is not None, f"status code {status.code} is not a gRPC code"
    assert code not in FORBIDDEN, f"{code.name}: {status.message}"
    assert status.message.strip(), f"{code.name} without a message"
    ANSWERS[code.name] += 1
    infos = [error_details_pb2.ErrorInfo() for _ in status.details]
    assert any(
        detail.Unpack(info) and info.domain == DOMAIN
        for detail, info in zip(status.details, infos, strict=True)
    ), f"{code.name} without an ErrorInfo: {status.message}"
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        fields = []
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                fields += [violation.field for violation in bad_request.field_violations]
        assert any(fields), f"INVALID_ARGUMENT naming no field: {status.message}"
    return from_status(status)


def answer(category: str, call: Callable[[], _Response]) -> _Response | GymrpcError:
    """Make a unary call; return its response, or its (checked) refusal."""
    FUZZED[category] += 1
    try:
        response = call()
    except grpc.RpcError as error:
        return assert_proper_refusal(status_of(error))
    ANSWERS["result"] += 1
    return response


def assert_refused(outcome: object, code: grpc.StatusCode, reason: str) -> GymrpcError:
    assert isinstance(outcome, GymrpcError), f"expected {code.name} {reason}, got a result"
    assert (outcome.code, outcome.reason) == (code, reason), outcome.message
    return outcome


# --- strategies -----------------------------------------------------------------------

DATA_TYPES = sorted(DataType.values())
ITEM_SIZES = {code: dtype_of(code).itemsize for code in DATA_TYPES if code}
INT64 = st.integers(-(2**63), 2**63 - 1)
SHORT_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
#: Ids, some far longer than any real one (their errors must still fit in trailers).
ID_TEXT = st.text(string.ascii_letters + string.digits + "-_", max_size=40) | st.just("i" * 5000)
DIMENSIONS = st.one_of(st.integers(0, 4), st.integers(-(2**63), -1), st.integers(2**20, 2**63 - 1))
NUMPY_DTYPES = [np.bool_, np.int8, np.uint8, np.int32, np.int64, np.uint64]
NUMPY_DTYPES += [np.float16, np.float32, np.float64]
FLOAT_WIDTHS: dict[int, Literal[16, 32, 64]] = {2: 16, 4: 32, 8: 64}


@st.composite
def tensors(draw: st.DrawFn) -> Tensor:
    """Any Tensor: unknown dtypes, negative or huge dimensions, bytes that fit or not."""
    code = draw(st.one_of(st.sampled_from(DATA_TYPES), st.integers(-(2**31), 2**31 - 1)))
    shape = draw(st.lists(DIMENSIONS, max_size=4))
    size = prod(shape)
    known = DataType.ValueType(code) in ITEM_SIZES
    if known and min(shape, default=0) >= 0 and size <= 16 and draw(st.booleans()):
        length = size * ITEM_SIZES[DataType.ValueType(code)]
        data = draw(st.binary(min_size=length, max_size=length))
    else:
        data = draw(st.binary(max_size=48))
    return Tensor(dtype=DataType.ValueType(code), shape=shape, data=data)


def _leaves() -> st.SearchStrategy[Value]:
    return st.one_of(
        st.just(Value()),  # no kind set
        st.just(Value(null_value=struct_pb2.NULL_VALUE)),
        st.booleans().map(lambda flag: Value(bool_value=flag)),
        INT64.map(lambda number: Value(int_value=number)),
        st.floats().map(lambda number: Value(float_value=number)),
        SHORT_TEXT.map(lambda text: Value(string_value=text)),
        st.binary(max_size=24).map(lambda data: Value(bytes_value=data)),
        tensors().map(lambda tensor: Value(array_value=tensor)),
        tensors().map(lambda tensor: Value(scalar_value=tensor)),
    )


def _containers(children: st.SearchStrategy[Value]) -> st.SearchStrategy[Value]:
    items = st.lists(children, max_size=3)
    entries = st.lists(st.tuples(st.sampled_from("ab"), children), max_size=3)
    return st.one_of(
        items.map(lambda values: Value(list_value=ValueList(items=values))),
        items.map(lambda values: Value(tuple_value=ValueList(items=values))),
        entries.map(
            lambda pairs: Value(
                dict_value=ValueMap(entries=[ValueMapEntry(key=k, value=v) for k, v in pairs])
            )
        ),
        st.tuples(st.lists(DIMENSIONS, max_size=2), items).map(
            lambda pair: Value(object_array_value=ObjectArray(shape=pair[0], items=pair[1]))
        ),
    )


#: Any Value: no kind, malformed tensors, duplicate keys, object arrays of wrong length.
VALUES = st.recursive(_leaves(), _containers, max_leaves=6)


def _elements(dtype: np.dtype[Any]) -> st.SearchStrategy[Any]:
    """Mostly values near a small action space's range, sometimes anything of the dtype."""
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind == "f":
        near = st.floats(-2.5, 2.5, width=FLOAT_WIDTHS[dtype.itemsize])
        odd = st.sampled_from([np.nan, np.inf, -np.inf, 2.0000002, -2.0000002])
        return st.one_of(near, near, odd, hnp.from_dtype(dtype))
    low = max(-1, int(np.iinfo(dtype).min))
    return st.one_of(st.integers(low, 3), hnp.from_dtype(dtype))


def plausible_arrays(num_envs: int, single_shape: tuple[int, ...]) -> st.SearchStrategy[Any]:
    """Arrays that look like a batch: right or wrong dtype, count and shape."""
    shapes = st.sampled_from(
        [
            (num_envs, *single_shape),
            (num_envs, *single_shape),
            (num_envs + 1, *single_shape),
            (num_envs - 1, *single_shape),
            (num_envs, *single_shape, 2),
            (num_envs, 3),
            (),
            (0,),
        ]
    )
    return st.sampled_from(NUMPY_DTYPES).flatmap(
        lambda dtype: hnp.arrays(np.dtype(dtype), shapes, elements=_elements(np.dtype(dtype)))
    )


def seedings(num_envs: int) -> st.SearchStrategy[Callable[[pb.ResetRequest], None]]:
    """Ways to fill a reset's ``seeding`` oneof: none, seeds that fit or overflow, garbage."""

    def seed(value: int) -> Callable[[pb.ResetRequest], None]:
        return lambda request: setattr(request, "seed", value)

    def per_env(values: Tensor, present: Tensor | None) -> Callable[[pb.ResetRequest], None]:
        def fill(request: pb.ResetRequest) -> None:
            request.seeds.values.CopyFrom(values)
            if present is not None:
                request.seeds.present.CopyFrom(present)

        return fill

    seeds = hnp.arrays(np.uint64, num_envs).map(encode_tensor)
    masks = hnp.arrays(np.bool_, num_envs).map(encode_tensor)
    wrong = plausible_arrays(num_envs, ()).map(encode_tensor)
    return st.one_of(
        st.just(lambda request: None),
        st.integers(0, 2**20).map(seed),
        st.integers(2**64 - 4, 2**64 - 1).map(seed),
        st.builds(per_env, seeds, st.none() | masks),
        st.builds(per_env, st.one_of(wrong, tensors()), st.none() | wrong | tensors()),
    )


def reset_masks(num_envs: int) -> st.SearchStrategy[Tensor | None]:
    """No mask, bool masks (all false included), masks of wrong dtype or shape, garbage."""
    return st.one_of(
        st.none(),
        hnp.arrays(np.bool_, num_envs).map(encode_tensor),
        plausible_arrays(num_envs, ()).map(encode_tensor),
        tensors(),
    )


def requested_seeds(request: pb.ResetRequest) -> int | list[int | None] | None:
    """The seeds a reset request asks for, as Gymnasium takes them."""
    which = request.WhichOneof("seeding")
    if which == "seed":
        return request.seed
    if which is None:
        return None
    values = decode_tensor(request.seeds.values).tolist()
    if not request.seeds.HasField("present"):
        return [int(value) for value in values]
    present = decode_tensor(request.seeds.present).tolist()
    return [int(v) if used else None for v, used in zip(values, present, strict=True)]


def fits(space: spaces.Space[Any], actions: Any, num_envs: int) -> bool:
    """Whether accepted actions really were inside the batched action space."""
    if not isinstance(actions, np.ndarray) or actions.shape != (num_envs, *(space.shape or ())):
        return False
    if isinstance(space, spaces.Box):
        return actions.dtype.kind == "f" and bool(
            np.all((actions >= space.low) & (actions <= space.high))
        )
    assert isinstance(space, spaces.Discrete)
    inside = (actions >= space.start) & (actions < space.start + space.n)
    return actions.dtype == space.dtype and bool(np.all(inside))


# --- the attacker's shadowed sessions -----------------------------------------------------


class Mirror:
    """One of the attacker's sessions and the same environment run in-process.

    The local copy receives exactly what the server accepted, so the two stay equal as
    long as accepted requests are executed faithfully and refused ones change nothing.
    It also models the session's stream state (last sequence, remembered response).
    """

    def __init__(self, stub: pb_grpc.EnvServiceStub, env_id: str, seed: int) -> None:
        self.stub = stub
        self.env_id = env_id
        native = env_id == TURBOFAN
        session = create(stub, env_id, NUM_ENVS, vectorization_mode=NATIVE if native else SYNC)
        self.session_id = session.session_id
        self.local: VectorEnv[Any, Any, Any] = (
            native_turbofan(NUM_ENVS)
            if native
            else sync_reference(env_id, NUM_ENVS, gymnasium.vector.AutoresetMode.NEXT_STEP)
        )
        self.space = self.local.single_action_space
        self.last_sequence = 0
        self.replay: tuple[pb.StreamSessionRequest, pb.StreamSessionResponse] | None = None
        request = pb.ResetRequest(session_id=self.session_id, seed=seed)
        self.reset_answered(request, stub.Reset(request, timeout=30))

    def sample(self, seed: int) -> Value:
        """Valid actions: a sample of the batched action space."""
        space = batch_space(self.space, NUM_ENVS)
        space.seed(seed)
        return encode_value(space.sample())

    def actions(self) -> st.SearchStrategy[Value]:
        """Valid, plausible-but-wrong and garbage actions."""
        arrays = plausible_arrays(NUM_ENVS, self.space.shape or ())
        return st.one_of(
            st.integers(0, 2**32 - 1).map(self.sample),
            arrays.map(encode_value),
            arrays.map(encode_value),
            VALUES,
        )

    def step_answered(self, request: pb.StepRequest, outcome: object) -> None:
        """Check a step's outcome against the local copy, stepping it if accepted."""
        if isinstance(outcome, GymrpcError):
            with contextlib.suppress(GymrpcError):
                actions = decode_value(request.actions)
                if isinstance(actions, np.ndarray) and actions.dtype.kind == "f":
                    FUZZED[" of which non-finite float actions"] += int(
                        not np.isfinite(actions).all()
                    )
            return
        assert isinstance(outcome, pb.StepResponse)
        actions = decode_value(request.actions)
        assert fits(self.space, actions, NUM_ENVS), f"accepted actions outside {self.space}"
        got = (
            decode_value(outcome.observations),
            decode_tensor(outcome.rewards),
            decode_tensor(outcome.terminations),
            decode_tensor(outcome.truncations),
            decode_map(outcome.info),
        )
        assert_equivalent(got, normalized(self.local.step(actions)), f"{self.env_id} step")

    def reset_answered(self, request: pb.ResetRequest, outcome: object) -> None:
        """Check a reset's outcome against the local copy, resetting it if accepted."""
        if isinstance(outcome, GymrpcError):
            return
        assert isinstance(outcome, pb.ResetResponse)
        options = None
        if request.HasField("reset_mask"):
            options = {"reset_mask": decode_tensor(request.reset_mask)}
        # VectorEnv annotates seed as int | None; SyncVectorEnv also takes per-env lists.
        want = self.local.reset(seed=cast(Any, requested_seeds(request)), options=options)
        got = (decode_value(outcome.observations), decode_map(outcome.info))
        assert_equivalent(got, want, f"{self.env_id} reset")

    def close(self) -> None:
        self.local.close()
        with contextlib.suppress(grpc.RpcError):
            self.stub.CloseSession(pb.CloseSessionRequest(session_id=self.session_id), timeout=30)


@dataclass
class StreamModel:
    """A stream of the attacker and the session it is bound to, if any."""

    stream: Stream
    bound: Mirror | None = None


@dataclass
class Target:
    """What a stream request names: one of the attacker's sessions, or someone else's."""

    session_id: str
    mirror: Mirror | None = None


@dataclass
class Prediction:
    """What the server must answer to a stream request, from the protocol's rules."""

    outcome: str  # "invalid", "not_found", "out_of_order", "replay" or "execute"
    mirror: Mirror | None = None


def predict(model: StreamModel, target: Target, request: pb.StreamSessionRequest) -> Prediction:
    """The stream rules of env_service.proto, applied to one request."""
    if request.WhichOneof("request") is None or not target.session_id:
        return Prediction("invalid")
    if model.bound is None:
        if target.mirror is None:
            return Prediction("not_found")
        mirror = target.mirror
    elif target.session_id != model.bound.session_id:
        return Prediction("out_of_order")
    else:
        mirror = model.bound
    if mirror.replay is not None and request.sequence == mirror.replay[0].sequence:
        return Prediction("replay" if request == mirror.replay[0] else "out_of_order", mirror)
    if request.sequence <= mirror.last_sequence:
        return Prediction("out_of_order", mirror)
    return Prediction("execute", mirror)


class Attack(RuleBasedStateMachine):
    """Alice's requests, valid and not, unary and streamed, on her sessions and others'."""

    running: ClassVar[Running]
    bystander_id: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.stub = self.running.stub(TOKENS["alice"])
        self.mirrors: list[Mirror] = []
        self.streams: list[StreamModel] = []
        self.closed_ids: list[str] = []
        self.scratch_id = ""

    @initialize(seed=st.integers(0, 2**32 - 1))
    def open_sessions(self, seed: int) -> None:
        self.mirrors = [Mirror(self.stub, TURBOFAN, seed), Mirror(self.stub, PENDULUM, seed)]
        # Unmirrored: reset options go to a session of its own, whose steps may be
        # refused for want of a first reset.
        self.scratch_id = create(self.stub, TURBOFAN, NUM_ENVS).session_id
        closed = create(self.stub, CARTPOLE, 1).session_id
        self.stub.CloseSession(pb.CloseSessionRequest(session_id=closed), timeout=30)
        self.closed_ids.append(closed)

    # --- unary ---------------------------------------------------------------------

    @rule(data=st.data(), which=st.integers(0, 1))
    def unary_step(self, data: st.DataObject, which: int) -> None:
        mirror = self.mirrors[which]
        request = pb.StepRequest(session_id=mirror.session_id, actions=data.draw(mirror.actions()))
        mirror.replay = None  # a unary call forgets the stream's remembered response
        mirror.step_answered(request, answer("unary Step", lambda: self.stub.Step(request)))

    @rule(data=st.data(), which=st.integers(0, 1))
    def unary_reset(self, data: st.DataObject, which: int) -> None:
        mirror = self.mirrors[which]
        request = self.reset_request(data, mirror.session_id)
        mirror.replay = None
        mirror.reset_answered(request, answer("unary Reset", lambda: self.stub.Reset(request)))

    def reset_request(self, data: st.DataObject, session_id: str) -> pb.ResetRequest:
        request = pb.ResetRequest(session_id=session_id)
        data.draw(seedings(NUM_ENVS))(request)
        mask = data.draw(reset_masks(NUM_ENVS))
        if mask is not None:
            request.reset_mask.CopyFrom(mask)
        return request

    @rule(
        options=st.dictionaries(st.sampled_from(["reset_mask", "bogus", "seed", ""]), VALUES),
        seed=st.none() | st.integers(0, 2**64 - 1),
        step=st.booleans(),
    )
    def scratch_reset_with_options(
        self, options: dict[str, Value], seed: int | None, step: bool
    ) -> None:
        request = pb.ResetRequest(session_id=self.scratch_id, options=options)
        if seed is not None:
            request.seed = seed
        answer("reset options", lambda: self.stub.Reset(request))
        if step:
            action = step_request(self.scratch_id, [0] * NUM_ENVS)
            outcome = answer("unary Step", lambda: self.stub.Step(action))
            if isinstance(outcome, GymrpcError):
                assert_refused(outcome, grpc.StatusCode.FAILED_PRECONDITION, "RESET_REQUIRED")

    @rule(
        whose=st.sampled_from(["bystander", "closed", "random", "empty"]),
        call=st.sampled_from(["GetSession", "CloseSession", "Reset", "Step", "Render"]),
        random_id=ID_TEXT,
    )
    def foreign_session(self, whose: str, call: str, random_id: str) -> None:
        session_id = self.foreign_id(whose, random_id)
        requests: dict[str, Callable[[], Message]] = {
            "GetSession": lambda: self.stub.GetSession(pb.GetSessionRequest(session_id=session_id)),
            "CloseSession": lambda: self.stub.CloseSession(
                pb.CloseSessionRequest(session_id=session_id)
            ),
            "Reset": lambda: self.stub.Reset(pb.ResetRequest(session_id=session_id, seed=1)),
            "Step": lambda: self.stub.Step(step_request(session_id, [0] * NUM_ENVS)),
            "Render": lambda: self.stub.Render(pb.RenderRequest(session_id=session_id)),
        }
        outcome = answer("foreign session", requests[call])
        if not session_id:
            # An empty id names nothing: a malformed request, not a missing session.
            assert_refused(outcome, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
        else:
            assert_refused(outcome, grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND")

    def foreign_id(self, whose: str, random_id: str) -> str:
        return {
            "bystander": self.bystander_id,
            "closed": self.closed_ids[0],
            "random": random_id,
            "empty": "",
        }[whose]

    # --- the stream ------------------------------------------------------------------

    @precondition(lambda self: len(self.streams) < 2)
    @rule()
    def open_stream(self) -> None:
        self.streams.append(StreamModel(self.running.stream(self.stub)))

    @precondition(lambda self: bool(self.streams))
    @rule(data=st.data())
    def close_stream(self, data: st.DataObject) -> None:
        model = self.streams.pop(data.draw(st.integers(0, len(self.streams) - 1)))
        model.stream.close()
        assert list(model.stream.responses) == [], "responses after the last request"

    @rule(
        data=st.data(),
        names=st.sampled_from(["turbofan", "pendulum", "bystander", "closed", "random"]),
        operation=st.sampled_from(["step", "reset", "none", "replay"]),
        move=st.sampled_from(["next", "next", "skip", "same", "lower", "zero"]),
    )
    def stream_request(self, data: st.DataObject, names: str, operation: str, move: str) -> None:
        """Anything on any stream: other sessions, missing operations, bad sequences."""
        mirrors = {"turbofan": 0, "pendulum": 1}
        if names in mirrors:
            mirror = self.mirrors[mirrors[names]]
            target = Target(mirror.session_id, mirror)
        else:
            target = Target(self.foreign_id(names, data.draw(ID_TEXT)))
        self.send(data, target, self.stream_message(data, target, operation, move))

    @rule(data=st.data(), which=st.integers(0, 1))
    def stream_step(self, data: st.DataObject, which: int) -> None:
        """The common case: the next step of a session, on a stream that may take it."""
        mirror = self.mirrors[which]
        target = Target(mirror.session_id, mirror)
        usable = [model for model in self.streams if model.bound in (None, mirror)]
        self.send(data, target, self.stream_message(data, target, "step", "next"), usable)

    def send(
        self,
        data: st.DataObject,
        target: Target,
        request: pb.StreamSessionRequest,
        streams: list[StreamModel] | None = None,
    ) -> None:
        """Send one request on one of ``streams`` (any stream by default; a new one if none)."""
        streams = self.streams if streams is None else streams
        if not streams:
            if len(self.streams) == 2:
                self.close_stream(data)
            self.open_stream()
            streams = self.streams[-1:]
        model = data.draw(st.sampled_from(streams))
        prediction = predict(model, target, request)
        FUZZED["stream request"] += 1
        FUZZED[f" of which stream {prediction.outcome}"] += 1
        response = model.stream.round_trip(request)
        assert response.sequence == request.sequence
        self.check_stream_answer(model, prediction, request, response)

    def stream_message(
        self, data: st.DataObject, target: Target, operation: str, move: str
    ) -> pb.StreamSessionRequest:
        mirror = target.mirror
        if operation == "replay" and mirror is not None and mirror.replay is not None:
            return mirror.replay[0]
        last = mirror.last_sequence if mirror is not None else 0
        sequence = {
            "next": last + 1,
            "skip": last + data.draw(st.integers(2, 1000)),
            "same": last,
            "lower": data.draw(st.integers(0, max(last - 1, 0))),
            "zero": 0,
        }[move]
        request = pb.StreamSessionRequest(sequence=sequence)
        if operation == "reset":
            request.reset.CopyFrom(self.reset_request(data, target.session_id))
        elif operation in ("step", "replay"):
            actions = data.draw(mirror.actions()) if mirror is not None else data.draw(VALUES)
            request.step.CopyFrom(pb.StepRequest(session_id=target.session_id, actions=actions))
        return request

    def check_stream_answer(
        self,
        model: StreamModel,
        prediction: Prediction,
        request: pb.StreamSessionRequest,
        response: pb.StreamSessionResponse,
    ) -> None:
        kind = response.WhichOneof("response")
        outcome: object = response.step if kind == "step" else response.reset
        if kind == "error":
            outcome = assert_proper_refusal(response.error)
        else:
            ANSWERS["result"] += 1
        expected = {
            "invalid": (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
            "not_found": (grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND"),
            "out_of_order": (grpc.StatusCode.INVALID_ARGUMENT, "OUT_OF_ORDER"),
        }.get(prediction.outcome)
        if expected is not None:
            assert_refused(outcome, *expected)
            return
        mirror = prediction.mirror
        assert mirror is not None
        model.bound = mirror
        if prediction.outcome == "replay":
            assert mirror.replay is not None
            assert response == mirror.replay[1], "a retried request was not answered from memory"
            return
        mirror.last_sequence = request.sequence
        mirror.replay = (request, response)
        if request.HasField("step"):
            mirror.step_answered(request.step, outcome)
        else:
            mirror.reset_answered(request.reset, outcome)

    # --- after each example -------------------------------------------------------------

    def teardown(self) -> None:
        try:
            for model in self.streams:
                model.stream.close()
                assert list(model.stream.responses) == []
            for mirror in self.mirrors:
                # Whatever was refused, the session still steps exactly like the copy.
                request = pb.StepRequest(session_id=mirror.session_id, actions=mirror.sample(0))
                mirror.step_answered(request, self.stub.Step(request, timeout=30))
        finally:
            for mirror in self.mirrors:
                mirror.close()
            if self.scratch_id:
                self.stub.CloseSession(
                    pb.CloseSessionRequest(session_id=self.scratch_id), timeout=30
                )


def test_fuzzed_requests_and_streams(arena: Running) -> None:
    def attack(bystander: Bystander) -> None:
        Attack.running = arena
        Attack.bystander_id = bystander.session_id
        run_state_machine_as_test(
            Attack, settings=settings(max_examples=80, stateful_step_count=30)
        )

    watched(arena, attack)
    alice = arena.stub(TOKENS["alice"])
    usage = alice.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).usage
    assert usage.open_sessions == 0, "the attack left sessions behind"


# --- CreateSession --------------------------------------------------------------------

ENV_IDS = [TURBOFAN, PENDULUM, CARTPOLE, "gymrpc-test/DictObs-v0", "gymrpc-test/CustomSpace-v0"]
ABSURD_INTS = [0, -1, -2, 101, 2**31, 2**32 + 1, -(2**63), 2**63 - 1]
TURBOFAN_PARAMS = ["wear_mean", "hazard_base", "shop_days", "sale_value", "failure_reward"]
ENUMS = st.integers(4, 2**31 - 1) | st.integers(-(2**31), -1)


def encoded(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Value]:
    return strategy.map(encode_value)


#: What each environment takes, with values of the right type and in range.
ENV_OPTIONS: dict[str, dict[str, st.SearchStrategy[Value]]] = {
    TURBOFAN: {
        "step_size": encoded(st.integers(1, 100)),
        "max_episode_steps": encoded(st.integers(1, 10**12)),
        "expose_hidden_state": encoded(st.just(False)),
        "params": encoded(st.fixed_dictionaries({"wear_mean": st.floats(0.5, 2.0)})),
    },
    PENDULUM: {
        "g": encoded(st.floats(0, 20) | st.integers(0, 20)),
        "max_episode_steps": encoded(st.integers(1, 10**6)),
    },
    CARTPOLE: {
        "sutton_barto_reward": encoded(st.booleans()),
        "max_episode_steps": encoded(st.integers(1, 10**6)),
    },
    "gymrpc-test/DictObs-v0": {
        "horizon": encoded(st.integers(1, 50)),
        "end_probability": encoded(st.floats(0, 1)),
        "render_mode": encoded(st.just("rgb_array")),
    },
    "gymrpc-test/CustomSpace-v0": {},
}
#: Values no option takes, or not in range; and names no environment takes.
ABSURD_VALUES = st.one_of(
    encoded(st.sampled_from(ABSURD_INTS) | st.floats() | SHORT_TEXT | st.booleans()),
    encoded(st.sampled_from(["human", "ansi", "rgb_array"])),
    encoded(st.dictionaries(SHORT_TEXT | st.sampled_from(TURBOFAN_PARAMS), st.floats())),
    VALUES,
)
#: Names that some environment takes or that none takes (or that the server sets itself).
OTHER_NAMES = ["num_envs", "autoreset_mode", "render_mode", "g", "horizon", "step_size"]


@st.composite
def create_requests(draw: st.DrawFn) -> pb.CreateSessionRequest:
    """CreateSession requests: valid ones, and ones with one or every field made absurd."""
    fields = ["env_id", "num_envs", "autoreset_mode", "vectorization_mode", "options"]
    absurd = draw(st.sampled_from([[], [], [], *([field] for field in fields), fields]))
    env_id = draw(
        SHORT_TEXT | st.just("e" * 5000) if "env_id" in absurd else st.sampled_from(ENV_IDS)
    )
    accepted = ENV_OPTIONS.get(env_id, {})
    options = draw(
        st.lists(st.sampled_from(sorted(accepted)), max_size=2, unique=True)
        if accepted
        else st.just([])
    )
    request = pb.CreateSessionRequest(
        env_id=env_id,
        num_envs=draw(
            st.sampled_from([0, MAX_NUM_ENVS + 1, 2**32 - 1])
            if "num_envs" in absurd
            else st.integers(1, 3)
        ),
        autoreset_mode=pb.AutoresetMode.ValueType(
            draw(ENUMS if "autoreset_mode" in absurd else st.integers(0, 3))
        ),
        vectorization_mode=pb.VectorizationMode.ValueType(
            draw(ENUMS if "vectorization_mode" in absurd else st.integers(0, 2))
        ),
        env_options={name: draw(accepted[name]) for name in options},
    )
    if "options" in absurd:
        name = draw(st.sampled_from(sorted(accepted) + OTHER_NAMES) | SHORT_TEXT)
        request.env_options[name].CopyFrom(draw(ABSURD_VALUES))
    if draw(st.booleans()):
        request.seed = draw(st.integers(0, 2**64 - 1))
    return request


def test_fuzzed_session_creation(arena: Running) -> None:
    alice = arena.stub(TOKENS["alice"])

    @settings(max_examples=300)
    @given(request=create_requests())
    def create_session(request: pb.CreateSessionRequest) -> None:
        outcome = answer("CreateSession", lambda: alice.CreateSession(request, timeout=30))
        if isinstance(outcome, pb.CreateSessionResponse):
            FUZZED[" of which sessions created, reset and stepped"] += 1
            session = outcome.session
            assert 1 <= session.num_envs <= MAX_NUM_ENVS
            assert session.env_id == request.env_id
            try:
                use(alice, session)
            finally:
                close = pb.CloseSessionRequest(session_id=session.session_id)
                alice.CloseSession(close, timeout=30)
        usage = alice.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).usage
        assert usage.open_sessions == 0, "a refused or closed session was left behind"

    watched(arena, lambda _: create_session())


def use(stub: pb_grpc.EnvServiceStub, session: pb.Session) -> None:
    """Whatever options a session accepted, it resets and steps.

    Odd options (a DictObs horizon of 0, a NaN gravity) make observations leave their
    space, and Gymnasium's env checker warns. A served environment only logs that; the
    in-process server here shares pytest's warnings-as-errors filter, which would turn
    the warning into an environment error, so it is ignored for these calls.
    """
    space = batch_space(decode_space(session.single_action_space), session.num_envs)
    space.seed(0)
    request = pb.StepRequest(session_id=session.session_id, actions=encode_value(space.sample()))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*WARN: The obs returned by", UserWarning)
        stub.Reset(pb.ResetRequest(session_id=session.session_id, seed=0), timeout=30)
        stub.Step(request, timeout=30)


# --- regressions: bugs found here, fixed ---------------------------------------------------


@pytest.fixture
def turbofan(arena: Running) -> Iterator[tuple[pb_grpc.EnvServiceStub, str]]:
    """Alice's stub and a turbofan session of hers, reset."""
    alice = arena.stub(TOKENS["alice"])
    session_id = create(alice, TURBOFAN, NUM_ENVS).session_id
    alice.Reset(pb.ResetRequest(session_id=session_id, seed=0), timeout=30)
    yield alice, session_id
    alice.CloseSession(pb.CloseSessionRequest(session_id=session_id), timeout=30)


def test_a_step_without_actions_names_the_field(
    turbofan: tuple[pb_grpc.EnvServiceStub, str],
) -> None:
    alice, session_id = turbofan
    error = rpc_error(lambda: alice.Step(pb.StepRequest(session_id=session_id), timeout=30))
    refusal = assert_proper_refusal(status_of(error))
    assert (refusal.reason, refusal.field) == ("INVALID_ACTION", "actions")


def test_a_reset_refused_for_its_options_changes_nothing(
    turbofan: tuple[pb_grpc.EnvServiceStub, str],
) -> None:
    alice, session_id = turbofan
    request = pb.ResetRequest(session_id=session_id, options={"bogus": encode_value(1)})
    error = rpc_error(lambda: alice.Reset(request, timeout=30))
    assert assert_proper_refusal(status_of(error)).reason == "INVALID_OPTION"
    alice.Step(step_request(session_id, [0] * NUM_ENVS), timeout=30)


@pytest.mark.parametrize("env_id", [CARTPOLE, "gymrpc-test/DictObs-v0"])
def test_a_sync_env_without_a_time_limit_is_served(running: Running, env_id: str) -> None:
    stub = running.stub()
    request = pb.CreateSessionRequest(
        env_id=env_id, num_envs=NUM_ENVS, env_options={"max_episode_steps": encode_value(-1)}
    )
    outcome: pb.CreateSessionResponse | grpc.RpcError
    try:
        outcome = stub.CreateSession(request, timeout=30)
    except grpc.RpcError as error:
        outcome = error
    created = int(isinstance(outcome, pb.CreateSessionResponse))
    open_sessions = stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10).usage.open_sessions
    assert (created, open_sessions) == (1, 1), f"{outcome}; sessions open: {open_sessions}"


def _raw_call(running: Running, method: str) -> Callable[[bytes], object]:
    """Send arbitrary bytes as the request body of an EnvService method."""
    path = f"/gymrpc.v1.EnvService/{method}"
    metadata = (("authorization", f"Bearer {TOKENS['alice']}"),)
    if method == "StreamSession":
        stream: grpc.StreamStreamMultiCallable[bytes, bytes] = running.channel().stream_stream(path)
        return lambda body: list(stream(iter([body]), timeout=30, metadata=metadata))
    unary: grpc.UnaryUnaryMultiCallable[bytes, bytes] = running.channel().unary_unary(path)
    return lambda body: unary(body, timeout=30, metadata=metadata)


def _deep_step(depth: int, streamed: bool) -> bytes:
    """A step whose actions nest ``depth`` lists deep, beyond protobuf's recursion limit."""
    body = Value(int_value=1).SerializeToString()
    for _ in range(depth):
        body = _field(9, _field(1, body))  # Value.list_value -> ValueList.items
    step = _field(1, b"x" * 40) + _field(2, body)  # StepRequest.session_id, .actions
    return _field(3, step) if streamed else step  # StreamSessionRequest.step


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


#: Request bodies no protobuf parser accepts, for unary Step and for the stream.
UNDECODABLE = {
    "garbage": (b"\xff\xff\xff\xff\x0f", b"\xff\xff\xff\xff\x0f"),
    "truncated": (
        step_request("x" * 40, [0, 1]).SerializeToString()[:-5],
        pb.StreamSessionRequest(
            sequence=1, step=step_request("x" * 40, [0, 1])
        ).SerializeToString()[:-5],
    ),
    "too-deep": (_deep_step(120, streamed=False), _deep_step(120, streamed=True)),
}


@pytest.mark.parametrize("body", list(UNDECODABLE))
@pytest.mark.parametrize("method", ["Step", "StreamSession"])
def test_undecodable_request_bodies_are_invalid_argument(
    arena: Running, method: str, body: str
) -> None:
    call = _raw_call(arena, method)
    error = rpc_error(lambda: call(UNDECODABLE[body][method == "StreamSession"]))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error.details()


@pytest.mark.parametrize("what", ["session_id", "env_id", "option"])
def test_errors_about_long_inputs_reach_the_client(arena: Running, what: str) -> None:
    alice = arena.stub(TOKENS["alice"])
    long = "x" * 5000
    calls: dict[str, tuple[Callable[[], object], grpc.StatusCode]] = {
        "session_id": (
            lambda: alice.GetSession(pb.GetSessionRequest(session_id=long), timeout=10),
            grpc.StatusCode.NOT_FOUND,
        ),
        "env_id": (lambda: create(alice, long), grpc.StatusCode.NOT_FOUND),
        "option": (
            lambda: create(alice, TURBOFAN, env_options={"render_mode": long}),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    }
    call, code = calls[what]
    error = rpc_error(call)
    assert error.code() is code, error.details()


def test_a_long_session_id_is_not_found(arena: Running) -> None:
    """Below the metadata limit, long ids are an ordinary NOT_FOUND."""
    alice = arena.stub(TOKENS["alice"])
    long = secrets.token_urlsafe(600)[:800]
    error = rpc_error(lambda: alice.GetSession(pb.GetSessionRequest(session_id=long), timeout=10))
    assert assert_proper_refusal(status_of(error)).reason == "SESSION_NOT_FOUND"
