"""Scores, leaderboards, episode histories and score charts, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterable
from datetime import timedelta

import pytest

from gymrpc_server.scores import Ending, Episode, LeaderboardEntry, ScoreStore, StoreSettings

from .conftest import OpenStore
from .scores_testing import FAST, START, episode

ENV = "Env-v0"


def settings(window: int) -> StoreSettings:
    return StoreSettings(**{**FAST.__dict__, "score_window": window})


def record_all(store: ScoreStore, episodes: Iterable[Episode]) -> None:
    for item in episodes:
        assert store.record(item)
    assert store.flush(timeout=30)


def test_score_covers_the_last_n_evaluation_episodes(
    database: str, open_test_store: OpenStore
) -> None:
    store = open_test_store(database, settings(window=3))
    record_all(
        store,
        [
            *(
                episode(k=k, episode_return=k + 1.0, minute=k, failure=k == 3)
                for k in range(5)  # returns 1..5; the last three are 3, 4, 5
            ),
            # Neither other kinds of episodes nor other environments count.
            episode(k=None, episode_return=1000.0, minute=9),
            episode(k=5, env_id="Other-v0", episode_return=-1000.0, minute=9),
            episode(user="bob", k=0, episode_return=10.0, minute=1),
            episode(user="bob", k=1, episode_return=20.0, minute=2, failure=True),
        ],
    )
    alice = store.score("alice", ENV)
    assert alice is not None
    assert (alice.mean_return, alice.episodes, alice.provisional) == (4.0, 3, False)
    assert alice.total_episodes == 5
    assert alice.failure_rate == pytest.approx(1 / 3)
    assert alice.last_episode_at == START + timedelta(minutes=4)
    bob = store.score("bob", ENV)
    assert bob is not None
    assert (bob.mean_return, bob.episodes, bob.failure_rate, bob.provisional) == (
        15.0,
        2,
        0.5,
        True,
    )
    assert bob.total_episodes == 2
    assert store.score("carol", ENV) is None
    assert store.score("alice", "Never-v0") is None
    assert [(s.env_id, s.mean_return) for s in store.user_scores("alice")] == [
        (ENV, 4.0),
        ("Other-v0", -1000.0),
    ]
    # Another window on demand.
    wide = store.score("alice", ENV, window=10)
    assert wide is not None
    assert (wide.mean_return, wide.episodes, wide.provisional) == (3.0, 5, True)


def test_episodes_ending_at_the_same_time_are_ordered_by_k(
    database: str, open_test_store: OpenStore
) -> None:
    store = open_test_store(database, settings(window=1))
    record_all(
        store,
        [
            episode(k=1, episode_return=-5.0, minute=1),
            episode(k=0, episode_return=100.0, minute=1),
            episode(k=2, episode_return=50.0, minute=0),
        ],
    )
    score = store.score("alice", ENV)
    assert score is not None
    assert score.mean_return == -5.0  # k=1 is the latest of the two at minute 1


def test_abandoned_evaluation_episodes_count(database: str, open_test_store: OpenStore) -> None:
    store = open_test_store(database, settings(window=2))
    record_all(
        store,
        [
            episode(k=0, episode_return=10.0, minute=0),
            episode(k=1, episode_return=-3.0, minute=1, ending=Ending.ABANDONED),
        ],
    )
    score = store.score("alice", ENV)
    assert score is not None
    assert (score.mean_return, score.episodes) == (3.5, 2)


def test_leaderboard_ranks_breaks_ties_and_pages(database: str, open_test_store: OpenStore) -> None:
    store = open_test_store(database, settings(window=2))
    # (user, returns, minute of the last episode)
    plan = [
        ("dan", [6.0, 6.0], 2),  # 6.0 over 2: ann, ben and dan tie; names decide
        ("ann", [5.0, 7.0], 3),  # 6.0 over 2
        ("ben", [7.0, 6.0, 6.0], 2),  # 6.0 over the last 2
        ("cid", [9.0, 9.0], 5),  # 9.0, first
        ("eve", [1.0], 1),  # 1.0, provisional
        ("fay", [-2.0, 0.0], 4),  # -1.0
        ("gus", [8.0], 9),  # 8.0, provisional
        ("hal", [6.0], 0),  # 6.0 over 1 only: after the three over 2
    ]
    for user, returns, last_minute in plan:
        record_all(
            store,
            (
                episode(
                    user=user, k=k, episode_return=value, minute=last_minute - len(returns) + k + 1
                )
                for k, value in enumerate(returns)
            ),
        )
    expected = ["cid", "gus", "ann", "ben", "dan", "hal", "eve", "fay"]
    entries: list[LeaderboardEntry] = []
    token = None
    pages = 0
    while True:
        page = store.leaderboard(ENV, page_size=3, page_token=token)
        assert page.total == 8
        assert page.window == 2
        entries.extend(page.entries)
        pages += 1
        token = page.next_page_token
        if token is None:
            break
    assert pages == 3
    assert [entry.score.user for entry in entries] == expected
    assert [entry.rank for entry in entries] == list(range(1, 9))
    whole = store.leaderboard(ENV, page_size=100)
    assert whole.entries == tuple(entries)
    assert whole.next_page_token is None
    assert [e.score.provisional for e in whole.entries] == [
        False,
        True,
        False,
        False,
        False,
        True,
        True,
        False,
    ]
    assert [e.score.total_episodes for e in whole.entries] == [2, 1, 2, 3, 2, 1, 1, 2]

    settled = store.leaderboard(ENV, page_size=100, include_provisional=False)
    assert [entry.score.user for entry in settled.entries] == ["cid", "ann", "ben", "dan", "fay"]
    assert [entry.rank for entry in settled.entries] == [1, 2, 3, 4, 5]
    assert settled.total == 5
    assert store.leaderboard("Nobody-v0").entries == ()

    with pytest.raises(ValueError, match="page_token 'garbage!' is not valid"):
        store.leaderboard(ENV, page_token="garbage!")
    with pytest.raises(ValueError, match=r"page_size is 0; expected 1\.\.1000"):
        store.leaderboard(ENV, page_size=0)


def test_episode_history_is_newest_first_filtered_and_stable(
    database: str, open_test_store: OpenStore
) -> None:
    store = open_test_store(database)
    made: list[Episode] = []
    for index in range(23):
        evaluation = index % 3 == 0
        made.append(
            episode(
                k=index if evaluation else None,
                env_id=ENV if index % 2 else "Other-v0",
                # Pairs end at the same minute: the later record comes first.
                minute=index // 2,
                episode_return=index * 1.5,
                ending=Ending.TRUNCATED if index % 4 else Ending.TERMINATED,
                env_options={"step_size": index, "params": {"wear": [index, 0.5]}},
                session_id=f"session-{index % 5}",
            )
        )
    record_all(store, made)
    record_all(store, [episode(user="bob", minute=100)])
    newest_first = made[::-1]

    def all_pages(**filters: object) -> list[Episode]:
        seen: list[Episode] = []
        token = None
        while True:
            page = store.episodes("alice", page_size=4, page_token=token, **filters)  # type: ignore[arg-type]
            assert len(page.episodes) <= 4
            seen.extend(page.episodes)
            token = page.next_page_token
            if token is None:
                return seen

    # Every field comes back as it went in.
    assert all_pages() == newest_first
    assert all_pages(env_id=ENV) == [e for e in newest_first if e.env_id == ENV]
    assert all_pages(evaluation=True) == [e for e in newest_first if e.evaluation]
    assert all_pages(env_id=ENV, evaluation=False) == [
        e for e in newest_first if e.env_id == ENV and not e.evaluation
    ]
    assert store.episodes("nobody").episodes == ()

    # An episode recorded between two pages does not shift the next page.
    first = store.episodes("alice", page_size=5)
    record_all(store, [episode(minute=1000)])
    second = store.episodes("alice", page_size=5, page_token=first.next_page_token)
    assert second.episodes == tuple(newest_first[5:10])


def test_score_history_is_the_rolling_score(database: str, open_test_store: OpenStore) -> None:
    store = open_test_store(database, settings(window=4))
    returns = [3.0, -1.0, 4.0, 1.0, -5.0, 9.0, 2.0, 6.0, 5.0, 3.0]
    record_all(
        store,
        [episode(k=k, episode_return=value, minute=k) for k, value in enumerate(returns)]
        + [episode(user="bob", k=0, episode_return=99.0), episode(k=None, minute=3)],
    )
    history = store.score_history("alice", ENV)
    assert [point.k for point in history] == list(range(10))
    for k, point in enumerate(history):
        window = returns[max(0, k - 3) : k + 1]
        assert point.mean_return == pytest.approx(statistics.fmean(window))
        assert point.episodes == len(window)
        assert point.provisional == (k < 3)
        assert point.episode_return == returns[k]
        assert point.ended_at == START + timedelta(minutes=k)
    # The last point is the current score.
    score = store.score("alice", ENV)
    assert score is not None
    assert history[-1].mean_return == pytest.approx(score.mean_return)
    assert store.score_history("alice", ENV, limit=3) == history[-3:]
    assert store.score_history("carol", ENV) == ()
    both = store.score_histories(["alice", "bob", "carol"], ENV, limit=2)
    assert both["alice"] == history[-2:]
    assert [(p.k, p.mean_return, p.provisional) for p in both["bob"]] == [(0, 99.0, True)]
    assert both["carol"] == ()


def test_random_histories_match_a_reference(database: str, open_test_store: OpenStore) -> None:
    window = 5
    store = open_test_store(database, settings(window=window))
    rng = random.Random(20261130)
    made: list[Episode] = []
    for user in ("u1", "u2", "u3", "u4", "u5", "u6"):
        for env_id in ("A-v0", "B-v0"):
            for k in range(rng.randrange(0, 13)):
                made.append(
                    episode(
                        user=user,
                        env_id=env_id,
                        k=k,
                        episode_return=rng.uniform(-100, 100),
                        minute=rng.randrange(0, 8),  # many ties on time: k decides
                        failure=rng.random() < 0.3,
                    )
                )
    record_all(store, made)
    for env_id in ("A-v0", "B-v0"):
        reference = {}
        for user in {e.user for e in made if e.env_id == env_id}:
            mine = sorted(
                (e for e in made if e.env_id == env_id and e.user == user),
                key=lambda e: (e.ended_at, e.k),
                reverse=True,
            )[:window]
            reference[user] = (
                statistics.fmean(e.episode_return for e in mine),
                len(mine),
                sum(e.failure for e in mine) / len(mine),
                max(e.ended_at for e in mine),
            )
        board = store.leaderboard(env_id, page_size=100)
        order = sorted(reference, key=lambda u: (-reference[u][0], -reference[u][1], u))
        assert [entry.score.user for entry in board.entries] == order
        for entry in board.entries:
            mean, count, failure_rate, last = reference[entry.score.user]
            assert entry.score.mean_return == pytest.approx(mean)
            assert entry.score.episodes == count
            assert entry.score.failure_rate == pytest.approx(failure_rate)
            assert entry.score.last_episode_at == last
            assert entry.score.provisional == (count < window)
            assert entry.score.total_episodes == sum(
                e.env_id == env_id and e.user == entry.score.user for e in made
            )
            assert store.score(entry.score.user, env_id) == entry.score


def test_reopening_keeps_secret_counters_and_scores(
    database: str, open_test_store: OpenStore
) -> None:
    store = open_test_store(database, settings(window=2))
    assert store.reserve_k("alice", ENV, 3) == range(0, 3)
    assert store.reserve_k("bob", ENV) == range(0, 1)
    assert store.reserve_k("alice", "Other-v0", 2) == range(0, 2)
    seed = store.evaluation_seed(ENV, 2)
    record_all(store, [episode(k=k, episode_return=float(k), minute=k) for k in range(3)])
    score = store.score("alice", ENV)
    board = store.leaderboard(ENV)
    assert store.close(timeout=10)

    reopened = open_test_store(database, settings(window=2))
    assert reopened.evaluation_seed(ENV, 2) == seed
    assert reopened.reserve_k("alice", ENV, 2) == range(3, 5)
    assert reopened.reserve_k("bob", ENV) == range(1, 2)
    assert reopened.score("alice", ENV) == score
    assert reopened.leaderboard(ENV) == board
    assert len(reopened.episodes("alice").episodes) == 3


def test_reserve_k_checks_its_arguments(database: str, open_test_store: OpenStore) -> None:
    store = open_test_store(database)
    with pytest.raises(ValueError, match="count is 0; expected at least 1"):
        store.reserve_k("alice", ENV, 0)
    with pytest.raises(ValueError, match="user is ''"):
        store.reserve_k("", ENV)
    assert store.reserve_k("alice", ENV, 1000) == range(0, 1000)
