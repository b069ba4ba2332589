"""``gymrpc leaderboard``, ``gymrpc scores`` and ``gymrpc episodes``: the challenge's results."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime
from typing import Any

from gymrpc.cli.options import add_connection_options
from gymrpc.scoring import Episode, Score, episodes, leaderboard, scores

__all__ = ["episode_row", "leaderboard_row", "register", "score_row"]


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def score_row(score: Score) -> dict[str, Any]:
    """A score as the JSON rows of these commands show it."""
    return {
        "user": score.user,
        "env_id": score.env_id,
        "score": score.score,
        "episodes": score.episodes,
        "provisional": score.provisional,
        "failure_rate": score.failure_rate,
        "last_episode_time": _time(score.last_episode_time),
        "total_episodes": score.total_episodes,
    }


def leaderboard_row(rank: int, score: Score) -> dict[str, Any]:
    """One line of ``gymrpc leaderboard --json``."""
    return {"rank": rank, **score_row(score)}


def episode_row(episode: Episode) -> dict[str, Any]:
    """One line of ``gymrpc episodes --json`` (and a CSV row)."""
    return {
        "k": episode.k,
        "return": episode.episode_return,
        "length": episode.length,
        "ended": episode.ending,
        "reason": episode.reason,
        "failure": episode.failure,
        "evaluation": episode.evaluation,
        "env_id": episode.env_id,
        "user": episode.user,
        "session_id": episode.session_id,
        "start_time": _time(episode.start_time),
        "end_time": _time(episode.end_time),
    }


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[_cell(row[column], column) for column in columns] for row in rows]
    widths = [
        max([len(column), *(len(row[i]) for row in cells)]) for i, column in enumerate(columns)
    ]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any, column: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column == "failure_rate":
        # A fraction: "0.0" for 4 % would read as "none".
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def _connection(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "target": args.target,
        "token": args.token,
        "root_certificates": args.tls_ca,
        "timeout": args.timeout,
    }


def _leaderboard(args: argparse.Namespace) -> int:
    board = leaderboard(args.env, limit=args.limit, **_connection(args))
    rows = [leaderboard_row(entry.rank, entry.score) for entry in board.entries]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(
        f"{board.env_id}: {board.total_users} users; a score is the mean return of the last "
        f"{board.score_window} evaluation episodes (provisional: fewer)"
    )
    if rows:
        _print_table(rows, ["rank", "user", "score", "episodes", "provisional", "failure_rate"])
    return 0


def _scores(args: argparse.Namespace) -> int:
    found = scores(args.user, args.env, **_connection(args))
    rows = [score_row(score) for score in found]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif rows:
        _print_table(rows, ["env_id", "score", "episodes", "provisional", "failure_rate"])
    else:
        print("no evaluation episode recorded yet")
    return 0


def _episodes(args: argparse.Namespace) -> int:
    evaluation = {"all": None, "evaluation": True, "training": False}[args.kind]
    found = episodes(
        args.user, args.env, evaluation=evaluation, limit=args.limit, **_connection(args)
    )
    rows = [episode_row(episode) for episode in found]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["k"])
        writer.writeheader()
        writer.writerows(rows)
    elif rows:
        _print_table(rows, ["k", "return", "length", "ended", "reason", "evaluation", "end_time"])
    else:
        print("no episode recorded yet")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``leaderboard``, ``scores`` and ``episodes`` sub-commands."""
    board = subparsers.add_parser(
        "leaderboard",
        help="the ranking of an evaluated environment",
        description="Rank the users of an environment by their score (ScoresService).",
    )
    board.add_argument("--env", default="gymrpc/Turbofan-v0", help="the environment")
    board.add_argument("--limit", type=int, default=None, help="show the first N only")
    board.add_argument("--json", action="store_true", help="print JSON rows")
    add_connection_options(board)
    board.set_defaults(handler=_leaderboard)

    own = subparsers.add_parser(
        "scores",
        help="your scores (admins: anyone's)",
        description="Show a user's score on each environment they were evaluated on.",
    )
    own.add_argument("--user", default=None, help="another user (admins only)")
    own.add_argument("--env", default=None, help="only this environment")
    own.add_argument("--json", action="store_true", help="print JSON rows")
    add_connection_options(own)
    own.set_defaults(handler=_scores)

    history = subparsers.add_parser(
        "episodes",
        help="your recorded episodes, newest first (admins: anyone's)",
        description="List recorded episodes, newest first.",
    )
    history.add_argument("--user", default=None, help="another user (admins only)")
    history.add_argument("--env", default=None, help="only this environment")
    history.add_argument(
        "--kind",
        choices=["all", "evaluation", "training"],
        default="all",
        help="evaluation episodes, training (ordinary) ones, or all",
    )
    history.add_argument("--limit", type=int, default=100, help="at most N episodes")
    output = history.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON rows")
    output.add_argument("--csv", action="store_true", help="print CSV")
    add_connection_options(history)
    history.set_defaults(handler=_episodes)
