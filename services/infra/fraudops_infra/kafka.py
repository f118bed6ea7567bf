"""A single-node KRaft Kafka broker (broker + controller in one JVM) on loopback.

The broker's jars come from Maven Central (`org.apache.kafka:kafka_2.13` and its runtime
dependencies), resolved once by Maven into the cache folder and reused. With KAFKA_SCRAM_PORT set it
also listens with SASL/SCRAM-SHA-512 there, as a Strimzi listener with `authentication: scram-sha-512`
does; its users are added like Strimzi's user operator adds a KafkaUser's (`add_scram_user`).
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from fraudops.config import Settings
from fraudops.errors import InfraError
from fraudops_infra.processes import (
    apt_install,
    ensure_port_free,
    port_is_open,
    read_pid,
    run_checked,
    start_detached,
    stop_tree,
    wait_until,
)

BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
SCRAM_LISTENER = "SCRAM"
SCRAM_ITERATIONS = 4096  # Strimzi's user operator uses the same count


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def platform_topics(settings: Settings) -> list[TopicSpec]:
    """The topics the platform needs: the transaction stream, alerts, and the dead-letter queue."""
    return [
        TopicSpec(
            settings.transactions_topic,
            settings.transactions_partitions,
            {"retention.ms": str(7 * 24 * 3600 * 1000), "compression.type": "producer"},
        ),
        TopicSpec(settings.alerts_topic, 3, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
        TopicSpec(settings.dlq_topic, 1, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
    ]


def wait_for_broker(admin: AdminClient, deadline_s: float) -> None:
    """Return once the broker behind `admin` answers a metadata request; InfraError after `deadline_s`.

    For a Job started with the broker it needs (a Helm release): waiting here, instead of failing and
    being restarted by the kubelet until the broker is up, keeps the pod at zero restarts."""
    try:
        for attempt in Retrying(
            stop=stop_after_delay(deadline_s),
            wait=wait_exponential(multiplier=0.5, max=5),
            retry=retry_if_exception_type(KafkaException),
            reraise=True,
        ):
            with attempt:
                admin.list_topics(timeout=5)
    except KafkaException as exc:
        raise InfraError(f"no Kafka broker answered within {deadline_s:.0f} s: {exc}") from exc


def create_platform_topics(admin: AdminClient, settings: Settings, replication_factor: int = 1) -> list[str]:
    """Create the platform topics that the broker behind `admin` lacks; returns the names created."""
    try:
        existing = admin.list_topics(timeout=10).topics
    except KafkaException as exc:
        admin.poll(0)  # a refused login raises here (KafkaAuthenticationError), clearer than "cannot reach"
        raise InfraError(
            f"cannot list the topics on Kafka at {settings.kafka_bootstrap_servers}: {exc.args[0].str()}"
        ) from exc
    wanted = [spec for spec in platform_topics(settings) if spec.name not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=replication_factor,
                config=spec.config,
            )
            for spec in wanted
        ],
        operation_timeout=30,
    )
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise InfraError(f"creating Kafka topic {name!r} failed: {exc}") from exc
    return [spec.name for spec in wanted]


def _java_major() -> int | None:
    java = shutil.which("java")
    if java is None:
        return None
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else None


def ensure_java_and_maven() -> None:
    """Kafka 4 needs Java 17+; Maven resolves the jars. Both come from Debian packages if missing."""
    major = _java_major()
    if major is None or major < 17:
        apt_install(["openjdk-17-jre-headless"], "Java 17")
    if shutil.which("mvn") is None:
        apt_install(["maven"], "Maven")


def resolve_jars(settings: Settings) -> Path:
    """The folder with the broker's jars for settings.kafka_version, resolving it from Maven Central once."""
    libs = settings.cache_dir.resolve() / "kafka" / settings.kafka_version / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    ensure_java_and_maven()
    libs.mkdir(parents=True, exist_ok=True)
    with resources.as_file(resources.files("fraudops_infra") / "kafka-broker-pom.xml") as pom:
        run_checked(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(pom),
                f"-Dkafka.version={settings.kafka_version}",
                f"-Doutput.dir={libs}",
                f"-Dproject.build.directory={libs.parent / 'maven-target'}",
                "dependency:copy-dependencies",
            ],
            f"resolving Kafka {settings.kafka_version} from Maven Central",
        )
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise InfraError(f"Maven finished but no kafka_2.13 jar is in {libs}")
    marker.write_text(settings.kafka_version + "\n")
    return libs


