"""docs/other-languages.md holds: buf works offline from the repository root, and the
example templates generate code for another language from the schema alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gymrpc.v1 import env_service_pb2 as pb

REPO = Path(__file__).resolve().parents[2]
BUF = Path(sys.executable).parent / "buf"
#: Versions the TypeScript template is documented with.
NPM_PACKAGES = ("@bufbuild/protoc-gen-es@2.17.0", "@bufbuild/protobuf@2.17.0")
# npm's words for a registry it cannot reach (DNS, refused or timed-out connections).
_OFFLINE = re.compile(r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ECONNRESET|network", re.I)


def _run(command: list[str], cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        command, cwd=cwd, capture_output=True, text=True, timeout=180, check=False, **kwargs
    )


@pytest.mark.parametrize("command", ["build", "lint"])
def test_buf_works_offline_from_the_repository_root(command: str) -> None:
    # No network is needed: every import is vendored under proto/ (proto/VENDORED.md).
    completed = _run([str(BUF), command], REPO)
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.fixture(scope="module")
def node_tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``node_modules`` with protoc-gen-es and the protobuf-es runtime, from npm."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("Node.js and npm are not installed")
    prefix = tmp_path_factory.mktemp("node-tools")
    completed = _run(
        [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
            "--prefix",
            str(prefix),
            *NPM_PACKAGES,
        ],
        prefix,
    )
    if completed.returncode != 0:
        if _OFFLINE.search(completed.stderr):
            pytest.skip(f"the npm registry is unreachable: {completed.stderr.strip()[-300:]}")
        pytest.fail(f"npm install failed: {completed.stderr.strip()[-2000:]}")
    return prefix / "node_modules"


_CLIENT = """
import { create, toBinary } from "@bufbuild/protobuf";
import { EnvService, StreamSessionRequestSchema } from "./gen/ts/gymrpc/v1/env_service_pb";

const request = create(StreamSessionRequestSchema, {
  sequence: 7n,
  request: { case: "reset", value: { sessionId: "abc", seeding: { case: "seed", value: 42n } } },
});
const bytes = toBinary(StreamSessionRequestSchema, request);
const hex = Array.from(bytes, (byte: number) => byte.toString(16).padStart(2, "0")).join("");
console.log(`${EnvService.typeName} ${Object.keys(EnvService.method).join(",")} ${hex}`);
"""


def test_the_typescript_template_generates_a_working_client(
    node_tools: Path, tmp_path: Path
) -> None:
    environment = {**os.environ, "PATH": f"{node_tools / '.bin'}{os.pathsep}{os.environ['PATH']}"}
    generated = _run(
        [str(BUF), "generate", "--template", "docs/buf.gen.ts.yaml", "-o", str(tmp_path)],
        REPO,
        env=environment,
    )
    assert generated.returncode == 0, generated.stderr
    produced = sorted(
        str(p.relative_to(tmp_path / "gen/ts")) for p in (tmp_path / "gen/ts").rglob("*.ts")
    )
    # Every schema file, the vendored ones included (the well-known types come from
    # @bufbuild/protobuf).
    expected = sorted(
        str(path.relative_to(REPO / "proto")).removesuffix(".proto") + "_pb.ts"
        for path in (REPO / "proto").rglob("*.proto")
    )
    assert produced == expected
    # The generated code type-checks under --strict, runs, and encodes a request
    # exactly as the Python stubs do.
    (tmp_path / "node_modules").symlink_to(node_tools)
    (tmp_path / "client.ts").write_text(_CLIENT)
    compiled = _run(
        [
            str(node_tools / ".bin" / "tsc"),
            "--strict",
            "--skipLibCheck",
            "--target",
            "es2020",
            "--module",
            "commonjs",
            "--outDir",
            "js",
            "client.ts",
        ],
        tmp_path,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    ran = _run(["node", "js/client.js"], tmp_path)
    assert ran.returncode == 0, ran.stderr
    service, methods, encoded = ran.stdout.split()
    assert service == "gymrpc.v1.EnvService"
    assert set(methods.split(",")) == {
        method.name[0].lower() + method.name[1:]
        for method in pb.DESCRIPTOR.services_by_name["EnvService"].methods
    }
    python = pb.StreamSessionRequest(sequence=7, reset=pb.ResetRequest(session_id="abc", seed=42))
    assert bytes.fromhex(encoded) == python.SerializeToString()


_FAKE_PLUGIN = """#!{python}
# Stands in for a Go protoc plugin: reports what buf asked it to generate.
import json, sys
from google.protobuf.compiler import plugin_pb2
request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
response = plugin_pb2.CodeGeneratorResponse(
    supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
)
report = response.file.add(name=sys.argv[0].rsplit("/", 1)[-1] + ".json")
report.content = json.dumps({{
    "generate": sorted(request.file_to_generate),
    "parameter": request.parameter,
    "go_package": {{f.name: f.options.go_package for f in request.proto_file}},
}})
sys.stdout.buffer.write(response.SerializeToString())
"""


def test_the_go_template_names_go_packages(tmp_path: Path) -> None:
    plugins = tmp_path / "bin"
    plugins.mkdir()
    for name in ("protoc-gen-go", "protoc-gen-go-grpc"):
        script = plugins / name
        script.write_text(_FAKE_PLUGIN.format(python=sys.executable))
        script.chmod(0o755)
    environment = {**os.environ, "PATH": f"{plugins}{os.pathsep}{os.environ['PATH']}"}
    out = tmp_path / "out"
    generated = _run(
        [
            str(BUF),
            "generate",
            "--template",
            "docs/buf.gen.go.yaml",
            "--path",
            "proto/gymrpc",
            "-o",
            str(out),
        ],
        REPO,
        env=environment,
    )
    assert generated.returncode == 0, generated.stderr
    for name in ("protoc-gen-go", "protoc-gen-go-grpc"):
        report = json.loads((out / "gen" / f"{name}.json").read_text())
        # Only gymrpc's own files: the vendored ones come from their Go modules.
        assert report["generate"] == sorted(
            str(path.relative_to(REPO / "proto"))
            for path in (REPO / "proto" / "gymrpc").rglob("*.proto")
        )
        assert report["parameter"] == "module=example.com/yourteam/gymrpcgo/gen"
        packages = report["go_package"]
        assert (
            packages["gymrpc/v1/env_service.proto"]
            == "example.com/yourteam/gymrpcgo/gen/gymrpc/v1;gymrpcv1"
        )
        # The vendored files keep the packages of the Go modules that publish them.
        assert (
            packages["google/rpc/status.proto"]
            == "google.golang.org/genproto/googleapis/rpc/status;status"
        )
