"""``gymrpc plot``: each picture from the command line, as a user runs it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from gymrpc_testing import TOKENS, Serve
from matplotlib.image import imread

from gymrpc.cli import main
from gymrpc.plot import engine_figure
from gymrpc.recording import load_episode, load_episodes


def assert_png(path: Path) -> None:
    """The file decodes as an image with something drawn on it."""
    image = imread(path)
    ink = (image[..., :3] < 0.9).any(axis=-1)
    assert 0.01 < ink.mean() < 0.9, "the picture is blank or solid"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_engine_in_process_writes_the_png_and_prints_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "engine.png"
    record = tmp_path / "played"
    status, stdout, _ = run(
        [
            "plot",
            "engine",
            "--in-process",
            "--seed",
            "0",
            "--record",
            str(record),
            "--out",
            str(out),
        ],
        capsys,
    )
    assert status == 0
    assert stdout.strip() == str(out)
    assert_png(out)
    episode = load_episode(record)
    assert episode.seed == 0
    assert episode.recording.metadata == {"policy": "time"}
    # The time policy: repairs in blocks 3, 7, ..., 35, the sale in block 36.
    assert episode.actions.tolist().count(1) == 9
    assert episode.actions[-1] == 2
    # In-process the hidden damage is visible: 7 sensors, rewards, damage.
    assert len(engine_figure(episode).axes) == 9


def test_a_recorded_episode_draws_the_same_picture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "played"
    assert (
        main(
            [
                "plot",
                "engine",
                "--in-process",
                "--policy",
                "random",
                "--seed",
                "4",
                "--record",
                str(record),
                "--out",
                str(tmp_path / "a.png"),
            ]
        )
        == 0
    )
    status, _, _ = run(
        [
            "plot",
            "engine",
            "--episode",
            str(record),
            "--index",
            "0",
            "--out",
            str(tmp_path / "b.png"),
        ],
        capsys,
    )
    assert status == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    status, _, stderr = run(
        [
            "plot",
            "engine",
            "--episode",
            str(record),
            "--index",
            "3",
            "--out",
            str(tmp_path / "c.png"),
        ],
        capsys,
    )
    assert status == 1
    assert "index: 3; the recording" in stderr
    assert not (tmp_path / "c.png").exists()


def test_engine_on_a_server_shows_hidden_damage_to_admins_only(
    serve: Serve, tokens_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running = serve(tokens_file=tokens_file)
    drawn = {}
    for user in ("alice", "carol"):
        record = tmp_path / user
        status, stdout, stderr = run(
            [
                "plot",
                "engine",
                "--policy",
                "never",
                "--seed",
                "2",
                "--target",
                running.target,
                "--token",
                TOKENS[user],
                "--record",
                str(record),
                "--out",
                str(tmp_path / f"{user}.png"),
            ],
            capsys,
        )
        assert status == 0
        assert stdout.strip() == str(tmp_path / f"{user}.png")
        drawn[user] = (load_episode(record), stderr)
    alice, alice_note = drawn["alice"]
    carol, carol_note = drawn["carol"]
    assert "shows it to admins only" in alice_note
    assert carol_note == ""
    assert "degradation" not in alice.infos
    assert "degradation" in carol.infos
    assert len(engine_figure(alice).axes) == 8
    assert len(engine_figure(carol).axes) == 9
    # Labels come from the server's catalogue; the engine is the same for both.
    assert alice.recording.observation_labels is not None
    assert alice.recording.observation_labels[0]["labels"][1]["unit"] == "rpm"
    assert np.array_equal(alice.observations, carol.observations)


# TorchScript reads a module's source and cannot resolve the string annotations of
# `from __future__ import annotations` (this file's), so the model lives in its own file.
POLICY_SOURCE = """
import torch


