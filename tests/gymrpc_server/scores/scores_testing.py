"""Helpers of the scores tests: episodes to record, worker processes, direct reads.

Every wait is bounded; worker processes are killed if a test leaves them running.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from gymrpc_server.scores import Ending, Episode, StoreSettings

__all__ = [
    "FAST",
    "START",
    "Worker",
    "episode",
    "stored_episode_ids",
]

HERE = Path(__file__).resolve().parent
WORKER = HERE / "store_worker.py"
#: Short intervals, so that the tests wait little; retries are quick after an outage.
FAST = StoreSettings(
    batch_interval=0.01, retry_max_interval=0.2, busy_timeout=10.0, connect_timeout=5.0
)
START = datetime(2026, 1, 1, tzinfo=UTC)
#: Far above what a healthy worker takes to answer: only a hang reaches it.
ANSWER_TIMEOUT = 60.0
#: Root ignores file modes (CAP_DAC_OVERRIDE). Workers started as root lose that power
#: (and CAP_DAC_READ_SEARCH) from their bounding set, so that a file made read-only is
#: read-only for them too, as it is for a server running as an ordinary user.
OBEY_FILE_MODES = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
)


def episode(
    *,
    user: str = "alice",
    env_id: str = "Env-v0",
    k: int | None = None,
    episode_return: float = 0.0,
    minute: float = 0.0,
    failure: bool = False,
    ending: Ending = Ending.TERMINATED,
    session_id: str = "session-1",
    **fields: Any,
) -> Episode:
    """An episode ending ``minute`` minutes after :data:`START`; evaluation when k is set."""
    ended_at = START + timedelta(minutes=minute)
    return Episode(
        user=user,
        env_id=env_id,
        env_options=fields.pop("env_options", {"step_size": 10}),
        evaluation=k is not None,
        k=k,
        episode_return=episode_return,
        length=fields.pop("length", 100),
        ending=ending,
        reason=fields.pop("reason", "failure" if failure else None),
        failure=failure,
        started_at=fields.pop("started_at", ended_at - timedelta(seconds=30)),
        ended_at=ended_at,
        session_id=session_id,
        **fields,
    )


def stored_episode_ids(database: str) -> list[str]:
    """Every episode_id in ``database`` (a SQLite path or a URL), duplicates included."""
    if "://" not in database:
        # Read-only: the writer (another user, maybe) keeps owning the file.
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as reader:
            rows = reader.execute("SELECT episode_id FROM episodes").fetchall()
        reader.close()
        return [row[0] for row in rows]
    engine = create_engine(database)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text("SELECT episode_id FROM episodes")).scalars())
    finally:
        engine.dispose()


def settings_dict(settings: StoreSettings) -> dict[str, Any]:
    """``settings`` as the worker's ``open`` command takes them."""
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


class Worker:
    """A ``store_worker.py`` process, driven one command at a time.

    It obeys file modes even when the tests run as root (see :data:`OBEY_FILE_MODES`).

    Args:
        workdir: Its working directory (and where its stderr goes).
        name: Names its stderr file.
    """

    def __init__(self, workdir: Path, name: str = "worker") -> None:
        self.stderr_path = workdir / f"{name}.stderr"
        env = {
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": os.pathsep.join(sys.path),
        }
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [*OBEY_FILE_MODES, sys.executable, str(WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=workdir,
                env=env,
            )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.receive()  # {"ready": true}: imported

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, op: str, **fields: Any) -> None:
        """Send a command without waiting for its answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()

    def receive(self, timeout: float = ANSWER_TIMEOUT) -> dict[str, Any]:
        """The next answer; fails with the worker's stderr if none comes."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        if line is None:
            raise AssertionError(f"the worker did not answer; its stderr:\n{self.stderr()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a command and return its answer (an error answer fails the test)."""
        self.send(op, **fields)
        answer = self.receive()
        assert "error" not in answer, f"{op}: {answer['error']}\n{self.stderr()}"
        return answer

    def open(self, database: str, settings: StoreSettings = FAST) -> None:
        """Open the store in the worker."""
        self.request("open", database=database, settings=settings_dict(settings))

    def stderr(self) -> str:
        """What the worker logged."""
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout: float = ANSWER_TIMEOUT) -> int:
        """Wait for the worker to exit; return its exit status."""
        return self.process.wait(timeout)

    def kill(self) -> None:
        """Kill the worker if it still runs."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(ANSWER_TIMEOUT)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def kill_all(workers: Iterable[Worker]) -> None:
    """Kill every worker still running."""
    for worker in workers:
        worker.kill()
