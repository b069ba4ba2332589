"""Generate, check and lint the Python code of the gymrpc protocol.

``make proto`` writes ``src/gymrpc/v1`` from ``proto/gymrpc/v1``; ``make proto-check``
regenerates into a temporary directory and fails if the committed files differ;
``make lint`` runs ``buf lint`` and ``buf format`` on the schema; ``make proto-breaking``
runs ``buf breaking`` against the schema of the last release.

Every import resolves inside ``proto/``: the third-party files the schema uses are
vendored there (``proto/VENDORED.md``), and the well-known types come with
``grpc_tools``, so generation and linting work offline and need no ``buf.lock``.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE_DIR = Path("gymrpc") / "v1"
COMMITTED = ROOT / "src" / PACKAGE_DIR
#: The schema of the last release, which `make proto-breaking` compares against. It is
#: rewritten only when a release is cut (``--write-baseline``); see docs/compatibility.md.
BASELINE = PROTO_ROOT / "releases" / "gymrpc-v1.binpb"
WELL_KNOWN_INCLUDE = Path(grpc_tools.__file__).resolve().parent / "_proto"
# mypy-protobuf's plugins live next to this interpreter, which need not be on PATH.
PLUGIN_DIR = Path(sys.executable).parent
INIT_TEXT = '"""Generated protocol code for gymrpc.v1 (written by `make proto`; do not edit)."""\n'


def proto_files() -> list[str]:
    """Return the schema files, relative to ``proto/``, in a stable order."""
    return sorted(
        str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto")
    )


def generate(out_root: Path) -> Path:
    """Write the generated package for every schema file under ``out_root``.

    Args:
        out_root: Directory that plays the role of ``src/``.

    Returns:
        The generated package directory, ``out_root/gymrpc/v1``.
    """
    package = out_root / PACKAGE_DIR
    if package.exists():
        for stale in package.glob("*_pb2*.py*"):
            stale.unlink()
    package.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{WELL_KNOWN_INCLUDE}",
        f"--plugin=protoc-gen-mypy={PLUGIN_DIR / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={PLUGIN_DIR / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out=quiet:{out_root}",
        f"--mypy_grpc_out=quiet:{out_root}",
        *proto_files(),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    (package / "__init__.py").write_text(INIT_TEXT)
    return package


def check() -> int:
    """Compare a fresh generation with the committed files; return a process status."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        fresh_names = {p.name for p in fresh.iterdir() if p.is_file()}
        committed_names = {p.name for p in COMMITTED.iterdir() if p.is_file()}
        problems = [f"missing: {name}" for name in sorted(fresh_names - committed_names)]
        problems += [f"not generated: {name}" for name in sorted(committed_names - fresh_names)]
        _, mismatch, errors = filecmp.cmpfiles(
            fresh, COMMITTED, sorted(fresh_names & committed_names), shallow=False
        )
        problems += [f"differs: {name}" for name in mismatch + errors]
    if problems:
        print(f"{COMMITTED.relative_to(ROOT)} is out of date; run `make proto`:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{COMMITTED.relative_to(ROOT)} matches proto/ ({len(fresh_names)} files)")
    return 0


def _buf() -> str:
    return shutil.which("buf", path=str(PLUGIN_DIR)) or "buf"


def buf_lint() -> int:
    """Run ``buf lint`` on the module and ``buf format`` on the sources, from the root."""
    status = subprocess.call([_buf(), "lint"], cwd=ROOT)
    fmt = subprocess.call(
        [_buf(), "format", "--diff", "--exit-code", "--path", "proto/gymrpc"], cwd=ROOT
    )
    if fmt != 0:
        print("proto/gymrpc is not buf-formatted; run `make fmt`", file=sys.stderr)
    return status or fmt


def breaking(against: str | None) -> int:
    """Run ``buf breaking`` against the last release's schema (or ``against``)."""
    reference = against or str(BASELINE.relative_to(ROOT))
    status = subprocess.call([_buf(), "breaking", "proto", "--against", reference], cwd=ROOT)
    if status == 0:
        print(f"proto/ keeps every rule of the schema in {reference} (buf breaking, FILE)")
    return status


def write_baseline() -> int:
    """Record the current schema as the last release's (done when a release is cut)."""
    BASELINE.parent.mkdir(parents=True, exist_ok=True)
    status = subprocess.call(
        [_buf(), "build", "proto", "--exclude-source-info", "-o", str(BASELINE)], cwd=ROOT
    )
    if status == 0:
        print(f"wrote {BASELINE.relative_to(ROOT)}")
    return status


def main() -> int:
    """Parse the command line and run the chosen action."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", type=Path, help="generate into OUT/gymrpc/v1")
    action.add_argument("--check", action="store_true", help="fail if src/gymrpc/v1 is stale")
    action.add_argument("--buf-lint", action="store_true", help="buf lint and format check")
    action.add_argument(
        "--breaking", action="store_true", help="buf breaking against the last release"
    )
    action.add_argument(
        "--write-baseline", action="store_true", help="record proto/ as the released schema"
    )
    parser.add_argument(
        "--against", help="with --breaking: a buf input to compare with instead of the baseline"
    )
    args = parser.parse_args()
    if args.check:
        return check()
    if args.buf_lint:
        return buf_lint()
    if args.breaking:
        return breaking(args.against)
    if args.write_baseline:
        return write_baseline()
    generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
