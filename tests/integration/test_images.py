"""The built images, run the way Kubernetes runs them here: `docker run --read-only` (only /tmp writable) as
uid 10001, each answering its health endpoint against the real PostgreSQL, Kafka and kube-apiserver of
the test session; the training image trains on a small simulated file into a mounted volume.

Needs a Docker engine and the images of `make images` (`make test-images` starts the engine); a missing
engine or image fails the test with the command that provides it.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from fraudops.artifact import METADATA_FILE
from tests.conftest import REPO_ROOT
from tests.integration.conftest import free_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.images]

VERSION = next(
    line.split('"')[1]
    for line in (REPO_ROOT / "pyproject.toml").read_text().splitlines()
    if line.startswith("version = ")
)
PLATFORM = f"ghcr.io/fraudops/fraudops:{VERSION}"
PREDICTOR = f"ghcr.io/fraudops/predictor:{VERSION}"
POSTGRES = f"ghcr.io/fraudops/postgres:{VERSION}"
KAFKA = f"ghcr.io/fraudops/kafka:{VERSION}"
# As the charts run them: read-only root, a writable /tmp, non-root, no capabilities.
LOCKED_DOWN = [
    "--read-only",
    "--tmpfs",
    "/tmp:rw,exec,size=512m",
    "--user",
    "10001:10001",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
]


def on_host(env: dict[str, str], mounts: dict[Path, str]) -> list[str]:
    """LOCKED_DOWN on the host's network (the session's services listen on loopback), with environment
    variables and read-only mounts."""
    options = [*LOCKED_DOWN, "--network", "host"]
    for name, value in env.items():
        options += ["-e", f"{name}={value}"]
    for source, target in mounts.items():
        options += ["-v", f"{source}:{target}:ro"]
    return options


def docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module", autouse=True)
def images() -> None:
    if docker("version", "--format", "{{.Server.Version}}").returncode != 0:
        pytest.fail(
            "no Docker engine answers: run `make test-images` (starts dockerd) or start dockerd",
            pytrace=False,
        )
    missing = [
        i for i in (PLATFORM, PREDICTOR, POSTGRES, KAFKA) if docker("image", "inspect", i).returncode != 0
    ]
    if missing:
        pytest.fail(f"images not built: {', '.join(missing)}: run `make images`", pytrace=False)


@contextmanager
def container(image: str, *args: str, options: list[str] | tuple[str, ...] = ()) -> Iterator[str]:
    """A detached container, removed afterwards; its logs go into any failure message via `logs`."""
    name = f"fraudops-test-{secrets.token_hex(4)}"
    started = docker("run", "--detach", "--name", name, *options, image, *args)
    assert started.returncode == 0, f"docker run {image} failed: {started.stderr}"
    try:
        yield name
    finally:
        docker("rm", "--force", name)


def logs(name: str) -> str:
    proc = docker("logs", "--tail", "60", name)
    return proc.stdout + proc.stderr


@dataclass(frozen=True)
class Container:
    """A container as `wait_until` watches a process: `poll()` is its exit code once it has stopped."""

    name: str

    def poll(self) -> int | None:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", self.name).stdout or "{}")
        return int(state.get("ExitCode", -1)) if state and not state.get("Running") else None

    def __repr__(self) -> str:
        return f"container {self.name}"


def wait_on_container(probe: Callable[[], bool], name: str, what: str, timeout_s: float = 180) -> None:
    """Poll `probe` until true; fail with the container's logs if it exits or time runs out."""
    wait_until(
        probe,
        timeout_s,
        lambda: f"{what} from container {name}:\n{logs(name)}",
        interval_s=0.5,
        alive=[Container(name)],
    )


def answers(url: str, contains: str = "") -> Callable[[], bool]:
    def probe() -> bool:
        try:
            response = httpx.get(url, timeout=2)
        except httpx.HTTPError:
            return False  # not listening yet
        return response.status_code == 200 and contains in response.text

    return probe


