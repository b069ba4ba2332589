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

The policy also sees counters the sensors do not show (``--features``: by default the
repairs so far and the blocks since the last repair; the block index is available),
kept from the env's info by ``gymrpc.turbofan.EngineClock``. The default settings are
the tuned ones of docs/ppo.md.

At the end, the greedy policy (argmax of the logits) plays the same 1,000 engines as
``baselines.py`` on the server, and is printed in one table with the time policy and the
hidden-damage heuristic (computed in-process by ``baselines.py``'s code). ``--save``
writes it as a self-contained TorchScript module (see :class:`ExportedPolicy`);
``--load PATH --eval-only`` evaluates a saved one. Then it plays ``--challenge-episodes``
evaluation episodes for the leaderboard (``challenge.py``; skipped, with a note, when the
server evaluates nothing). Every run writes its learning curve to
``runs/<run name>/learning_curve.csv``; ``--track`` adds TensorBoard logs there.

Start a server (``make serve``), then, from the repository root::

    .venv/bin/python examples/ppo_turbofan.py --total-timesteps 1000000
"""

import argparse
import copy
import csv
import dataclasses
import math
import os
import time
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import challenge
import numpy as np
import numpy.typing as npt
import torch
from baselines import (
    ENGINE_SEED,
    HIDDEN_DAMAGE,
    NUM_ENGINES,
    STEP_SIZE,
    TIME_POLICY,
    ActionArray,
    ObsArray,
    evaluate,
    format_table,
    make_engines,
    run_baselines,
)
from gymnasium.vector import VectorEnv
from gymnasium.wrappers.vector import (
    ClipReward,
    FlattenObservation,
    NormalizeObservation,
    NormalizeReward,
    RecordEpisodeStatistics,
    TransformReward,
)
from torch import nn
from torch.distributions.categorical import Categorical
from tqdm import tqdm

import gymrpc
from gymrpc.turbofan import EngineClock

#: Extra policy inputs: each is computed from the engine clock (raw counts, which is what
#: a saved policy takes) and multiplied by its scale inside the network.
FEATURES: Final[dict[str, tuple[Callable[[EngineClock], npt.NDArray[np.int64]], float]]] = {
    "block": (lambda clock: clock.block, 0.1),
    "blocks_since_repair": (lambda clock: clock.blocks_since_repair, 0.1),
    "repairs": (lambda clock: clock.repairs, 0.1),
}
#: Normalised observations are clipped to this range, as in CleanRL (early statistics
#: are rough).
OBS_CLIP: Final = 10.0
#: The turbofan's default step size, the one evaluation sessions play.
DEFAULT_STEP_SIZE: Final = STEP_SIZE
LEARNING_CURVE_HEADER: Final = ("global_step", "wall_time_s", "episodes", "mean_return")


def option(default: Any, help_text: str) -> Any:
    """A dataclass field that is also a command-line flag with this help text."""
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class Args:
    """The run's settings; every field is a ``--flag`` (underscores become dashes).

    The defaults are tuned for the turbofan (docs/ppo.md): small rollouts of many engines
    (4,096 steps per iteration), a long horizon (``gamma`` 0.999, ``gae_lambda`` 1.0: a
    repair pays off over hundreds of flights), a small entropy bonus, the block's rows
    averaged, and the repair counters as inputs. The rest are CleanRL's defaults.
    """

    target: str = option(
        os.environ.get("GYMRPC_TARGET", "127.0.0.1:50051"),
        "server host:port; $GYMRPC_TARGET sets the default",
    )
    token: str | None = option(None, "bearer token; $GYMRPC_TOKEN when not given")
    env_id: str = option("gymrpc/Turbofan-v0", "environment id on the server")
    step_size: int = option(DEFAULT_STEP_SIZE, "sub-steps (flights) per env step")
    features: str = option(
        "repairs,blocks_since_repair",
        f"comma-separated extra policy inputs among {', '.join(FEATURES)}; '' for none",
    )
    exp_name: str = option(Path(__file__).stem, "experiment name, part of the run name")
    seed: int = option(1, "seed of the envs, the actions and the network")
    total_timesteps: int = option(
        100_000, "env steps over all envs, rounded up to whole iterations"
    )
    num_envs: int = option(64, "engines stepped together")
    hidden_size: int = option(64, "units of each of the two hidden layers (actor and critic)")
    row_mean: bool = option(True, "average the block's rows (per column) before the networks")
    torch_threads: int = option(1, "torch CPU threads (the server needs a core too)")
    norm_reward: bool = option(True, "NormalizeReward + ClipReward; else divide by --reward-scale")
    reward_scale: float = option(1000.0, "rewards are divided by it without --norm-reward")
    num_steps: int = option(64, "steps per env in each rollout")
    learning_rate: float = option(3e-4, "Adam learning rate")
    anneal_lr: bool = option(True, "decay the learning rate linearly to 0")
    gamma: float = option(0.999, "discount factor")
    gae_lambda: float = option(1.0, "lambda of generalized advantage estimation")
    num_minibatches: int = option(8, "minibatches per epoch")
    update_epochs: int = option(10, "epochs over each rollout")
    clip_coef: float = option(0.2, "surrogate clipping coefficient")
    ent_coef: float = option(0.01, "entropy bonus coefficient")
    vf_coef: float = option(0.5, "value loss coefficient")
    max_grad_norm: float = option(0.5, "gradient clipping norm")
    runs_dir: str = option("runs", "directory of the runs' logs: <runs-dir>/<run name>/")
    track: bool = option(False, "write TensorBoard logs to <runs-dir>/<run name>")
    save: str | None = option(None, "save the trained policy (TorchScript) to this path")
    load: str | None = option(
        None, "start from a policy saved with --save (its step size, features and network apply)"
    )
    eval_only: bool = option(False, "no training: evaluate the --load policy only")
    eval_engines: int = option(
        NUM_ENGINES, "engines of the final greedy evaluation (as baselines.py); 0 skips it"
    )
    challenge_episodes: int = option(
        100, "evaluation episodes played for the leaderboard at the end; 0 skips them"
    )


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
    args = Args(**vars(parser.parse_args()))
    if args.eval_only and args.load is None:
        parser.error("--eval-only evaluates a saved policy: give it with --load PATH")
    unknown = set(feature_names(args)) - set(FEATURES)
    if unknown:
        parser.error(f"unknown --features {sorted(unknown)}; choose among {list(FEATURES)}")
    return args


def feature_names(args: Args) -> list[str]:
    """The names of ``--features``, in order."""
    return [name.strip() for name in args.features.split(",") if name.strip()]


def clock_features(names: list[str], clock: EngineClock) -> torch.Tensor:
    """The raw feature columns of ``names`` for every engine, shape (num_envs, len(names))."""
    columns = [FEATURES[name][0](clock) for name in names]
    return torch.as_tensor(
        np.stack(columns, axis=1) if columns else np.zeros((len(clock.block), 0)),
        dtype=torch.float32,
    )


# --- The networks --------------------------------------------------------------------


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    """Orthogonal initialisation, as in the PPO implementation details."""
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    """Separate actor and critic MLPs over the normalised observation and the features."""

    feature_scale: torch.Tensor

    def __init__(
        self,
        step_size: int,
        feature_scale: list[float],
        num_actions: int,
        *,
        hidden_size: int = 64,
        row_mean: bool = False,
    ) -> None:
        super().__init__()
        self.step_size = step_size
        self.row_mean = row_mean
        self.hidden_size = hidden_size
        self.input_size = (9 if row_mean else step_size * 9) + len(feature_scale)
        self.obs_clip = OBS_CLIP
        self.register_buffer("feature_scale", torch.tensor(feature_scale, dtype=torch.float32))
        self.critic = nn.Sequential(
            layer_init(nn.Linear(self.input_size, hidden_size)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden_size, hidden_size)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden_size, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(self.input_size, hidden_size)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden_size, hidden_size)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden_size, num_actions), std=0.01),
        )

    def inputs(self, normalized_obs: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The networks' input: clipped normalised observations, then scaled features.

        With ``row_mean`` the block's rows are averaged column by column first.
        """
        clipped = normalized_obs.clamp(-self.obs_clip, self.obs_clip)
        if self.row_mean:
            clipped = clipped.reshape(clipped.shape[0], self.step_size, 9).mean(dim=1)
        return torch.cat([clipped, features * self.feature_scale], dim=1)

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


class ExportedPolicy(nn.Module):
    """The policy as ``--save`` writes it: raw observations in, action logits out.

    ``forward(obs, features=None)``:

    * ``obs``: float32 (N, step_size, 9), the env's raw observation blocks;
    * ``features``: float32 (N, F), the raw counters named by ``feature_names`` in that
      order (``baselines.EngineClock`` keeps them); omit it when ``feature_names`` is
      empty, as it is by default;
    * returns float32 (N, 3): logits of keep flying, repair, sell. The greedy action is
      their argmax; a softmax gives the sampling policy.

    The observation statistics of ``NormalizeObservation`` are buffers (``obs_mean``,
    ``obs_var``, ``obs_count``), the critic comes along (``value(obs, features)``), and
    ``step_size``, ``feature_names``, ``hidden_size`` and ``row_mean`` are attributes:
    ``torch.jit.load`` alone runs it, and ``--load`` rebuilds the same networks from it.
    """

    step_size: int
    feature_names: list[str]
    hidden_size: int
    row_mean: bool
    obs_mean: torch.Tensor
    obs_var: torch.Tensor
    obs_count: torch.Tensor

    def __init__(
        self,
        agent: Agent,
        obs_rms: Any,
        epsilon: float,
        step_size: int,
        feature_names: list[str],
    ) -> None:
        super().__init__()
        self.agent = copy.deepcopy(agent)
        self.register_buffer("obs_mean", torch.as_tensor(obs_rms.mean, dtype=torch.float32))
        self.register_buffer("obs_var", torch.as_tensor(obs_rms.var, dtype=torch.float32))
        self.register_buffer("obs_count", torch.tensor(float(obs_rms.count), dtype=torch.float64))
        self.epsilon = epsilon
        self.step_size = step_size
        self.feature_names = list(feature_names)
        self.hidden_size = agent.hidden_size
        self.row_mean = agent.row_mean

    def network_input(
        self, obs: torch.Tensor, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Flatten and normalise ``obs`` as the training wrappers did; append the features."""
        flat = obs.reshape(obs.shape[0], -1)
        normalized = (flat - self.obs_mean) / torch.sqrt(self.obs_var + self.epsilon)
        if features is None:
            if len(self.feature_names) > 0:
                raise ValueError("this policy needs features: " + ", ".join(self.feature_names))
            features = torch.zeros((obs.shape[0], 0), dtype=obs.dtype)
        return self.agent.inputs(normalized, features)

    def forward(self, obs: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Action logits, shape (N, 3)."""
        return self.agent.actor(self.network_input(obs, features))  # type: ignore[no-any-return]

    @torch.jit.export
    def value(self, obs: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """The critic's state values, shape (N,)."""
        return self.agent.critic(self.network_input(obs, features)).flatten()  # type: ignore[no-any-return]


def export_policy(
    agent: Agent, obs_norm: NormalizeObservation, step_size: int, names: list[str]
) -> torch.jit.ScriptModule:
    """The agent and the observation statistics as one TorchScript module."""
    module = ExportedPolicy(agent, obs_norm.obs_rms, obs_norm.epsilon, step_size, names)
    # TorchScript is deprecated in recent torch releases, but torch.jit.load is still
    # the one call that runs a saved model anywhere without this file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(module)


def load_policy(path: str) -> torch.jit.ScriptModule:
    """A policy written by ``--save``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(path)  # type: ignore[no-untyped-call,no-any-return]


class GreedyPolicy:
    """A ``baselines.Policy`` that plays the argmax of a saved policy's logits."""

    def __init__(self, module: torch.jit.ScriptModule) -> None:
        self.module = module
        self.feature_names: list[str] = list(module.feature_names)

    def __call__(
        self, observations: ObsArray, info: dict[str, Any], clock: EngineClock
    ) -> ActionArray:
        """The most likely action of every engine."""
        features = clock_features(self.feature_names, clock) if self.feature_names else None
        with torch.no_grad():
            logits = self.module(torch.as_tensor(observations, dtype=torch.float32), features)
        actions: ActionArray = logits.argmax(dim=1).numpy().astype(np.int64)
        return actions


def compare_with_baselines(module: torch.jit.ScriptModule, args: Args) -> str:
    """Greedy play of ``module`` on the baselines' engines (on the server), in their table."""
    engines = make_engines(
        args.eval_engines, target=args.target, token=args.token, step_size=module.step_size
    )
    try:
        result = evaluate(GreedyPolicy(module), engines, name="PPO (greedy)", seed=ENGINE_SEED)
    finally:
        engines.close()
    baselines, _ = run_baselines((TIME_POLICY, HIDDEN_DAMAGE), num_engines=args.eval_engines)
    return format_table([result, *baselines])


def play_challenge(module: torch.jit.ScriptModule, args: Args) -> None:
    """Play ``--challenge-episodes`` evaluation episodes with the greedy policy."""
    if module.step_size != DEFAULT_STEP_SIZE:
        # Evaluation sessions play the turbofan with its default options only.
        print(
            f"challenge: skipped, the policy plays blocks of {module.step_size} flights and "
            f"evaluation sessions play {DEFAULT_STEP_SIZE}"
        )
        return
    challenge.run(GreedyPolicy(module), args, name="PPO (greedy)")


# --- Training ------------------------------------------------------------------------


def make_envs(args: Args) -> tuple[VectorEnv[Any, Any, Any], NormalizeObservation]:
    """The remote envs under the training wrappers, and the observation normaliser."""
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
    envs = obs_norm = NormalizeObservation(envs)
    if args.norm_reward:
        envs = NormalizeReward(envs, gamma=args.gamma)
        envs = ClipReward(envs, -10.0, 10.0)
    else:
        envs = TransformReward(envs, lambda reward: reward / args.reward_scale)
    return envs, obs_norm


class RunLog:
    """The run's learning curve (CSV, always) and TensorBoard scalars (``--track``)."""

    def __init__(self, args: Args, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.curve_path = run_dir / "learning_curve.csv"
        self._curve_file = self.curve_path.open("w", newline="")
        self._curve = csv.writer(self._curve_file)
        self._curve.writerow(LEARNING_CURVE_HEADER)
        self.writer: Any = None
        if args.track:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir))
            table = "\n".join(f"|{key}|{value}|" for key, value in vars(args).items())
            self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")

    def scalar(self, tag: str, value: float, global_step: int) -> None:
        """A TensorBoard scalar, when tracking."""
        if self.writer is not None:
            self.writer.add_scalar(tag, value, global_step)

    def iteration(self, global_step: int, wall_time_s: float, episode_returns: list[float]) -> None:
        """One learning-curve row: the episodes that ended in this iteration."""
        mean = float(np.mean(episode_returns)) if episode_returns else math.nan
        self._curve.writerow(
            [global_step, f"{wall_time_s:.3f}", len(episode_returns), f"{mean:.2f}"]
        )
        self._curve_file.flush()

    def close(self) -> None:
        """Flush and close the files."""
        self._curve_file.close()
        if self.writer is not None:
            self.writer.close()


def train(  # noqa: PLR0915 (one training loop, read top to bottom)
    args: Args, agent: Agent, envs: VectorEnv[Any, Any, Any], log: RunLog, num_iterations: int
) -> None:
    """Run ``num_iterations`` PPO iterations, printing the mean episodic return of each."""
    names = feature_names(args)
    rng = np.random.default_rng(args.seed)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    input_size = agent.input_size

    # Rollout storage, (num_steps, num_envs, ...).
    inputs = torch.zeros((args.num_steps, args.num_envs, input_size))
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
    clock = EngineClock(args.num_envs)
    observation, info = envs.reset(seed=args.seed)
    clock.observe(info)
    next_input = agent.inputs(torch.as_tensor(observation), clock_features(names, clock))
    next_autoreset = torch.zeros(args.num_envs, dtype=torch.bool)
    progress = tqdm(total=num_iterations * args.num_envs * args.num_steps, unit="step")

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
            inputs[step] = next_input
            autoresets[step] = next_autoreset
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_input)
            actions[step], logprobs[step], values[step] = action, logprob, value

            observation, reward, terminated, truncated, info = envs.step(action.numpy())
            clock.observe(info)
            rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
            terminations[step] = torch.as_tensor(terminated, dtype=torch.float32)
            ended = np.logical_or(terminated, truncated)
            dones[step] = torch.as_tensor(ended, dtype=torch.float32)
            next_autoreset = torch.as_tensor(ended)
            next_input = agent.inputs(torch.as_tensor(observation), clock_features(names, clock))
            if "episode" in info:
                for index in np.flatnonzero(info["_episode"]):
                    episode_returns.append(float(info["episode"]["r"][index]))
                    log.scalar("charts/episodic_return", episode_returns[-1], global_step)
                    log.scalar("charts/episodic_length", info["episode"]["l"][index], global_step)
            progress.update(args.num_envs)

        # Generalized advantage estimation, backwards through the rollout.
        with torch.no_grad():
            next_value = agent.get_value(next_input)
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
        b_inputs = inputs.reshape(-1, input_size)[valid]
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
                    b_inputs[mb], b_actions[mb]
                )
                log_ratio = new_logprob - b_logprobs[mb]
                ratio = log_ratio.exp()
                with torch.no_grad():
                    # http://joschu.net/blog/kl-approx.html
                    old_approx_kl = (-log_ratio).mean()
                    approx_kl = ((ratio - 1) - log_ratio).mean()
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
                entropy_loss = entropy.mean()
                loss = policy_loss - args.ent_coef * entropy_loss + args.vf_coef * value_loss

                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

        elapsed = time.time() - start_time
        variance = np.var(b_returns.numpy())
        explained_variance = (
            math.nan
            if variance == 0
            else 1 - np.var(b_returns.numpy() - b_values.numpy()) / variance
        )
        for tag, scalar in (
            ("charts/learning_rate", optimizer.param_groups[0]["lr"]),
            ("losses/value_loss", value_loss.item()),
            ("losses/policy_loss", policy_loss.item()),
            ("losses/entropy", entropy_loss.item()),
            ("losses/old_approx_kl", old_approx_kl.item()),
            ("losses/approx_kl", approx_kl.item()),
            ("losses/clipfrac", float(np.mean(clip_fractions))),
            ("losses/explained_variance", explained_variance),
            ("charts/SPS", global_step / elapsed),
        ):
            log.scalar(tag, scalar, global_step)
        log.iteration(global_step, elapsed, episode_returns)
        mean_return = (
            f"{np.mean(episode_returns):9.1f} over {len(episode_returns)} episodes"
            if episode_returns
            else "      n/a (no episode ended)"
        )
        progress.write(
            f"iteration {iteration}/{num_iterations}  global_step {global_step}  "
            f"mean_episodic_return {mean_return}  value_loss {value_loss.item():.3f}  "
            f"clip_fraction {np.mean(clip_fractions):.3f}  SPS {int(global_step / elapsed)}"
        )
    progress.close()


