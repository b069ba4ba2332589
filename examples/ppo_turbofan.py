"""PPO on the remote turbofan simulator, CleanRL style: one file, typed arguments, numpy+torch.

The environment runs on a gymrpc server; this script only sees a
``gymnasium.vector.VectorEnv`` from ``gymrpc.make_vec`` and wraps it with Gymnasium's
vector wrappers, exactly as it would wrap a local ``SyncVectorEnv``:

* ``RecordEpisodeStatistics`` first, so that episode returns are the raw rewards;
* ``FlattenObservation``: a (step_size, 9) block of sensor rows becomes one vector;
* ``NormalizeObservation``: temperatures (K), speeds (rpm) and pressures (Pa) differ by
  six orders of magnitude;
* ``NormalizeReward`` and ``ClipReward``: a failure costs -1000 against ~100 per block.

The autoreset mode is Gymnasium's default, NEXT_STEP (``NormalizeObservation`` requires
it). The step after an episode ends is then a reset step whose action is ignored: the
update leaves those transitions out, and because the episode's last observation is
returned, truncated episodes are bootstrapped from its value instead of being treated as
failures.

Start a server (``make serve``), then::

    python examples/ppo_turbofan.py --num-envs 8 --total-timesteps 100000
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
import typing
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from gymnasium.wrappers.vector import (
    ClipReward,
    FlattenObservation,
    NormalizeObservation,
    NormalizeReward,
    RecordEpisodeStatistics,
)
from torch import nn
from torch.distributions.categorical import Categorical

import gymrpc


def option(default: Any, help_text: str) -> Any:
    """A dataclass field that is also a command-line flag with this help text."""
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class Args:
    """The run's settings; every field is a ``--flag`` (underscores become dashes).

    The PPO defaults are those of the PPO paper's continuous-control runs (and of
    Stable-Baselines3), which learn a good maintenance policy in about 20k steps.
    """

    target: str = option(
        os.environ.get("GYMRPC_TARGET", "127.0.0.1:50051"),
        "server host:port; $GYMRPC_TARGET sets the default",
    )
    token: str | None = option(None, "bearer token; $GYMRPC_TOKEN when not given")
    env_id: str = option("gymrpc/Turbofan-v0", "environment id on the server")
    step_size: int = option(10, "sub-steps (flights) per env step")
    seed: int = option(1, "seed of the envs, the actions and the network")
    total_timesteps: int = option(100_000, "env steps over all envs")
    num_envs: int = option(8, "engines stepped together")
    num_steps: int = option(256, "steps per env in each rollout")
    learning_rate: float = option(3e-4, "Adam learning rate")
    anneal_lr: bool = option(True, "decay the learning rate linearly to 0")
    gamma: float = option(0.99, "discount factor")
    gae_lambda: float = option(0.95, "lambda of generalized advantage estimation")
    num_minibatches: int = option(32, "minibatches per epoch")
    update_epochs: int = option(10, "epochs over each rollout")
    clip_coef: float = option(0.2, "surrogate clipping coefficient")
    ent_coef: float = option(0.0, "entropy bonus coefficient")
    vf_coef: float = option(0.5, "value loss coefficient")
    max_grad_norm: float = option(0.5, "gradient clipping norm")


def parse_args() -> Args:
    """Build the command line from :class:`Args` and parse it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    hints = typing.get_type_hints(Args)
    for item in dataclasses.fields(Args):
        flag = "--" + item.name.replace("_", "-")
        kind = hints[item.name]
        if kind is bool:
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=item.default,
                help=item.metadata["help"],
            )
        else:
            # int, float, str, and "str | None" read as str.
            parser.add_argument(
                flag,
                type=kind if kind in (int, float) else str,
                default=item.default,
                help=f"{item.metadata['help']} (default: {item.default})",
            )
    return Args(**vars(parser.parse_args()))


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    """Orthogonal initialisation, as in the PPO implementation details."""
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    """Separate actor and critic MLPs over the flattened, normalised observation."""

    def __init__(self, obs_size: int, num_actions: int) -> None:
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_size, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_size, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, num_actions), std=0.01),
        )

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        """State values, shape (batch,)."""
        return self.critic(x).flatten()  # type: ignore[no-any-return]

    def get_action_and_value(
        self, x: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or score) actions: action, log-probability, entropy and value."""
        distribution = Categorical(logits=self.actor(x))
        # torch.distributions has no type hints.
        if action is None:
            action = distribution.sample()  # type: ignore[no-untyped-call]
        logprob = distribution.log_prob(action)  # type: ignore[no-untyped-call]
        entropy = distribution.entropy()  # type: ignore[no-untyped-call]
        return action, logprob, entropy, self.get_value(x)


def main() -> None:  # noqa: PLR0915 (one training loop, read top to bottom)
    """Train and print the mean episodic return after every rollout."""
    args = parse_args()
    batch_size = args.num_envs * args.num_steps
    num_iterations = args.total_timesteps // batch_size
    if num_iterations < 1:
        raise SystemExit(
            f"--total-timesteps {args.total_timesteps} is less than one rollout "
            f"(--num-envs x --num-steps = {batch_size})"
        )
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)

    remote = gymrpc.make_vec(
        args.env_id,
        args.num_envs,
        target=args.target,
        token=args.token,
        seed=args.seed,
        step_size=args.step_size,
    )
    print(f"session {remote.session_id[:8]}: {args.num_envs} x {args.env_id} on {args.target}")
    envs: VectorEnv[Any, Any, Any] = RecordEpisodeStatistics(remote)
    envs = FlattenObservation(envs)
    envs = NormalizeObservation(envs)
    envs = NormalizeReward(envs, gamma=args.gamma)
    envs = ClipReward(envs, -10.0, 10.0)
    obs_shape = envs.single_observation_space.shape
    assert obs_shape is not None
    obs_size = int(np.prod(obs_shape))
    num_actions = int(envs.single_action_space.n)  # type: ignore[attr-defined]

    agent = Agent(obs_size, num_actions)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    # Rollout storage, (num_steps, num_envs, ...).
    obs = torch.zeros((args.num_steps, args.num_envs, obs_size))
    actions = torch.zeros((args.num_steps, args.num_envs), dtype=torch.long)
    logprobs = torch.zeros((args.num_steps, args.num_envs))
    rewards = torch.zeros((args.num_steps, args.num_envs))
    terminations = torch.zeros((args.num_steps, args.num_envs))
    dones = torch.zeros((args.num_steps, args.num_envs))
    # True where the step only resets the env (NEXT_STEP): not a transition to learn from.
    autoresets = torch.zeros((args.num_steps, args.num_envs), dtype=torch.bool)
    values = torch.zeros((args.num_steps, args.num_envs))

    global_step = 0
    start_time = time.time()
    observation, _ = envs.reset(seed=args.seed)
    # Normalised observations are clipped, as in CleanRL: early statistics are rough.
    next_obs = torch.as_tensor(observation, dtype=torch.float32).clamp(-10, 10)
    next_autoreset = torch.zeros(args.num_envs, dtype=torch.bool)

    for iteration in range(1, num_iterations + 1):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.learning_rate * (
                1.0 - (iteration - 1.0) / num_iterations
            )
        episode_returns: list[float] = []

        # The actions of each step depend on the observations of the step before, so
        # there is no work to overlap with the round trip: plain step() it is.
        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            autoresets[step] = next_autoreset
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            actions[step], logprobs[step], values[step] = action, logprob, value

            observation, reward, terminated, truncated, info = envs.step(action.numpy())
            rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
            terminations[step] = torch.as_tensor(terminated, dtype=torch.float32)
            ended = np.logical_or(terminated, truncated)
            dones[step] = torch.as_tensor(ended, dtype=torch.float32)
            next_autoreset = torch.as_tensor(ended)
            next_obs = torch.as_tensor(observation, dtype=torch.float32).clamp(-10, 10)
            if "episode" in info:
                episode_returns.extend(info["episode"]["r"][info["_episode"]].tolist())

        # Generalized advantage estimation, backwards through the rollout.
        with torch.no_grad():
            next_value = agent.get_value(next_obs)
            advantages = torch.zeros_like(rewards)
            last_advantage = torch.zeros(args.num_envs)
            for t in reversed(range(args.num_steps)):
                next_values = next_value if t == args.num_steps - 1 else values[t + 1]
                # After an episode ends, the next observation is its last one (NEXT_STEP):
                # bootstrap from it unless the episode terminated...
                delta = rewards[t] + args.gamma * next_values * (1 - terminations[t]) - values[t]
                # ...and let no advantage flow back across the episode boundary.
                last_advantage = (
                    delta + args.gamma * args.gae_lambda * (1 - dones[t]) * last_advantage
                )
                advantages[t] = last_advantage
            returns = advantages + values

        # Flatten the batch and keep only real transitions.
        valid = np.flatnonzero(~autoresets.reshape(-1).numpy())
        b_obs = obs.reshape(-1, obs_size)[valid]
        b_actions = actions.reshape(-1)[valid]
        b_logprobs = logprobs.reshape(-1)[valid]
        b_advantages = advantages.reshape(-1)[valid]
        b_returns = returns.reshape(-1)[valid]
        b_values = values.reshape(-1)[valid]

        clip_fractions: list[float] = []
        for _ in range(args.update_epochs):
            order = rng.permutation(len(valid))
            for minibatch in np.array_split(order, args.num_minibatches):
                mb = torch.as_tensor(minibatch)
                _, new_logprob, entropy, new_value = agent.get_action_and_value(
                    b_obs[mb], b_actions[mb]
                )
                log_ratio = new_logprob - b_logprobs[mb]
                ratio = log_ratio.exp()
                with torch.no_grad():
                    clip_fractions.append(
                        ((ratio - 1.0).abs() > args.clip_coef).float().mean().item()
                    )
                mb_advantages = b_advantages[mb]
                mb_advantages = (mb_advantages - mb_advantages.mean()) / (
                    mb_advantages.std() + 1e-8
                )

                # Clipped surrogate objective.
                policy_loss = torch.max(
                    -mb_advantages * ratio,
                    -mb_advantages * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef),
                ).mean()
                # Clipped value loss.
                value_clipped = b_values[mb] + torch.clamp(
                    new_value - b_values[mb], -args.clip_coef, args.clip_coef
                )
                value_loss = (
                    0.5
                    * torch.max(
                        (new_value - b_returns[mb]) ** 2, (value_clipped - b_returns[mb]) ** 2
                    ).mean()
                )
                loss = policy_loss - args.ent_coef * entropy.mean() + args.vf_coef * value_loss

                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

        mean_return = (
            f"{np.mean(episode_returns):9.1f} over {len(episode_returns)} episodes"
            if episode_returns
            else "      n/a (no episode ended)"
        )
        print(
            f"iteration {iteration}/{num_iterations}  global_step {global_step}  "
            f"mean_episodic_return {mean_return}  value_loss {value_loss.item():.3f}  "
            f"clip_fraction {np.mean(clip_fractions):.3f}  "
            f"SPS {int(global_step / (time.time() - start_time))}"
        )

    envs.close()


if __name__ == "__main__":
    main()
