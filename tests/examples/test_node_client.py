"""The JavaScript example client (examples/node) against a live in-process server.

The client must not only run: the episode it plays over gRPC must be the episode that
Gymnasium plays locally with the same seed and rule, down to the last bit of the
float64 return.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium
import numpy as np
import pytest

import gymrpc_server  # noqa: F401  (registers gymrpc/Turbofan-v0 with Gymnasium)
from gymrpc_server.config import ServerConfig
from gymrpc_server.server import GymrpcServer, create_server

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "node"
CLIENT = EXAMPLE_DIR / "turbofan_client.js"
NODE = shutil.which("node")
NPM = shutil.which("npm")
ENV_ID = "gymrpc/Turbofan-v0"
TOKEN = "node-example-token-0123456789"
# Seconds one run of the client may take; an episode takes well under one.
CLIENT_TIMEOUT = 60.0
NPM_CI_TIMEOUT = 300.0
# info["reason"] codes and the words the client prints for them.
REASON_WORDS = {1: "engine failure", 2: "sold", 3: "truncated (time limit)"}

pytestmark = [
    pytest.mark.skipif(
        NODE is None or NPM is None,
        reason="node and npm are not on PATH; the JavaScript example cannot run",
    ),
    # The first test may run `npm ci`, which downloads packages.
    pytest.mark.timeout(600),
]


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """Install the example's pinned dependencies unless an install is already there."""
    modules = EXAMPLE_DIR / "node_modules"
    # npm writes this hidden lockfile last; its absence means no (or a broken) install,
    # and an older one means package-lock.json changed since.
    installed = modules / ".package-lock.json"
    lockfile = EXAMPLE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lockfile.stat().st_mtime:
        assert NPM is not None
        subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=EXAMPLE_DIR,
            check=True,
            timeout=NPM_CI_TIMEOUT,
        )
    return modules


@pytest.fixture
def serve() -> Iterator[Callable[..., int]]:
    """Start in-process servers on 127.0.0.1 (port 0) from ServerConfig arguments."""
    servers: list[GymrpcServer] = []

    def start(**config: Any) -> int:
        server, port = create_server(ServerConfig(address="127.0.0.1:0", **config))
        servers.append(server)
        server.start()
        return port

    yield start
    for server in servers:
        server.stop(0).wait(30)


@pytest.fixture
def open_server(serve: Callable[..., int]) -> int:
    return serve()


@pytest.fixture
def token_server(serve: Callable[..., int], tmp_path: Path) -> int:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        f'[[tokens]]\nuser = "alice"\nrole = "user"\ntoken = "{TOKEN}"\n', encoding="utf-8"
    )
    return serve(tokens_file=tokens)


