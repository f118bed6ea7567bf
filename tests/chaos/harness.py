"""The fault-injection harness (no tests here): supervised processes, a steady load, faults, and the report.

Processes are started with `fraudops_infra.processes.start_detached` (their own session, a log, a
pid file) and signalled through psutil. The supervisor restarts a process only when the harness
itself killed it, the way Kubernetes restarts a pod; a process that exits by itself is counted as
an unplanned exit, which the suite's invariants forbid.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from confluent_kafka import KafkaError, Message, Producer

from fraudops_infra.processes import start_detached, stop_tree
from tests.conftest import REPO_ROOT
from tests.poison import POISONS


@dataclass
class Supervised:
    """One long-running process of the stack under test."""

    name: str
    argv: list[str]
    env: dict[str, str]
    logs: Path
    pid: int | None = None
    starts: int = 0
    planned_exit: bool = False
    last_exit: int | None = None  # the exit code of the last planned stop

    @property
    def log_file(self) -> Path:
        return self.logs / f"{self.name}.log"

    def start(self) -> None:
        # The new pid first, then the flag: the supervisor thread must never see the flag cleared while
        # the pid is still the one just stopped (it counted a planned kill -9 as an unplanned exit).
        self.pid = start_detached(
            self.argv, self.log_file, self.logs / f"{self.name}.pid", env=self.env, cwd=REPO_ROOT
        )
        self.planned_exit = False
        self.starts += 1

    def alive(self) -> bool:
        if self.pid is None:
            return False
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def signal(self, signum: int, wait_s: float = 90) -> None:
        """Send `signum` and wait for the process to end (planned: the supervisor will not count it)."""
        if self.pid is None:
            return
        self.planned_exit = True
        try:
            process = psutil.Process(self.pid)
            process.send_signal(signum)
            self.last_exit = process.wait(timeout=wait_s)
        except psutil.NoSuchProcess:
            return
        except psutil.TimeoutExpired:
            process.kill()
            self.last_exit = process.wait(timeout=30)

    def exit_code(self) -> int | None:
        try:
            return psutil.Process(self.pid).wait(timeout=0) if self.pid else None
        except (psutil.NoSuchProcess, psutil.TimeoutExpired):
            return None


@dataclass
class Produced:
    """Where each produced record landed, and what it was."""

    poison_at: dict[tuple[int, int], str] = field(
        default_factory=dict
    )  # (partition, offset) -> expected field
    failed: int = 0


class Load(threading.Thread):
    """Publishes the planned records at a steady rate with a plain idempotent producer that never gives up
    (a broker outage is buffered and retried), recording where every poison record landed."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        plan: list[tuple[str, str, bytes | None, str | None]],
        rate_per_s: float,
    ) -> None:
        super().__init__(name="chaos-load", daemon=True)
        self.topic = topic
        self.plan = plan  # (kind, key, value, expected field or None when valid)
        self.rate_per_s = rate_per_s
        self.produced = Produced()
        self.sent = 0
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "linger.ms": 20,
                "compression.type": "lz4",
                "message.timeout.ms": 0,
                "message.max.bytes": 8 * 2**20,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 2_097_151,
                "client.id": "chaos-load",
            }
        )
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            started = time.monotonic()
            for index, (_, key, value, expected) in enumerate(self.plan):
                ahead = started + index / self.rate_per_s - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)  # pacing the load, not waiting for a result
                self._send(key, value, expected)
                self.sent += 1
                if index % 1000 == 0:
                    self.producer.poll(0)
            while self.producer.flush(1.0) > 0:
                pass
        except BaseException as exc:  # noqa: BLE001 - reported by the test, which fails on it
            self.error = exc

    def _send(self, key: str, value: bytes | None, expected: str | None) -> None:
        produced = self.produced

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                produced.failed += 1
            elif expected is not None:
                produced.poison_at[(message.partition(), message.offset())] = expected

        while True:
            try:
                self.producer.produce(self.topic, value, key, on_delivery=delivered)
                return
            except BufferError:
                self.producer.poll(0.1)


def load_plan(
    records: list[tuple[str, bytes]], poison_share: float, hot_burst: int, seed: int
) -> tuple[list[tuple[str, str, bytes | None, str | None]], Counter[str]]:
    """The valid records in order, a poison record of every kind at `poison_share` of the traffic, and a
    burst of `hot_burst` valid records of one customer (a hot key) in the middle."""
    rng = random.Random(seed)
    plan: list[tuple[str, str, bytes | None, str | None]] = []
    kinds: Counter[str] = Counter()
    every = max(int(1 / poison_share), 1)
    for index, (key, value) in enumerate(records):
        plan.append(("valid", key, value, None))
        if index % every == every - 1:
            poison = POISONS[(index // every) % len(POISONS)] if rng.random() < 0.8 else rng.choice(POISONS)
            plan.append((poison.kind, key, poison.make(f"poison-{index}", key), poison.field))
            kinds[poison.kind] += 1
        if index == len(records) // 2:
            for burst in range(hot_burst):
                at = f"2026-08-01T{burst // 3600:02d}:{(burst // 60) % 60:02d}:{burst % 60:02d}Z"
                value = json.dumps(
                    {
                        "transaction_id": f"hot-{burst}",
                        "customer_id": "hot-customer",
                        "event_time": at,
                        "amount": round(5 + (burst % 97) * 1.25, 2),
                        "merchant_category": "digital_goods",
                        "channel": "WEB",
                    }
                ).encode()
                plan.append(("hot key", "hot-customer", value, None))
    return plan, kinds


class GatewayProbe(threading.Thread):
    """A light, steady `/predict` load on the gateway through the faults; counts the answers by status."""

    def __init__(self, url: str, rate_per_s: float) -> None:
        super().__init__(name="chaos-gateway", daemon=True)
        self.url = url
        self.rate_per_s = rate_per_s
        self.statuses: Counter[str] = Counter()
        self.stopping = threading.Event()

    def run(self) -> None:
        body = {
            "amount": 42.5,
            "merchant_category": "electronics",
            "source": "WEB",
            "is_international": False,
            "hour_of_day": 14,
        }
        with httpx.Client(timeout=5) as client:
            while not self.stopping.wait(1 / self.rate_per_s):
                try:
                    self.statuses[str(client.post(self.url + "/predict", json=body).status_code)] += 1
                except httpx.HTTPError as exc:
                    self.statuses[type(exc).__name__] += 1


@dataclass
class FaultLog:
    counts: Counter[str] = field(default_factory=Counter)
    last_recovered: float = 0.0
    events: list[str] = field(default_factory=list)

    def record(self, kind: str, started: float, detail: str = "") -> None:
        self.counts[kind] += 1
        self.last_recovered = time.monotonic()
        self.events.append(f"{started:8.1f}s {kind} {detail}".rstrip())


def kill_tree(pid: int) -> None:
    """kill -9 of a process and all its children at once (a server's crash, no goodbye)."""
    stop_tree(pid, timeout_s=30, first_signal=signal.SIGKILL)


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def write_report(rows: list[tuple[str, str]], events: list[str], path: Path) -> str:
    """The suite's table as markdown (printed, and written where the README quotes it)."""
    width = max(len(name) for name, _ in rows)
    lines = ["| what | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# `make chaos`: the fault-injection suite's last run\n\n{text}\n\n"
        f"Machine: {os.cpu_count()} cores, shared with the suite's own load generator and servers.\n\n"
        "<details><summary>Fault timeline (seconds from the start of the load)</summary>\n\n```\n"
        + "\n".join(events)
        + "\n```\n</details>\n"
    )
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
