"""The challenge's part of a server: its store, evaluation rules and what the server reports.

:func:`open_scores` is called once by :func:`gymrpc_server.server.create_server`; it
opens (and migrates) the database the configuration names and checks the evaluated
environments, so that a bad setting stops the server at start with one clear line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gymnasium.vector import AutoresetMode

from gymrpc.errors import GymrpcError
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.values import fill_value
from gymrpc_server.catalogue import Catalogue
from gymrpc_server.config import ServerConfig
from gymrpc_server.scores.errors import StoreOpenError
from gymrpc_server.scores.evaluation import EvaluationRules
from gymrpc_server.scores.store import ScoreStore, StoreSettings, open_store

__all__ = ["DEFAULT_EVALUATION_ENV", "Scores", "open_scores"]

logger = logging.getLogger(__name__)

#: What a server evaluates unless told otherwise (``--evaluation-env``).
DEFAULT_EVALUATION_ENV = "gymrpc/Turbofan-v0"


@dataclass(frozen=True)
class Scores:
    """The challenge's settings of a running server.

    Attributes:
        store: The scores database; None with ``--database none``.
        rules: What evaluation sessions may do.
        scoring: What GetServerInfo reports.
        catalogue: The servable environments.
    """

    store: ScoreStore | None
    rules: EvaluationRules
    scoring: pb.Scoring
    catalogue: Catalogue

    def reports_failures(self, env_id: str) -> bool:
        """Whether ``env_id`` says which endings are failures (its scores show a rate)."""
        try:
            spec = self.catalogue.entry(env_id).metadata.get("gymrpc.episode_reason")
        except GymrpcError:  # no longer served: its old scores show no rate
            return False
        return isinstance(spec, dict) and bool(spec.get("failures"))


def _evaluated(config: ServerConfig, catalogue: Catalogue) -> tuple[str, ...]:
    served = set(catalogue.env_ids())
    if config.evaluation_envs is None:
        return (DEFAULT_EVALUATION_ENV,) if DEFAULT_EVALUATION_ENV in served else ()
    missing = [env_id for env_id in config.evaluation_envs if env_id not in served]
    if missing:
        raise ValueError(
            f"--evaluation-env {missing}: not served by this server (check --allow-env and "
            "--env-module)"
        )
    return config.evaluation_envs


def open_scores(config: ServerConfig, catalogue: Catalogue) -> Scores:
    """Open the scores database and settle which environments are evaluated.

    Raises:
        ValueError: If the database cannot be opened or an evaluated environment is not
            served; the message is one line naming the setting.
    """
    env_ids = _evaluated(config, catalogue)
    try:
        store = open_store(
            config.database,
            StoreSettings(score_window=config.score_window, max_queued=config.record_queue),
        )
    except StoreOpenError as error:
        raise ValueError(str(error)) from error
    if store is None:
        logger.info("scores: none kept (--database none); evaluation sessions are refused")
    else:
        logger.info("scores: %s database %s", store.backend, store.database)
    scoring = pb.Scoring(
        score_window=config.score_window,
        leaderboard_visibility=(
            pb.LEADERBOARD_VISIBILITY_PUBLIC
            if config.leaderboard == "public"
            else pb.LEADERBOARD_VISIBILITY_ADMIN
        ),
        recording=store is not None,
    )
    for env_id in env_ids if store is not None else ():
        entry = catalogue.entry(env_id)
        plan = catalogue.plan(
            entry, autoreset_mode=AutoresetMode.NEXT_STEP, vectorization=None, options={}
        )
        evaluated = scoring.evaluation_environments.add(env_id=env_id)
        for name, value in plan.effective.items():
            try:
                fill_value(evaluated.env_options[name], value, field=f"env_options.{name}")
            except GymrpcError:
                del evaluated.env_options[name]
    return Scores(store, EvaluationRules(env_ids, store), scoring, catalogue)