def _cluster_id() -> str:
    """A random KRaft cluster id (base64 of a UUID), never starting with '-', which the CLI reads as a flag."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalKafka:
    """The lifecycle of the local broker: resolve jars, format storage, start, create topics, stop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.run_dir.resolve() / "kafka"
        self.pid_file = self.root / "kafka.pid"
        self.log_dir = self.root / "logs"
        self.data_dir = self.root / "data"
        self.config_file = self.root / "server.properties"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.settings.kafka_port}"

    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def up(self) -> str:
        if self.pid() is not None:
            self._wait_ready()
            self.create_topics()
            return "already running"
        ensure_port_free(self.settings.kafka_port, "KAFKA_PORT")
        ensure_port_free(self.settings.kafka_controller_port, "KAFKA_CONTROLLER_PORT")
        if self.settings.kafka_scram_port is not None:
            ensure_port_free(self.settings.kafka_scram_port, "KAFKA_SCRAM_PORT")
        libs = resolve_jars(self.settings)
        self._write_config()
        classpath = f"{libs}/*"
        if not (self.data_dir / "meta.properties").exists():
            cluster_id = _cluster_id()
            run_checked(
                [
                    "java",
                    "-cp",
                    classpath,
                    STORAGE_TOOL,
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(self.config_file),
                ],
                "formatting Kafka KRaft storage",
            )
        with resources.as_file(resources.files("fraudops_infra") / "kafka-log4j2.properties") as log_config:
            start_detached(
                [
                    "java",
                    f"-Xms{self.settings.kafka_heap}",
                    f"-Xmx{self.settings.kafka_heap}",
                    "-XX:+UseG1GC",
                    "-XX:MaxGCPauseMillis=20",
                    "-Djava.awt.headless=true",
                    f"-Dkafka.logs.dir={self.log_dir}",
                    f"-Dlog4j2.configurationFile={log_config}",
                    "-cp",
                    classpath,
                    BROKER_MAIN,
                    str(self.config_file),
                ],
                log_file=self.log_dir / "stdout.log",
                pid_file=self.pid_file,
            )
        self._wait_ready()
        self.create_topics()
        return "started"

    def down(self) -> str:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return "not running"
        stop_tree(pid, timeout_s=30)
        self.pid_file.unlink(missing_ok=True)
        return "stopped"

    @property
    def scram_bootstrap(self) -> str:
        """The SASL/SCRAM-SHA-512 listener (KAFKA_SCRAM_PORT)."""
        if self.settings.kafka_scram_port is None:
            raise InfraError("the local broker has no SCRAM listener: set KAFKA_SCRAM_PORT before it starts")
        return f"127.0.0.1:{self.settings.kafka_scram_port}"

    def admin(self) -> AdminClient:
        """An admin client on the broker's own listener (plaintext, loopback only)."""
        return AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 5000})

    def add_scram_user(self, name: str, password: str) -> None:
        """Create (or reset the password of) a SCRAM-SHA-512 user of the SCRAM listener."""
        upsert = UserScramCredentialUpsertion(
            name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS), password.encode()
        )
        admin = self.admin()  # must outlive the futures: a collected client cancels its requests
        futures = admin.alter_user_scram_credentials([upsert], request_timeout=30)
        for future in futures.values():
            try:
                future.result()
            except KafkaException as exc:
                raise InfraError(f"adding the SCRAM user {name!r} to the local broker failed: {exc}") from exc

    def create_topics(self) -> list[str]:
        """Create the platform topics that do not exist yet; returns the names created."""
        return create_platform_topics(self.admin(), self.settings)

    def topics(self) -> dict[str, int]:
        """Topic name → partition count (internal topics left out)."""
        metadata = self.admin().list_topics(timeout=5)
        return {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if not name.startswith("__")
        }

    def _wait_ready(self) -> None:
        def broker_answers() -> bool:
            if not port_is_open(self.settings.kafka_port):
                return False
            try:
                return bool(self.admin().list_topics(timeout=2).brokers)
            except KafkaException:  # not ready yet: the next poll tries again
                return False

        wait_until(
            broker_answers, 90, "Kafka", self.log_dir / "server.log", alive=lambda: self.pid() is not None
        )

    def _write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        port, controller = self.settings.kafka_port, self.settings.kafka_controller_port
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "num.network.threads": "3",
            "num.io.threads": "4",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.segment.bytes": str(256 * 1024 * 1024),
            "log.retention.hours": "168",
            "message.max.bytes": str(8 * 1024 * 1024),
        }
        if self.settings.kafka_scram_port is not None:
            properties |= _scram_listener(properties, self.settings.kafka_scram_port)
        self.config_file.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))


def _scram_listener(properties: dict[str, str], port: int) -> dict[str, str]:
    """The properties that add a SASL_PLAINTEXT listener taking SCRAM-SHA-512 only (the broker's own traffic
    stays on its plaintext listener, so no broker credentials are needed)."""
    address = f"{SCRAM_LISTENER}://127.0.0.1:{port}"
    prefix = f"listener.name.{SCRAM_LISTENER.lower()}"
    return {
        "listeners": f"{properties['listeners']},{address}",
        "advertised.listeners": f"{properties['advertised.listeners']},{address}",
        "listener.security.protocol.map": (
            f"{properties['listener.security.protocol.map']},{SCRAM_LISTENER}:SASL_PLAINTEXT"
        ),
        f"{prefix}.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        f"{prefix}.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
    }
