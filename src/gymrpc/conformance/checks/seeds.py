"""Seeds and determinism (ResetRequest.seeding, PerEnvSeeds, CreateSessionRequest.seed)."""

from __future__ import annotations

from typing import Final

from gymrpc.conformance.framework import Violation, check
from gymrpc.conformance.model import ConformanceModel, value_of
from gymrpc.conformance.probe import SEED, Probe
from gymrpc.conformance.wire import encode_tensor, expect_reset, read_array
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import tensor_pb2

__all__ = ["determinism", "per_env", "session_seed"]

_ACTIONS: Final = ([2, 0], [1, 1], [0, 2], [2, 2], [1, 0], [0, 0], [2, 1])


@check(
    "seeds.determinism",
    rule="env_service.proto, ResetRequest.seed; docs/conformance.md (the generator)",
    title="the same seed and actions give the same trajectory, in two sessions and after "
    "re-seeding, equal to the documented generator's",
)
def determinism(probe: Probe) -> None:
    """Run one trajectory three times: two sessions, then the first one re-seeded."""
    first, second = probe.create(num_envs=2), probe.create(num_envs=2)
    models = ConformanceModel(2), ConformanceModel(2)
    for session, model in zip((first, second), models, strict=True):
        probe.reset(session, model, seed=SEED)
        for actions in _ACTIONS:
            probe.step(session, model, actions)
    again = ConformanceModel(2)
    probe.reset(first, again, seed=SEED, subject="Reset with the same seed again")
    for actions in _ACTIONS:
        probe.step(first, again, actions, subject=f"re-seeded Step({actions})")


@check(
    "seeds.per_env",
    rule="env_service.proto, ResetRequest.seed (sub-environment i gets seed + i) and PerEnvSeeds",
    title="seed s gives sub-environment i the seed s + i; per-env seeds with a present mask "
    "seed some sub-environments and continue the others",
)
def per_env(probe: Probe) -> None:
    """Compare sub-environment i of a batch with a batch of one seeded s + i."""
    batch = probe.create(num_envs=3)
    model = ConformanceModel(3)
    response = probe.reset(batch, model, seed=SEED)
    rows = read_array(
        response.observations, "observations", dtype=tensor_pb2.DATA_TYPE_INT64, shape=(3, 2)
    ).tolist()
    for index in range(3):
        single = probe.create(num_envs=1)
        alone = probe.call(
            "Reset", pb.ResetRequest(session_id=single.session_id, seed=SEED + index)
        )
        row = read_array(
            alone.observations, "observations", dtype=tensor_pb2.DATA_TYPE_INT64, shape=(1, 2)
        ).tolist()[0]
        if row != rows[index] or row[1] != value_of(SEED + index):
            raise Violation(
                f"sub-environment {index} of Reset(seed={SEED}) vs a session of one reset "
                f"with seed {SEED + index}",
                received=f"{rows[index]} and {row}",
                expected=f"both [0, {value_of(SEED + index)}]",
                rule="env_service.proto, ResetRequest.seed",
            )
    seeds = [SEED + 100, SEED + 200, SEED + 300]
    present = [True, False, True]
    request = pb.ResetRequest(
        session_id=batch.session_id,
        seeds=pb.PerEnvSeeds(
            values=encode_tensor(seeds, tensor_pb2.DATA_TYPE_UINT64),
            present=encode_tensor(present, tensor_pb2.DATA_TYPE_BOOL),
        ),
    )
    expected = model.reset([SEED + 100, None, SEED + 300])
    expect_reset(probe.call("Reset", request), expected, f"Reset(seeds={seeds}, present={present})")
    request.seeds.ClearField("present")
    expect_reset(probe.call("Reset", request), model.reset(seeds), f"Reset(seeds={seeds})")


@check(
    "seeds.session_seed",
    rule="env_service.proto, CreateSessionRequest.seed",
    title="CreateSession's seed seeds the first reset that has none; the next unseeded reset "
    "continues the streams",
)
def session_seed(probe: Probe) -> None:
    """Create with a seed, then reset twice without one."""
    session = probe.create(num_envs=2, seed=SEED)
    model = ConformanceModel(2)
    unseeded = pb.ResetRequest(session_id=session.session_id)
    expect_reset(
        probe.call("Reset", unseeded),
        model.reset(SEED),
        f"the first Reset without a seed (CreateSession seed {SEED})",
    )
    expect_reset(
        probe.call("Reset", unseeded),
        model.reset(None),
        "a second Reset without a seed (each stream continues)",
    )
