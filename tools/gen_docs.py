"""Regenerate the generated parts of README.md (``make docs``), or check them (tests).

A generated part sits between ``<!-- generated:NAME:begin -->`` and
``<!-- generated:NAME:end -->``; its text comes from the code it documents, so the two
cannot drift: the flag table from ``gymrpc-server``'s own argument parser.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from gymrpc_server.cli import flag_table

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: Generated part name -> the function producing its text.
SECTIONS: dict[str, Callable[[], str]] = {"flags": flag_table}


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated:{name}:begin -->\n)(.*?)(<!-- generated:{name}:end -->)", re.S
    )


def section(text: str, name: str) -> str:
    """The current content of generated part ``name`` in ``text``.

    Raises:
        ValueError: If the markers are missing.
    """
    match = _pattern(name).search(text)
    if match is None:
        raise ValueError(f"README.md has no generated part {name!r} (markers missing)")
    return match.group(2)


def regenerate(text: str) -> str:
    """``text`` with every generated part rewritten from the code."""
    for name, produce in SECTIONS.items():
        section(text, name)  # fails loudly when markers are missing
        body = produce()

        def replace(match: re.Match[str], body: str = body) -> str:
            return match.group(1) + body + match.group(3)

        text = _pattern(name).sub(replace, text)
    return text


def main() -> int:
    """Write README.md, or with ``--check`` fail when it is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is stale")
    args = parser.parse_args()
    current = README.read_text(encoding="utf-8")
    fresh = regenerate(current)
    if args.check:
        if fresh != current:
            print("README.md is out of date; run `make docs`", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