def test_every_image_runs_as_uid_10001_with_a_read_only_root_filesystem() -> None:
    for image in (PLATFORM, PREDICTOR, POSTGRES, KAFKA):
        user = docker("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
        assert user == "10001:10001", f"{image} runs as {user!r}"
    proc = docker("run", "--rm", *LOCKED_DOWN, PLATFORM, "--help")
    assert proc.returncode == 0 and "serve" in proc.stdout, proc.stderr
    proc = docker("run", "--rm", *LOCKED_DOWN, "--entrypoint", "pip", PLATFORM, "--version")
    assert proc.returncode != 0, "pip is in the runtime image"


def test_the_gateway_answers_live_and_ready_with_the_real_database(
    db_url: str, trained_artifact: Path
) -> None:
    port = free_port()
    options = on_host({"DB_URL": db_url, "MODEL_PATH": "/models/model"}, {trained_artifact: "/models/model"})
    with container(
        PLATFORM, "serve", "gateway", "--host", "127.0.0.1", "--port", str(port), options=options
    ) as name:
        wait_on_container(answers(f"http://127.0.0.1:{port}/health/live"), name, "/health/live")
        wait_on_container(
            answers(f"http://127.0.0.1:{port}/health/ready"), name, "/health/ready (database reachable)"
        )


def test_the_predictor_answers_v2_live_and_its_model_ready(trained_artifact: Path) -> None:
    port = free_port()
    options = on_host({}, {trained_artifact: "/mnt/models"})
    with container(
        PREDICTOR,
        "--model_name",
        "card-fraud",
        "--model_dir",
        "/mnt/models",
        "--http_port",
        str(port),
        options=options,
    ) as name:
        wait_on_container(answers(f"http://127.0.0.1:{port}/v2/health/live"), name, "/v2/health/live")
        wait_on_container(
            answers(f"http://127.0.0.1:{port}/v2/models/card-fraud/ready"), name, "the model ready"
        )


def test_the_consumer_serves_metrics_while_consuming_from_the_real_broker(
    db_url: str, kafka_bootstrap: str, trained_artifact: Path
) -> None:
    topic = f"image-test-{secrets.token_hex(3)}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})  # kept alive until the topic exists
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    port = free_port()
    env = {
        "DB_URL": db_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TRANSACTIONS_TOPIC": topic,
        "CONSUMER_GROUP": topic,
        "MODEL_PATH": "/models/model",
    }
    options = on_host(env, {trained_artifact: "/models/model"})
    with container(PLATFORM, "stream", "consume", "--metrics-port", str(port), options=options) as name:
        wait_on_container(answers(f"http://127.0.0.1:{port}/metrics", "fraudops_"), name, "/metrics")


def test_the_operator_answers_its_liveness_probe_against_the_real_api_server(tmp_path: Path) -> None:
    from tests.k8s.conftest import OUR_CRDS, install_crds, start_server

    server = start_server(tmp_path)
    try:
        install_crds(server, [OUR_CRDS])
        assert server.kubeconfig_path is not None
        kubeconfig = tmp_path / "kubeconfig"  # a copy uid 10001 may read (the server's own is root's, 0600)
        kubeconfig.write_text(server.kubeconfig_path.read_text())
        kubeconfig.chmod(0o644)
        port = free_port()
        options = on_host({"KUBECONFIG": "/kube/config"}, {kubeconfig: "/kube/config"})
        with container(
            PLATFORM, "operator", "run", "--liveness", f"http://127.0.0.1:{port}/healthz", options=options
        ) as name:
            wait_on_container(answers(f"http://127.0.0.1:{port}/healthz"), name, "/healthz")
    finally:
        server.stop()


def test_the_training_image_trains_into_a_mounted_volume(simulated_history: Path, tmp_path: Path) -> None:
    output = tmp_path / "models"
    output.mkdir()
    output.chmod(0o777)  # the container's uid 10001 writes here
    options = [*LOCKED_DOWN, "-v", f"{simulated_history}:/data/history.parquet:ro", "-v", f"{output}:/models"]
    proc = docker(
        "run",
        "--rm",
        *options,
        PLATFORM,
        "train",
        "--data",
        "/data/history.parquet",
        "--output",
        "/models",
        "--version",
        "image-test",
        "--trials",
        "2",
        "--timeout",
        "60",
        "--label-delay-days",
        "5",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    artifact = output / "card-fraud" / "image-test"
    assert (artifact / METADATA_FILE).is_file(), sorted(p.name for p in artifact.iterdir())


def test_the_postgres_image_initialises_and_accepts_the_password() -> None:
    port = free_port()
    options = [
        *LOCKED_DOWN,
        "--tmpfs",
        "/var/lib/postgresql/data:rw,uid=10001,gid=10001,mode=0700",
        "-e",
        "POSTGRES_PASSWORD=image-test",
        "-p",
        f"127.0.0.1:{port}:5432",
    ]
    url = f"postgresql://fraudops:image-test@127.0.0.1:{port}/fraudops"

    def query() -> bool:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                return conn.execute("select current_user, current_database()").fetchone() == (
                    "fraudops",
                    "fraudops",
                )
        except psycopg.OperationalError:
            return False  # still initialising

    with container(POSTGRES, options=options) as name:
        wait_on_container(query, name, "a query as fraudops on database fraudops")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(url.replace("image-test@", "wrong@"), connect_timeout=5)


def test_the_kafka_image_serves_a_kraft_broker_and_the_platform_topics_can_be_created() -> None:
    port = free_port()
    options = [
        *LOCKED_DOWN,
        "--tmpfs",
        "/var/lib/kafka:rw,uid=10001,gid=10001",
        "-p",
        f"127.0.0.1:{port}:9092",
        "-e",
        "KAFKA_CLUSTER_ID=MkU3OEVBNTcwNTJENDM2Qg",
        "-e",
        f"KAFKA_ADVERTISED_PORT={port}",
        "-e",
        "KAFKA_HEAP_OPTS=-Xms256m -Xmx512m",
    ]
    with container(KAFKA, options=options) as name:
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "socket.timeout.ms": 3000})

        def has_broker() -> bool:
            try:
                return bool(admin.list_topics(timeout=2).brokers)
            except KafkaException:  # while it starts; the probe polls again
                return False

        wait_on_container(has_broker, name, "a broker in the metadata")
        topics = docker(
            "run",
            "--rm",
            *LOCKED_DOWN,
            "--network",
            "host",
            "-e",
            f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}",
            PLATFORM,
            "infra",
            "topics",
        )
        assert topics.returncode == 0, topics.stdout + topics.stderr
        assert {"transactions", "fraud-alerts", "transactions.dlq"} <= set(
            admin.list_topics(timeout=10).topics
        )
