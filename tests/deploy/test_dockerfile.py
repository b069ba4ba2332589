"""deploy/Dockerfile: its command, run as the Kubernetes manifests configure it.

Docker cannot run here, so the image is not built: the test reads the Dockerfile's
final stage, runs exactly its ENTRYPOINT + CMD from this virtualenv with the image's
and the StatefulSet's environment variables (addresses moved to 127.0.0.1 port 0,
the Secrets' files written from fixtures where the volumes mount them), and checks
that it serves with tokens and TLS, reports metrics, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import trustme
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from gymrpc_testing import TOKENS, TOKENS_TOML

import gymrpc
from gymrpc.v1 import env_service_pb2 as pb
from gymrpc.v1 import env_service_pb2_grpc as pb_grpc

# importlib mode puts no test directory on sys.path; the output reader lives there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "robustness"))
from gymrpc_robustness import EXIT_TIMEOUT, START_TIMEOUT, LineReader

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent
Instruction = tuple[str, str]


def instructions(text: str) -> list[Instruction]:
    """A Dockerfile's instructions, ``(KEYWORD, arguments)``, continuations joined."""
    found: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments may sit inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return found


def final_stage(found: list[Instruction]) -> list[Instruction]:
    starts = [index for index, (keyword, _) in enumerate(found) if keyword == "FROM"]
    assert len(starts) == 2, "expected a build stage and a runtime stage"
    return found[starts[-1] :]


def env_of(stage: list[Instruction]) -> dict[str, str]:
    """The ENV settings of a stage (``KEY=value`` pairs; PATH is the image's own)."""
    env: dict[str, str] = {}
    for keyword, arguments in stage:
        if keyword != "ENV":
            continue
        words = shlex.split(arguments)
        if "=" not in words[0]:  # the legacy form: ENV KEY value
            env[words[0]] = arguments.split(None, 1)[1]
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = value
    return env


def exec_form(stage: list[Instruction], keyword: str) -> list[str]:
    """The stage's last ENTRYPOINT or CMD, which must be a JSON list (exec form)."""
    given = [arguments for name, arguments in stage if name == keyword]
    if not given:
        return []
    words = json.loads(given[-1])
    assert isinstance(words, list), f"{keyword} is not in exec form: {given[-1]}"
    return [str(word) for word in words]


DOCKERFILE = instructions((DEPLOY / "Dockerfile").read_text())
RUNTIME = final_stage(DOCKERFILE)
STATEFULSET = yaml.safe_load((DEPLOY / "kubernetes" / "statefulset.yaml").read_text())


