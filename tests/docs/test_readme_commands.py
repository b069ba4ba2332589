"""Every command of every README works as written, against a server `make serve` started.

The test reads the fenced ``sh`` and ``python`` blocks of every README.md of the
repository and runs them, in order, the way a reader would:

* ``make serve`` is started once, exactly as written, in the background (it blocks),
  on a free port given through ``GYMRPC_ADDRESS`` and with a temporary
  ``GYMRPC_DATABASE``; every other command gets
  ``GYMRPC_TARGET`` pointing at it, which every client reads.
* ``make test`` and ``make check`` are the commands that run this test, and a
  ``.venv/bin/pytest`` command names tests this suite runs anyway: skipped.
* A command runs in the README's own directory, except those that name the
  repository's ``.venv`` or ``make``, which live at the repository root.
* Training runs are shortened by appending ``--total-timesteps 2048`` and
  ``--challenge-episodes 5`` (argparse keeps the last value), and an ``--out`` file is
  written to a temporary directory instead of over the committed picture: the two
  liberties taken with the text.
* ``python`` blocks run with ``.venv/bin/python``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIPPED = ("make test", "make check", ".venv/bin/pytest")
#: Commands shortened so that the test-suite stays quick: pattern -> appended flags.
SHORTENED = {
    re.compile(r"examples/(ppo_turbofan|sb3_ppo)\.py(?!.*--eval-only)"): " --total-timesteps 2048",
    re.compile(r"examples/(ppo_turbofan|sb3_ppo|challenge)\.py"): " --challenge-episodes 5",
}
COMMAND_TIMEOUT = 300.0


@dataclass(frozen=True)
class Command:
    """One command of a README."""

    readme: Path
    kind: str  # "sh" or "python"
    text: str

    @property
    def cwd(self) -> Path:
        if self.kind == "python" or re.match(r"(\.venv/|make\b)", self.text):
            return ROOT
        return self.readme.parent

    def __str__(self) -> str:
        return f"{self.readme.relative_to(ROOT)}: {self.text.splitlines()[0]}"


def readmes() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # READMEs under tests/ are notes for developers of the test-suite (the peers'
    # suites need their sources fetched first), not the product's documentation.
    return [ROOT / name for name in sorted(listed) if not name.startswith("tests/")]


def commands(readme: Path) -> list[Command]:
    found = []
    text = readme.read_text(encoding="utf-8")
    for match in re.finditer(r"^```(sh|python)\n(.*?)^```", text, flags=re.M | re.S):
        kind, body = match.group(1), match.group(2)
        if kind == "python":
            found.append(Command(readme, kind, body))
            continue
        for raw in body.splitlines():
            line = re.sub(r"\s+#.*$", "", raw).strip()
            if line and not line.startswith("#"):
                found.append(Command(readme, kind, line))
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def make_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make serve`, as README.md says, on a free port.

    Its scores go to a temporary database, not to the user's data directory.
    """
    port = free_port()
    database = tmp_path_factory.mktemp("make-serve") / "scores.sqlite3"
    environ = {
        **os.environ,
        "GYMRPC_ADDRESS": f"127.0.0.1:{port}",
        "GYMRPC_DATABASE": str(database),
    }
    process = subprocess.Popen(
        ["make", "serve"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # make and the server it starts, stopped together
    )
    assert process.stderr is not None
    try:
        seen = []
        for line in process.stderr:
            seen.append(line)
            if f"serving on 127.0.0.1:{port}" in line:
                break
        else:
            raise AssertionError(f"`make serve` never served: {''.join(seen)[-2000:]}")
        yield f"127.0.0.1:{port}"
        # Stop the server as Ctrl-C would: make then exits with the server's status.
        children = subprocess.run(
            ["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        for child in children:
            os.kill(int(child), signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        process.stderr.close()


def test_the_readmes_have_commands() -> None:
    found = {readme.relative_to(ROOT).as_posix(): commands(readme) for readme in readmes()}
    assert any(c.text == "make serve" for c in found["README.md"] if c.kind == "sh")
    assert any(c.kind == "python" for c in found["README.md"])
    assert found["examples/README.md"], "the examples README lists no command"
    assert found["examples/node/README.md"], "the node README lists no command"


@pytest.mark.timeout(900)  # a dozen programs, training ones included
def test_every_readme_command_works_as_written(make_serve: str, tmp_path: Path) -> None:
    environ = {**os.environ, "GYMRPC_TARGET": make_serve}
    ran = []
    for readme in readmes():
        for command in commands(readme):
            if command.kind == "sh" and (
                command.text.startswith(SKIPPED) or command.text.startswith("make serve")
            ):
                continue
            text = command.text
            for pattern, extra in SHORTENED.items():
                if command.kind == "sh" and pattern.search(text):
                    text += extra
            text = re.sub(r"--out (\S+)", lambda m: f"--out {tmp_path / Path(m[1]).name}", text)
            argv = (
                [str(ROOT / ".venv/bin/python"), "-c", text]
                if command.kind == "python"
                else ["bash", "-c", text]
            )
            result = subprocess.run(
                argv,
                cwd=command.cwd,
                env=environ,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
            assert result.returncode == 0, (
                f"{command} failed with status {result.returncode}:\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
            ran.append((command, result.stdout))
    assert len(ran) >= 10, [str(command) for command, _ in ran]
    # The README's usage snippet prints what it promises.
    usage = next(out for command, out in ran if command.kind == "python")
    assert "(64, 10, 9)" in usage
    assert re.search(r"mean reward per engine and step: -?\d+\.\d", usage), usage


if __name__ == "__main__":  # pragma: no cover - a helper to list the commands
    for path in readmes():
        for item in commands(path):
            sys.stdout.write(f"{item}\n")
