"""Documentation of ``gymrpc/Turbofan-v0`` for remote clients, as env metadata.

A gymrpc server's catalogue reads these ``gymrpc.*`` keys from an env's ``metadata``
and sends them as structured documentation (never as plain metadata), so that a user
of any language can read what the observation columns, info keys and reason codes
mean. Both :class:`~gymrpc_server.envs.turbofan.TurbofanEnv` and
:class:`~gymrpc_server.envs.turbofan.TurbofanVectorEnv` put :data:`DOC_METADATA` in
their metadata; ``docs/turbofan.md`` is the full user reference, and
:data:`DESCRIPTION` its condensed version.

Example:
    >>> from gymrpc_server.envs.turbofan import TurbofanVectorEnv
    >>> labels = TurbofanVectorEnv.metadata["gymrpc.observation_labels"][0]["labels"]
    >>> [label["name"] for label in labels][:3]
    ['HPC_Tout', 'HP_Nmech', 'HPC_Tin']
"""

from __future__ import annotations

from typing import Any, Final

from gymrpc_server.envs.turbofan.info import HIDDEN_INFO_KEYS, PUBLIC_INFO_KEYS
from gymrpc_server.envs.turbofan.model import REASON_FAILURE, REASON_NAMES
from gymrpc_server.envs.turbofan.params import OBS_NAMES, TurbofanParams

__all__ = [
    "DESCRIPTION",
    "DOC_METADATA",
    "EPISODE_REASON",
    "INFO_KEYS",
    "OBSERVATION_LABELS",
    "OPTION_UNITS",
]

#: What the environment simulates and how to use it (plain text, Markdown conventions).
DESCRIPTION: Final = f"""\
A two-spool turbofan engine wears out flight after flight. Every `step()` runs a block \
of `step_size` sub-steps (default 10); a sub-step is one flight, one shop day or the \
sale. Maximise the money the engine earns before it fails: keep flying, send it to the \
shop in time, or sell it.

**Actions** `Discrete(3)`, applied at the block's first sub-step (the rest of the \
block keeps flying): `0` keep flying; `1` repair: the shop restores 80-92 % of the \
damage (plus 0.01 that is never repaired) and the visit lasts 10 sub-steps whatever \
the `step_size` (no revenue, no wear; with `step_size` < 10 the next blocks are shop \
days and their action is ignored); `2` sell: one sub-step, then the episode ends.

**Observation** `Box((step_size, 9), float32)`: one row per sub-step, the 7 sensor \
readings `HPC_Tout` (K), `HP_Nmech` (rpm), `HPC_Tin` (K), `LPT_Tin` (K), `Fuel_flow` \
(kg/s), `HPC_Pout_st` (Pa), `LP_Nmech` (rpm), then `phase_type` (0 = cruise, always \
0) and `DTAMB` (K, ambient deviation from ISA). Wear shows mostly as HPC_Tout, \
HP_Nmech and HPC_Pout_st falling, through noise. `info["n_valid"]` rows are real; when \
the episode ends inside a block the rows after them repeat the last real row. \
`reset()` returns the initial snapshot repeated, with `n_valid` 1.

**Reward** per block, the sum over its sub-steps of: flight revenue \
`47.5 (1 - D) + N(0, 3.3)` (D the hidden damage, 0 = new; negative past D = 1), the \
repair cost `-(510 + 8 k + N(0, 15))` (k repairs before), the sale price \
`50 + 100 clip(1 - D, 0, 1) 0.96^k` (150 for a new engine). A block in which the \
engine fails is worth exactly -1000 instead, and its rows stop at the failing flight.

**Episode end**: `terminated` when the engine fails (damage reaches its hidden \
threshold, or a rare random failure) or is sold; `truncated` when \
`max_episode_steps` sub-steps (default 1000, flights, shop days and the sale all \
count) have passed, which takes at most `ceil(max_episode_steps / step_size)` \
`step()` calls. Both are true when the engine fails or is sold on the last allowed \
sub-step.

**Info** (vector envs add a `_key` mask per key): `step` sub-steps so far, `n_valid`, \
`reason` (0 running, 1 failure, 2 sold, 3 truncated without failure or sale), \
`repairs`, `in_shop`; privileged, only with `expose_hidden_state`: `degradation` (D) \
and `max_degradation` (the failure threshold).

**Options**: `step_size` (1-100), `max_episode_steps` (sub-steps, 1-10^12), \
`expose_hidden_state` (admins only on a gymrpc server), `params` (overrides of the \
model's scalar parameters by name: {", ".join(TurbofanParams.names())}), `render_mode` \
(None or "rgb_array": charts of the last 100 sub-steps of the sensors, shop days \
marked). `reset(seed=s)` seeds env i with s + i; an engine's trajectory depends only \
on its seed and actions."""