def test_the_image_is_slim_python_3_11_run_by_an_unprivileged_user() -> None:
    args = {
        arguments.partition("=")[0]: arguments.partition("=")[2]
        for keyword, arguments in DOCKERFILE
        if keyword == "ARG"
    }
    for keyword, arguments in DOCKERFILE:
        if keyword == "FROM":
            image = arguments.split()[0].replace("${PYTHON_IMAGE}", args["PYTHON_IMAGE"])
            assert image.startswith("python:3.11-slim"), image
    users = [arguments for keyword, arguments in RUNTIME if keyword == "USER"]
    assert users, "the runtime stage sets no USER: it would run as root"
    uid = users[-1].partition(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0  # numeric, so that runAsNonRoot can check it
    pod = STATEFULSET["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)


def test_the_install_is_the_lean_runtime_with_the_extras_the_manifests_use() -> None:
    installs = [
        arguments for keyword, arguments in DOCKERFILE if keyword == "RUN" and "pip" in arguments
    ]
    assert len(installs) == 1
    extras = re.findall(r"\.\[([^\]]*)\]", installs[0])
    assert extras == ["metrics,postgres"]  # metrics for --metrics-address, psycopg for the URL
    for keyword, arguments in DOCKERFILE:
        if keyword == "COPY" and "--from" not in arguments:
            for source in arguments.split()[:-1]:
                assert (ROOT / source).exists(), source
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {"!pyproject.toml", "!README.md", "!src/**", "!server/**"} <= set(ignored)


def test_the_command_is_the_plain_server_in_exec_form() -> None:
    # Exec form: the server is PID 1 and receives SIGTERM itself.
    assert exec_form(RUNTIME, "ENTRYPOINT") + exec_form(RUNTIME, "CMD") == ["gymrpc-server"]
    container = STATEFULSET["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in container
    assert "args" not in container


def manifest_environment(tmp_path: Path, secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The container's variables as the kubelet would set them, for a local run.

    Secret volumes are written into ``tmp_path`` at their mount paths, from
    ``secrets`` (``(secret, key)`` to content); paths into them follow; addresses move
    to 127.0.0.1 port 0; ``secretKeyRef`` values come from ``secrets`` too.
    """
    pod = STATEFULSET["spec"]["template"]["spec"]
    container = pod["containers"][0]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounted: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        local = tmp_path / mount["mountPath"].lstrip("/")
        local.mkdir(parents=True)
        mounted[mount["mountPath"]] = local
        secret = volumes[mount["name"]].get("secret")
        for item in secret["items"] if secret else ():
            (local / item["path"]).write_text(secrets[secret["secretName"], item["key"]])
    env: dict[str, str] = {}
    for item in container["env"]:
        name = item["name"]
        if "valueFrom" in item:
            reference = item["valueFrom"]["secretKeyRef"]
            env[name] = secrets[reference["name"], reference["key"]]
            continue
        value = str(item["value"])
        for mount_path, local in mounted.items():
            if value.startswith(mount_path + "/"):
                value = str(local / value.removeprefix(mount_path + "/"))
                break
        env[name] = value
    assert env["GYMRPC_ADDRESS"].startswith("0.0.0.0:")
    env["GYMRPC_ADDRESS"] = "127.0.0.1:0"
    env["GYMRPC_METRICS_ADDRESS"] = "127.0.0.1:0"
    return env


def test_the_command_serves_as_configured_and_stops_on_sigterm(tmp_path: Path) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    database = tmp_path / "scores.sqlite3"
    manifest_env = manifest_environment(
        tmp_path / "pod",
        {
            ("gymrpc-tokens", "tokens.toml"): TOKENS_TOML,
            ("gymrpc-tls", "tls.crt"): b"".join(
                blob.bytes() for blob in certificate.cert_chain_pems
            ).decode(),
            ("gymrpc-tls", "tls.key"): certificate.private_key_pem.bytes().decode(),
            # The shared PostgreSQL URL's stand-in: a SQLAlchemy URL all the same.
            ("gymrpc-database", "url"): f"sqlite:///{database}",
        },
    )
    image_env = env_of(RUNTIME)
    image_env.pop("PATH")  # the image's virtualenv is this one here
    bin_dir = Path(sys.executable).parent
    environment = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        **image_env,
        **manifest_env,
    }
    command = exec_form(RUNTIME, "ENTRYPOINT") + exec_form(RUNTIME, "CMD")
    executable = shutil.which(command[0], path=environment["PATH"])
    assert executable == str(bin_dir / "gymrpc-server")
    process = subprocess.Popen(
        command,
        executable=executable,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    log = LineReader(process.stderr, "image-command")
    try:
        served = log.wait_for(r"serving on 127\.0\.0\.1:(\d+) \(TLS, auth: tokens", START_TIMEOUT)
        target = f"127.0.0.1:{served.group(1)}"
        metrics = re.search(r"metrics on (http://127\.0\.0\.1:\d+/metrics)", log.text)
        assert metrics is not None, log.text
        ca_file = tmp_path / "ca.pem"
        authority.cert_pem.write_to_path(str(ca_file))
        credentials = grpc.ssl_channel_credentials(ca_file.read_bytes())
        with grpc.secure_channel(target, credentials) as channel:
            # What the probes ask: no token needed for the health service.
            health: Any = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            stub = pb_grpc.EnvServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10)
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
            info = stub.GetServerInfo(
                pb.GetServerInfoRequest(),
                metadata=(("authorization", f"Bearer {TOKENS['alice']}"),),
                timeout=10,
            )
            assert {"tls", "auth", "scores"} <= set(info.capabilities)
        env = gymrpc.make_vec(
            "CartPole-v1",
            2,
            target=target,
            token=TOKENS["alice"],
            root_certificates=ca_file,
            seed=0,
            timeout=30,
        )
        env.reset()
        for _ in range(3):
            env.step(np.zeros(2, dtype=np.int64))
        env.close()
        with urllib.request.urlopen(metrics.group(1), timeout=10) as response:
            page = response.read().decode()
        assert 'gymrpc_env_steps_total{env_id="CartPole-v1"} 6.0' in page
        process.send_signal(signal.SIGTERM)
        assert process.wait(EXIT_TIMEOUT) == 0, log.text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(EXIT_TIMEOUT)
    log.join(EXIT_TIMEOUT)
    process.stderr.close()
    assert "SIGTERM received; stopping gracefully" in log.text
    assert re.search(r"scores database closed: \d+ records written", log.text), log.text
    assert log.text.rstrip().endswith("stopped"), log.text
    assert database.exists()  # the URL from the Secret was the one used