class Policy(torch.nn.Module):
    step_size: int
    feature_names: list[str]

    def __init__(self, feature_names: list[str]) -> None:
        super().__init__()
        self.step_size = 5
        self.feature_names = feature_names

    def forward(self, obs: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        n = obs.shape[0]
        if features is None:
            return torch.tensor([[0.0, 0.0, 1.0]]).repeat(n, 1)
        repaired = (features[:, 0] > 0).float()
        return torch.stack([torch.zeros(n), 1.0 - repaired, repaired], dim=1)
"""


def save_policy(path: Path, features: list[str]) -> None:
    """A TorchScript policy with the interface of ``ppo_turbofan.py --save``.

    Without features it always sells; with ``repairs`` it repairs while that is 0 and
    sells afterwards.
    """
    source = path.with_name("policy_model.py")
    source.write_text(POLICY_SOURCE)
    spec = importlib.util.spec_from_file_location("policy_model", source)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated
        spec.loader.exec_module(module)
        torch_module = importlib.import_module("torch")
        torch_module.jit.script(module.Policy(features)).save(str(path))


@pytest.mark.parametrize("features", [[], ["repairs"]], ids=["no-features", "repairs-feature"])
def test_a_saved_policy_plays_with_its_step_size_and_features(
    tmp_path: Path, features: list[str]
) -> None:
    model = tmp_path / "policy.pt"
    save_policy(model, features)
    record = tmp_path / "played"
    argv = [
        "plot",
        "engine",
        "--in-process",
        "--policy",
        str(model),
        "--seed",
        "1",
        "--record",
        str(record),
        "--out",
        str(tmp_path / "engine.png"),
    ]
    assert main(argv) == 0
    episode = load_episode(record)
    assert episode.observations.shape[1:] == (5, 9)  # the model's step size
    assert episode.recording.metadata == {"policy": "policy"}
    # Without features it sells at once. With them it repairs, then asks to sell as
    # soon as repairs reads 1: ignored in the visit's second block of 5 days, done after.
    assert episode.actions.tolist() == ([2] if not features else [1, 2, 2])
    assert episode.infos["reason"][-1] == 2


def test_an_unknown_policy_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, stderr = run(
        ["plot", "engine", "--in-process", "--policy", "greedy", "--out", str(tmp_path / "x.png")],
        capsys,
    )
    assert status == 1
    assert "--policy: 'greedy' is neither time, never, random nor an existing model file" in stderr


def write_curve(path: Path, returns: list[float]) -> None:
    path.mkdir(parents=True)
    rows = ["global_step,wall_time_s,episodes,mean_return"]
    rows += [f"{2048 * (i + 1)},{i}.0,3,{value:.2f}" for i, value in enumerate(returns)]
    (path / "learning_curve.csv").write_text("\n".join(rows) + "\n")


def test_returns_draws_several_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_curve(tmp_path / "runs" / "a", [100.0, 900.0, 2500.0])
    write_curve(tmp_path / "runs" / "b", [50.0, 400.0])
    out = tmp_path / "returns.png"
    status, stdout, _ = run(
        [
            "plot",
            "returns",
            str(tmp_path / "runs" / "a"),
            str(tmp_path / "runs" / "b" / "learning_curve.csv"),
            "--reference",
            "time policy=4,709",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert status == 0
    assert stdout.strip() == str(out)
    assert_png(out)


def test_returns_refuses_a_bad_reference_and_a_missing_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_curve(tmp_path / "a", [1.0])
    status, _, stderr = run(
        [
            "plot",
            "returns",
            str(tmp_path / "a"),
            "--reference",
            "4709",
            "--out",
            str(tmp_path / "r.png"),
        ],
        capsys,
    )
    assert status == 1
    assert "--reference: '4709' has no label" in stderr
    status, _, stderr = run(
        ["plot", "returns", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.png")], capsys
    )
    assert status == 1
    assert "does not exist" in stderr


def test_a_missing_matplotlib_is_one_line_naming_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_curve(tmp_path / "a", [1.0])
    for name in [name for name in sys.modules if name.startswith("matplotlib")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an absent package does
    status, stdout, stderr = run(
        ["plot", "returns", str(tmp_path / "a"), "--out", str(tmp_path / "r.png")], capsys
    )
    assert status == 1
    assert stdout == ""
    assert stderr.startswith("gymrpc: gymrpc.plot needs matplotlib")
    assert "pip install -e '.[plot]'" in stderr
    assert len(stderr.splitlines()) == 1


def test_the_recording_of_an_engine_run_holds_exactly_one_episode(tmp_path: Path) -> None:
    record = tmp_path / "played"
    assert (
        main(
            [
                "plot",
                "engine",
                "--in-process",
                "--policy",
                "never",
                "--record",
                str(record),
                "--out",
                str(tmp_path / "e.png"),
            ]
        )
        == 0
    )
    (episode,) = load_episodes(record)
    assert episode.infos["reason"][-1] == 1  # never repaired: it failed