_OBSERVATION_COLUMNS: Final = {
    "HPC_Tout": ("K", "HP compressor outlet temperature"),
    "HP_Nmech": ("rpm", "HP spool speed"),
    "HPC_Tin": ("K", "HP compressor inlet temperature"),
    "LPT_Tin": ("K", "LP turbine inlet temperature"),
    "Fuel_flow": ("kg/s", "fuel flow"),
    "HPC_Pout_st": ("Pa", "HP compressor outlet static pressure"),
    "LP_Nmech": ("rpm", "LP spool speed, the controlled variable (nearly flat)"),
    "phase_type": ("", "flight phase code: 0 = cruise (always 0 by default)"),
    "DTAMB": ("K", "ambient temperature deviation from ISA"),
}

#: Names, units and meanings of the 9 columns of an observation row (the last axis).
OBSERVATION_LABELS: Final[list[dict[str, Any]]] = [
    {
        "path": "",
        "axis": -1,
        # Built from OBS_NAMES so that the order is the model's by construction.
        "labels": [
            {
                "name": name,
                "unit": _OBSERVATION_COLUMNS[name][0],
                "description": _OBSERVATION_COLUMNS[name][1],
            }
            for name in OBS_NAMES
        ],
    }
]

_INFO_DESCRIPTIONS: Final = {
    "step": "sub-steps (flights, shop days, the sale) of the episode so far",
    "n_valid": (
        "real rows of the returned observation block; the rows after them repeat the last "
        "real one (1 after reset)"
    ),
    "reason": (
        "how the episode stands: 0 running; 1 failure (the engine failed: terminated, "
        "block reward -1000); 2 sold (terminated); 3 truncated (max_episode_steps "
        "sub-steps reached without failure or sale)"
    ),
    "repairs": "repairs of the engine so far",
    "in_shop": "the block's last real sub-step was a shop day",
    "degradation": (
        "hidden damage D at the last real sub-step: 0 = new, flight revenue reaches 0 at 1"
    ),
    "max_degradation": "the engine's hidden failure threshold: it fails when D reaches it",
}

#: The info keys in the order the envs report them; the hidden-state ones are privileged.
INFO_KEYS: Final[list[dict[str, Any]]] = [
    {"key": key, "description": _INFO_DESCRIPTIONS[key], "privileged": key in HIDDEN_INFO_KEYS}
    for key in (*PUBLIC_INFO_KEYS, *HIDDEN_INFO_KEYS)
]

#: Where episodes record how they ended, and which ends count as failures.
EPISODE_REASON: Final[dict[str, Any]] = {
    "key": "reason",
    "names": dict(REASON_NAMES),
    "failures": [REASON_FAILURE],
}

#: What the integer options count.
OPTION_UNITS: Final[dict[str, str]] = {
    "step_size": "sub-steps per step() call",
    "max_episode_steps": "sub-steps (flights, shop days and the sale)",
}

#: The documentation keys of both env classes' ``metadata``.
DOC_METADATA: Final[dict[str, Any]] = {
    "gymrpc.description": DESCRIPTION,
    "gymrpc.observation_labels": OBSERVATION_LABELS,
    "gymrpc.info_keys": INFO_KEYS,
    "gymrpc.episode_reason": EPISODE_REASON,
    "gymrpc.option_units": OPTION_UNITS,
}
