"""Episode records are checked where they are made, with messages naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from gymrpc_server.scores import Ending, Episode

from .scores_testing import START, episode


def test_times_are_kept_in_utc_and_ending_accepts_its_value() -> None:
    paris = timezone(timedelta(hours=1))
    made = episode(
        k=3,
        ending="truncated",  # type: ignore[arg-type]
        started_at=datetime(2026, 1, 1, 0, 30, tzinfo=paris),
    )
    assert made.started_at == datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
    assert made.started_at.tzinfo is UTC
    assert made.ending is Ending.TRUNCATED
    assert len(made.episode_id) == 32
    assert made.episode_id != episode(k=3).episode_id


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"user": ""}, "user is ''", id="empty-user"),
        pytest.param({"env_id": ""}, "env_id is ''", id="empty-env"),
        pytest.param(
            {"k": None, "evaluation": True}, "k is None for an evaluation", id="eval-no-k"
        ),
        pytest.param({"k": -1}, "k is -1 for an evaluation", id="negative-k"),
        pytest.param({"k": 2**63}, "expected 0 <= k < 2**63", id="huge-k"),
        pytest.param({"k": 4, "evaluation": False}, "k is 4 for a non-evaluation", id="k-not-eval"),
        pytest.param({"episode_return": float("nan")}, "episode_return is nan", id="nan"),
        pytest.param({"episode_return": float("inf")}, "episode_return is inf", id="inf"),
        pytest.param({"length": -1}, "length is -1", id="length"),
        pytest.param({"ending": "crashed"}, "ending is 'crashed'; expected one of", id="ending"),
        pytest.param({"started_at": datetime(2026, 1, 1)}, "started_at is", id="naive"),
        pytest.param(
            {"started_at": START + timedelta(hours=1)}, "is before started_at", id="order"
        ),
        pytest.param({"env_options": {"f": object()}}, "env_options", id="not-json"),
        pytest.param({"episode_id": "x" * 33}, "at most 32 characters", id="long-id"),
    ],
)
def test_bad_fields_are_refused_by_name(fields: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "user": "alice",
        "env_id": "Env-v0",
        "env_options": {},
        "evaluation": True,
        "k": 0,
        "episode_return": 1.0,
        "length": 3,
        "ending": Ending.TERMINATED,
        "reason": None,
        "failure": False,
        "started_at": START,
        "ended_at": START,
        "session_id": "s",
    }
    with pytest.raises(ValueError, match=message.replace("*", r"\*").replace("(", r"\(")):
        Episode(**{**base, **fields})
