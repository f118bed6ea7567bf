"""The local stack as one unit: bring PostgreSQL and Kafka up (idempotently), down, and report status."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from fraudops.config import Settings
from fraudops.db import migrate
from fraudops_infra.kafka import LocalKafka
from fraudops_infra.postgres import LocalPostgres


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    running: bool
    address: str
    details: str


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.postgres = LocalPostgres(settings)
        self.kafka = LocalKafka(settings)

    def up(self) -> list[tuple[str, str]]:
        """Start what is not running, migrate the schema, create topics. Safe to run repeatedly."""
        steps = [("postgres", self.postgres.up())]
        migrate.upgrade(self.postgres.url)
        steps.append(("schema", f"at revision {migrate.current_revision(self.postgres.url)}"))
        steps.append(("kafka", self.kafka.up()))
        return steps

    def down(self, delete_data: bool = False) -> list[tuple[str, str]]:
        """Stop both; with `delete_data`, also delete their data (the PostgreSQL cluster wherever it lives)."""
        steps = [("kafka", self.kafka.down()), ("postgres", self.postgres.down())]
        if delete_data:
            shutil.rmtree(self.kafka.root, ignore_errors=True)
            steps += [("kafka", f"deleted {self.kafka.root}"), ("postgres", self.postgres.delete_data())]
        return steps

    def status(self) -> list[ComponentStatus]:
        pg_running = self.postgres.is_running()
        kafka_pid = self.kafka.pid()
        topics = ""
        if kafka_pid is not None:
            topics = ", ".join(f"{name}({count})" for name, count in sorted(self.kafka.topics().items()))
        return [
            ComponentStatus(
                "postgres",
                pg_running,
                self.postgres.url if pg_running else "-",
                f"data {self.postgres.paths.data}; log {self.postgres.paths.log}",
            ),
            ComponentStatus(
                "kafka",
                kafka_pid is not None,
                self.kafka.bootstrap if kafka_pid else "-",
                (f"pid {kafka_pid}; topics {topics or 'none'}; " if kafka_pid else "")
                + f"log {self.kafka.log_dir / 'server.log'}",
            ),
        ]