def main() -> None:
    """Train (or load) a policy, save it if asked, and compare it with the baselines."""
    args = parse_args()
    loaded = None
    if args.load is not None:
        loaded = load_policy(args.load)
        args = dataclasses.replace(
            args,
            step_size=loaded.step_size,
            features=",".join(loaded.feature_names),
            hidden_size=loaded.hidden_size,
            row_mean=loaded.row_mean,
        )
        print(
            f"policy from {args.load}: step_size {args.step_size}, "
            f"features {args.features or 'none'}, hidden_size {args.hidden_size}, "
            f"row_mean {args.row_mean}"
        )

    module = loaded
    if not args.eval_only:
        batch_size = args.num_envs * args.num_steps
        num_iterations = max(1, math.ceil(args.total_timesteps / batch_size))
        if num_iterations * batch_size != args.total_timesteps:
            print(
                f"--total-timesteps {args.total_timesteps} rounded up to whole iterations "
                f"of {batch_size} steps (--num-envs {args.num_envs} x --num-steps "
                f"{args.num_steps}): {num_iterations * batch_size} steps"
            )
        print(
            f"training for {num_iterations} iterations of {batch_size} steps, "
            f"{num_iterations * batch_size} steps"
        )
        torch.manual_seed(args.seed)
        torch.set_num_threads(args.torch_threads)
        names = feature_names(args)
        envs, obs_norm = make_envs(args)
        agent = Agent(
            args.step_size,
            [FEATURES[name][1] for name in names],
            3,
            hidden_size=args.hidden_size,
            row_mean=args.row_mean,
        )
        if loaded is not None:
            # Go on from the saved networks and observation statistics.
            prefix = "agent."
            agent.load_state_dict(
                {
                    key[len(prefix) :]: value
                    for key, value in loaded.state_dict().items()
                    if key.startswith(prefix)
                }
            )
            obs_norm.obs_rms.mean = loaded.obs_mean.numpy().copy()
            obs_norm.obs_rms.var = loaded.obs_var.numpy().copy()
            obs_norm.obs_rms.count = float(loaded.obs_count)

        env_name = args.env_id.replace("/", "_")
        run_name = f"{env_name}__{args.exp_name}__{args.seed}__{int(time.time())}"
        log = RunLog(args, Path(args.runs_dir) / run_name)
        print(f"learning curve: {log.curve_path}")
        try:
            train(args, agent, envs, log, num_iterations)
        finally:
            envs.close()
            log.close()
        module = export_policy(agent, obs_norm, args.step_size, names)

    assert module is not None
    if args.save is not None:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        module.save(args.save)
        print(f"policy saved to {args.save} (load it with torch.jit.load)")
    if args.eval_engines > 0:
        print(
            f"greedy evaluation on the {args.eval_engines} engines of baselines.py "
            f"(seeds {ENGINE_SEED}..{ENGINE_SEED + args.eval_engines - 1}):"
        )
        print(compare_with_baselines(module, args))
    if args.challenge_episodes > 0:
        play_challenge(module, args)


if __name__ == "__main__":
    main()
