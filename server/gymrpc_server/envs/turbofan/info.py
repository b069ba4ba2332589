"""The info dicts of the turbofan envs, built from the model's state arrays.

Keys (see ``TurbofanVectorEnv`` for their meaning): ``step``, ``n_valid``, ``reason``,
``repairs``, ``in_shop``, and with ``expose_hidden_state`` also ``degradation`` and
``max_degradation``. The single env gives Python ``int``/``bool``/``float`` and a
``numpy.int8`` reason, which Gymnasium's ``VectorEnv._add_info`` batches into exactly
the dtypes the vector env returns: int64, int64, int8, int64, bool, float64, float64.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gymrpc_server.envs.turbofan.model import TurbofanModel

__all__ = ["HIDDEN_INFO_KEYS", "PUBLIC_INFO_KEYS", "single_info", "vector_info"]

PUBLIC_INFO_KEYS: Final = ("step", "n_valid", "reason", "repairs", "in_shop")
HIDDEN_INFO_KEYS: Final = ("degradation", "max_degradation")


def _state_arrays(model: TurbofanModel, hidden: bool) -> dict[str, npt.NDArray[Any]]:
    arrays: dict[str, npt.NDArray[Any]] = {
        "step": model.t,
        "n_valid": model.n_valid,
        "reason": model.reason,
        "repairs": model.repairs,
        "in_shop": model.in_shop,
    }
    if hidden:
        arrays["degradation"] = model.damage
        arrays["max_degradation"] = model.failure_threshold
    return arrays


def vector_info(
    model: TurbofanModel, hidden: bool, mask: npt.NDArray[np.bool_] | None = None
) -> dict[str, Any]:
    """Vector info of every env, or of the envs in ``mask`` (zeros elsewhere).

    Every key ``k`` has its mask ``_k``; all arrays are new.
    """
    info: dict[str, Any] = {}
    arrays = _state_arrays(model, hidden)
    if mask is None:
        # One allocation for all the masks: each key still gets its own (row) array.
        masks = np.ones((len(arrays), model.num_envs), dtype=np.bool_)
        for row, (key, values) in enumerate(arrays.items()):
            info[key] = values.copy()
            info[f"_{key}"] = masks[row]
        return info
    for key, values in arrays.items():
        masked = np.zeros_like(values)
        np.copyto(masked, values, where=mask)
        info[key] = masked
        info[f"_{key}"] = mask.copy()
    return info


def single_info(model: TurbofanModel, hidden: bool) -> dict[str, Any]:
    """Info of env 0 of ``model`` as Python scalars (``reason`` as ``numpy.int8``)."""
    info: dict[str, Any] = {
        "step": int(model.t[0]),
        "n_valid": int(model.n_valid[0]),
        "reason": model.reason[0],
        "repairs": int(model.repairs[0]),
        "in_shop": bool(model.in_shop[0]),
    }
    if hidden:
        info["degradation"] = float(model.damage[0])
        info["max_degradation"] = float(model.failure_threshold[0])
    return info