def run_client(node_modules: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    assert node_modules.is_dir()
    # The client reads its defaults from GYMRPC_TARGET and GYMRPC_TOKEN: keep the
    # caller's environment from leaking into the test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GYMRPC_")}
    return subprocess.run(
        [NODE, str(CLIENT), *args],
        cwd=EXAMPLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )


def printed_return(output: str) -> float:
    match = re.search(r"^return: (\S+)$", output, flags=re.MULTILINE)
    assert match is not None, output
    return float(match.group(1))


class Rule(NamedTuple):
    """A seed and the client's policy flags."""

    seed: int = 7
    step_size: int = 10
    repair_every: int = 6
    sell_at: int = 30

    def flags(self) -> list[str]:
        return [
            *("--seed", str(self.seed)),
            *("--step-size", str(self.step_size)),
            *("--repair-every", str(self.repair_every)),
            *("--sell-at", str(self.sell_at)),
        ]


def python_episode(rule: Rule) -> tuple[float, int, int]:
    """Play the client's rule locally: (return, blocks played, final info reason)."""
    env = gymnasium.make_vec(ENV_ID, num_envs=1, step_size=rule.step_size)
    try:
        env.reset(seed=rule.seed)
        episode_return = 0.0
        block = 0
        while True:
            block += 1
            # As in the client, 0 turns selling or repairing off.
            if rule.sell_at and block >= rule.sell_at:
                action = 2
            elif rule.repair_every and block % rule.repair_every == 0:
                action = 1
            else:
                action = 0
            _, rewards, terminations, truncations, info = env.step(
                np.array([action], dtype=np.int64)
            )
            # Summed in the same order as the client, in float64 like JS numbers.
            episode_return += float(rewards[0])
            if terminations[0] or truncations[0]:
                return episode_return, block, int(info["reason"][0])
    finally:
        env.close()


@pytest.mark.parametrize(
    "rule",
    # Chosen so that episodes end in each way: with today's turbofan, the defaults end
    # in an engine failure, the next two in a sale, the last in truncation (100 blocks).
    [
        Rule(),
        Rule(seed=3, step_size=5, repair_every=12, sell_at=40),
        Rule(seed=12345, step_size=10, repair_every=4, sell_at=20),
        Rule(seed=7, step_size=10, repair_every=2, sell_at=0),
    ],
    ids=lambda rule: "-".join(rule.flags()).replace("--", ""),
)
def test_client_plays_the_same_episode_as_gymnasium(
    node_modules: Path, open_server: int, rule: Rule
) -> None:
    result = run_client(node_modules, "--target", f"127.0.0.1:{open_server}", *rule.flags())
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""

    expected_return, expected_blocks, reason = python_episode(rule)
    # Exact equality: JS String(x) prints the shortest decimal that reads back as x.
    assert printed_return(result.stdout) == expected_return
    assert f"played {expected_blocks} blocks" in result.stdout
    assert f"the episode ended: {REASON_WORDS[reason]}" in result.stdout


def test_client_defaults_are_seed_7_and_the_documented_rule(
    node_modules: Path, open_server: int
) -> None:
    result = run_client(node_modules, "--target", f"127.0.0.1:{open_server}")
    assert result.returncode == 0, result.stderr
    assert printed_return(result.stdout) == python_episode(Rule())[0]


def test_client_fails_cleanly_when_nothing_listens(node_modules: Path) -> None:
    # A port that was free a moment ago: nothing listens there now.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_client(node_modules, "--target", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: GetServerInfo failed: UNAVAILABLE"), result.stderr


def test_client_needs_the_token_of_a_server_with_tokens(
    node_modules: Path, token_server: int
) -> None:
    target = f"127.0.0.1:{token_server}"

    refused = run_client(node_modules, "--target", target)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith("error: GetServerInfo failed: UNAUTHENTICATED: ")
    # The server's explanation and its ErrorInfo reason come through.
    assert "authorization: Bearer <token>" in refused.stderr
    assert refused.stderr.rstrip().endswith("[UNAUTHENTICATED]")

    wrong = run_client(node_modules, "--target", target, "--token", "not-" + TOKEN)
    assert wrong.returncode == 1
    assert "UNAUTHENTICATED" in wrong.stderr

    accepted = run_client(node_modules, "--target", target, "--token", TOKEN, "--seed", "7")
    assert accepted.returncode == 0, accepted.stderr
    assert "caller alice (ROLE_USER)" in accepted.stdout
    assert printed_return(accepted.stdout) == python_episode(Rule())[0]


def test_client_reports_a_request_that_fails_on_the_stream(
    serve: Callable[..., int], node_modules: Path
) -> None:
    # With a quota of 5 steps, the 6th step (sequence 7, after the reset) is refused
    # with a per-request error on the stream, not by ending the stream.
    port = serve(step_quota=5)
    result = run_client(node_modules, "--target", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert "return:" not in result.stdout
    error = "error: step (sequence 7) failed: RESOURCE_EXHAUSTED: "
    assert result.stderr.startswith(error), result.stderr
    assert result.stderr.rstrip().endswith("[STEP_QUOTA_EXHAUSTED]")
    # The session was still closed: no warning about CloseSession.
    assert "warning" not in result.stderr


def test_client_rejects_bad_flags(node_modules: Path) -> None:
    result = run_client(node_modules, "--step-size", "0")
    assert result.returncode == 2
    assert result.stderr == "error: --step-size must be in 1..100, got 0\n"
