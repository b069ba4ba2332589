"""Takes README's screenshot of the leaderboard page: docs/images/leaderboard.png.

Not a test (pytest does not collect it; ``test_web.py`` runs the same steps into a
temporary file). Run it from the repository root::

    .venv/bin/python tests/gymrpc_server/scores/web_screenshot.py [docs/images/leaderboard.png]

It fills a temporary SQLite store with a course's evaluation episodes (seeded, so the
board is the same each time, dated relative to now), serves the page on 127.0.0.1,
signs in as one of the users in Debian's headless Chromium, and saves the page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1] / "support")]

from gymrpc_server.auth import Authenticator, load_tokens  # noqa: E402
from gymrpc_server.scores import StoreSettings, open_store  # noqa: E402
from gymrpc_server.scores.web import start_web  # noqa: E402
from scores.web_testing import (  # noqa: E402
    FAILING_ENV,
    chromium,
    fill_realistic_boards,
    screenshot_board,
)

VIEWER = "priya.r"


def main() -> None:
    """Write the screenshot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=Path("docs/images/leaderboard.png"))
    output: Path = parser.parse_args().output
    output.parent.mkdir(parents=True, exist_ok=True)
    token = "screenshot-token-0123456789"
    with tempfile.TemporaryDirectory(prefix="gymrpc-screenshot-") as directory:
        store = open_store(str(Path(directory) / "scores.sqlite3"), StoreSettings())
        assert store is not None
        try:
            env_ids = fill_realistic_boards(store, datetime.now(UTC))
            tokens_file = Path(directory) / "tokens.toml"
            tokens_file.write_text(f'[[tokens]]\nuser = "{VIEWER}"\ntoken = "{token}"\n')
            authenticator = Authenticator(load_tokens(tokens_file))
            web = start_web(
                store,
                authenticator,
                address="127.0.0.1:0",
                env_ids=env_ids,
                reports_failures=lambda env_id: env_id == FAILING_ENV,
            )
            try:
                with chromium() as browser:
                    rows = screenshot_board(browser, web.url, token, output)
            finally:
                web.stop()
        finally:
            store.close()
    print(f"wrote {output} ({rows} rows)")


if __name__ == "__main__":
    main()
