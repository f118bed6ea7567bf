"""`make chaos`: the real stack on loopback under steady load, broken on a schedule, then every record accounted for.

Stack: PostgreSQL, a Kafka broker, the KServe predictor (the consumers score remotely through it),
a consumer group of two, and the gateway answering a light `/predict` load. Faults, each several
times: kill -9 of a consumer at random points of its loop (restarted at once, as Kubernetes would),
SIGTERM of a consumer while a third one joins (a rebalance), the broker killed and restarted,
PostgreSQL killed and restarted, the predictor killed and restarted; 1% of the traffic is poison
of every kind in `tests.poison`, and a hot customer sends a burst.

Invariants over every produced record: each valid transaction stored exactly once with one deciding
decision; each poison record in the DLQ with the field it breaks, none in the tables; each alert the
stored decisions imply on the alerts topic (duplicates counted, readers dedupe by key); scores and
checkpointed states equal to an uninterrupted offline pass; no process exited by itself; the
group's lag back to zero after the last fault. The table goes to `loadtest/results/chaos.md`.

Sizes: CHAOS_TRANSACTIONS (200,000), CHAOS_RATE (1,000/s), CHAOS_CONSUMER_KILLS (20).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest

from fraudops.config import Settings
from fraudops_infra.processes import fraudops_command
from fraudops_infra.stack import LocalStack
from tests.chaos.harness import (
    FaultLog,
    GatewayProbe,
    Load,
    Supervised,
    kill_tree,
    load_plan,
    postmaster_pid,
    write_report,
)
from tests.conftest import REPO_ROOT
from tests.integration.conftest import free_port
from tests.integration.streaming import (
    MODEL_NAME,
    committed,
    compare_with_reference,
    end_offsets,
    read_topic,
    remote_routing_table,
    simulated_records,
)
from tests.poison import POISONS
from tests.waiting import wait_until

pytestmark = pytest.mark.chaos

TRANSACTIONS = int(os.environ.get("CHAOS_TRANSACTIONS", "200000"))
RATE_PER_S = float(os.environ.get("CHAOS_RATE", "1000"))
CONSUMER_KILLS = int(os.environ.get("CHAOS_CONSUMER_KILLS", "20"))
OUTAGE_S = 5.0  # how long the broker, PostgreSQL and the predictor stay down each time
LAG_ZERO_WITHIN_S = 180.0  # the stated bound: the group's lag is back to zero this long after the last fault
REPORT = REPO_ROOT / "loadtest" / "results" / "chaos.md"
#: A SIGTERM'd consumer exits 0 once it finished its batch; one still starting up (its handler not yet
#: installed, nothing consumed) ends by the signal itself, which loses nothing either.
CLEAN_EXITS = (0, -signal.SIGTERM)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    run_dir = REPO_ROOT / ".run" / f"chaos-{os.getpid()}"
    shutil.rmtree(run_dir, ignore_errors=True)
    settings = Settings(
        run_dir=run_dir,
        cache_dir=REPO_ROOT / ".cache",
        postgres_port=free_port(),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_heap="512M",
        transactions_topic="chaos-transactions",
        alerts_topic="chaos-alerts",
        dlq_topic="chaos-transactions.dlq",
    )
    local = LocalStack(settings)
    try:
        local.up()
        yield local
    finally:
        local.down()
        shutil.rmtree(run_dir, ignore_errors=True)


class Stack:
    """The supervised processes, the infrastructure, and the faults done to them."""

    def __init__(self, infra: LocalStack, artifact: Path, logs: Path) -> None:
        self.infra = infra
        self.settings = infra.settings
        self.logs = logs
        self.faults = FaultLog()
        self.unplanned: list[str] = []
        self.rng = random.Random(20261201)
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "ROUTING_", "FRAUD_"))},
            "DB_URL": infra.postgres.url,
            "KAFKA_BOOTSTRAP_SERVERS": infra.kafka.bootstrap,
            "TRANSACTIONS_TOPIC": self.settings.transactions_topic,
            "ALERTS_TOPIC": self.settings.alerts_topic,
            "DLQ_TOPIC": self.settings.dlq_topic,
            "MODEL_PATH": str(artifact),
            "LOG_FORMAT": "json",
        }
        self.predictor_port, self.gateway_port = free_port(), free_port()
        self.predictor = Supervised(
            "predictor",
            fraudops_command(
                "serve",
                "predictor",
                "--model-uri",
                str(artifact),
                "--name",
                MODEL_NAME,
                "--port",
                str(self.predictor_port),
            ),
            base,
            logs,
        )
        self.gateway = Supervised(
            "gateway", fraudops_command("serve", "gateway", "--port", str(self.gateway_port)), base, logs
        )
        table = remote_routing_table(logs / "routing.yaml", f"http://127.0.0.1:{self.predictor_port}")
        self.consumer_env = {
            **base,
            "ROUTING_TABLE_PATH": str(table),
            "CONSUMER_GROUP": "chaos",
            "BATCH_SIZE": "1000",
        }
        self.consumers: list[Supervised] = []
        self._watching = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="chaos-supervisor", daemon=True)

    # --- processes ------------------------------------------------------------------------------------

    def new_consumer(self) -> Supervised:
        consumer = Supervised(
            f"consumer-{len(self.consumers)}",
            fraudops_command("stream", "consume", "--metrics-port", "0", "--checkpoint-interval", "5"),
            self.consumer_env,
            self.logs,
        )
        consumer.start()
        self.consumers.append(consumer)
        return consumer

    def live_consumers(self) -> list[Supervised]:
        return [c for c in self.consumers if not c.planned_exit or c.alive()]

    def start(self) -> None:
        self.predictor.start()
        self.wait_ready(f"http://127.0.0.1:{self.predictor_port}/v2/health/ready", "the predictor")
        self.gateway.start()
        self.wait_ready(f"http://127.0.0.1:{self.gateway_port}/health/live", "the gateway")
        self.new_consumer()
        self.new_consumer()
        self._watcher.start()

    @staticmethod
    def wait_ready(url: str, what: str) -> None:
        def answers() -> bool:
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, 240, f"{what} ready", interval_s=0.5)

    def _watch(self) -> None:
        """The supervisor: a process that ended without the harness ending it is an unplanned exit."""
        while not self._watching.wait(0.5):
            for process in [self.predictor, self.gateway, *self.consumers]:
                if process.pid is not None and not process.planned_exit and not process.alive():
                    self.unplanned.append(f"{process.name} exited with {process.exit_code()}")
                    process.start()  # counted against the run; restarted so the rest can still be checked

    def stop_watching(self) -> None:
        """Stop the supervisor and wait for it: a restart it is making must not come after this returns."""
        self._watching.set()
        if self._watcher.is_alive():
            self._watcher.join(timeout=120)

    def terminate(self) -> None:
        """Kill whatever of the run still runs, however the run ended: a failed run leaves no process."""
        self.stop_watching()
        for process in [*self.consumers, self.gateway, self.predictor]:
            if process.pid is not None and process.alive():
                process.planned_exit = True
                kill_tree(process.pid)

    # --- faults ---------------------------------------------------------------------------------------

    def kill_consumer(self, at: float) -> None:
        victim = self.rng.choice([c for c in self.live_consumers() if c.alive()])
        victim.signal(signal.SIGKILL)
        victim.start()  # restarted at once, like a pod
        self.faults.record("consumer kill -9", at, victim.name)

    def sigterm_during_rebalance(self, at: float) -> None:
        leaving = self.rng.choice([c for c in self.live_consumers() if c.alive()])
        joining = self.new_consumer()  # its join starts a rebalance of the group
        wait_until(
            lambda: "partition assigned" in joining.log_file.read_text(errors="replace"),
            600,
            "the joining consumer's first partitions",
            interval_s=0.5,
        )
        leaving.signal(signal.SIGTERM)
        if leaving.last_exit not in CLEAN_EXITS:
            self.unplanned.append(f"{leaving.name} exited with {leaving.last_exit} after SIGTERM")
        self.faults.record("SIGTERM during a rebalance", at, f"{leaving.name} left as {joining.name} joined")

    def kill_broker(self, at: float) -> None:
        pid = self.infra.kafka.pid()
        assert pid is not None, "the broker is running"
        kill_tree(pid)
        time.sleep(OUTAGE_S)  # the outage itself
        self.infra.kafka.up()
        self.faults.record("broker kill -9 + restart", at)

    def kill_postgres(self, at: float) -> None:
        pid = postmaster_pid(self.infra.postgres.paths.data)
        assert pid is not None, "PostgreSQL is running"
        kill_tree(pid)
        time.sleep(OUTAGE_S)
        self.infra.postgres.up()
        self.faults.record("PostgreSQL kill -9 + restart", at)

    def kill_predictor(self, at: float) -> None:
        self.predictor.signal(signal.SIGKILL)
        time.sleep(OUTAGE_S)
        self.predictor.start()
        self.wait_ready(f"http://127.0.0.1:{self.predictor_port}/v2/health/ready", "the predictor")
        self.faults.record("predictor kill -9 + restart", at)

    def schedule(self) -> list[str]:
        """The faults in order: consumer kills throughout, the others spread between them."""
        others = ["broker", "postgres", "predictor", "rebalance"] * 2 + ["rebalance"]
        kills = ["consumer"] * CONSUMER_KILLS
        plan: list[str] = []
        step = max(len(kills) // len(others), 1)
        for index, kill in enumerate(kills):
            plan.append(kill)
            if index % step == step - 1 and others:
                plan.append(others.pop(0))
        return plan + others


@pytest.fixture()
def system(stack: LocalStack, trained_artifact: Path, tmp_path: Path) -> Iterator[Stack]:
    processes = Stack(stack, trained_artifact, tmp_path)
    try:
        yield processes
    finally:
        processes.terminate()


def how_the_group_stands(stack: LocalStack, system: Stack, group: str, topic: str) -> str:
    """What a stalled group looks like: lag per partition, the members and their assignments as the broker
    sees them, and each live consumer's last rebalance lines (a stall must be diagnosable from CI's log)."""
    ends, done = end_offsets(stack.kafka.bootstrap, topic), committed(stack.kafka.bootstrap, group, topic)
    lines = [f"partition {p}: committed {done.get(p)} of {end}" for p, end in sorted(ends.items())]
    try:
        admin = stack.kafka.admin()  # kept while its futures run: a collected client cancels them
        described = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=30)
        lines.append(f"group {group}: {described.state}, {len(described.members)} member(s)")
        for member in described.members:
            owned = sorted(tp.partition for tp in member.assignment.topic_partitions)
            lines.append(f"  {member.client_id} {member.member_id[-8:]} at {member.host}: partitions {owned}")
    except Exception as exc:  # noqa: BLE001 - a diagnostic: what it could not read is said, not raised
        lines.append(f"describing the group failed: {exc!r}")
    for consumer in system.consumers:
        if not consumer.alive():
            continue
        events = [
            line
            for line in consumer.log_file.read_text(errors="replace").splitlines()
            if any(
                word in line for word in ("assigned", "revoked", "lost", "stop", "rebalanc", "error", "ERROR")
            )
        ]
        lines.append(f"{consumer.name} (pid {consumer.pid}), last of {len(events)} group events:")
        lines.extend(f"  {line[:300]}" for line in events[-12:])
    return "\n".join(lines)


def test_the_platform_loses_nothing_and_stalls_nothing_under_faults(
    stack: LocalStack, system: Stack, trained_artifact: Path
) -> None:
    began = time.monotonic()
    records = simulated_records(TRANSACTIONS, seed=2026)
    plan, poison_kinds = load_plan(records, poison_share=0.01, hot_burst=3_000, seed=7)
    assert len(poison_kinds) >= 20, "at least 20 kinds of poison"
    valid_ids = {
        orjson.loads(value)["transaction_id"] for kind, _, value, _ in plan if kind in ("valid", "hot key")
    }
    system.start()
    load = Load(stack.kafka.bootstrap, stack.settings.transactions_topic, plan, RATE_PER_S)
    probe = GatewayProbe(f"http://127.0.0.1:{system.gateway_port}", rate_per_s=20)
    load.start()
    probe.start()
    started = time.monotonic()

    faults = system.schedule()
    for index, fault in enumerate(faults):
        # Spread over the load by its progress (a restart that takes long does not push the faults past
        # the load's end), at a random point within each slot: random points of the consumers' loop.
        due = (index + system.rng.uniform(0.6, 1.4)) * len(plan) / (len(faults) + 1)
        wait_until(
            lambda d=due: load.sent >= d or not load.is_alive(), 1800, "the load's progress", interval_s=0.5
        )
        at = time.monotonic() - started
        {
            "consumer": system.kill_consumer,
            "rebalance": system.sigterm_during_rebalance,
            "broker": system.kill_broker,
            "postgres": system.kill_postgres,
            "predictor": system.kill_predictor,
        }[fault](at)

    load.join(timeout=1800)
    assert load.error is None, f"the load generator failed: {load.error!r}"
    load_ended = time.monotonic()
    topic, group = stack.settings.transactions_topic, "chaos"
    wait_until(
        lambda: committed(stack.kafka.bootstrap, group, topic) == end_offsets(stack.kafka.bootstrap, topic),
        900,
        lambda: f"zero lag\n{how_the_group_stands(stack, system, group, topic)}",
        interval_s=0.5,
    )
    lag_zero_at = time.monotonic()
    lag_zero_after_fault_s = lag_zero_at - max(system.faults.last_recovered, started)
    probe.stopping.set()
    probe.join(timeout=30)
    system.stop_watching()
    for consumer in system.live_consumers():
        consumer.signal(signal.SIGTERM)  # the clean path: every partition checkpointed
        if consumer.last_exit not in CLEAN_EXITS:
            system.unplanned.append(
                f"{consumer.name} exited with {consumer.last_exit} after the final SIGTERM"
            )
    system.gateway.signal(signal.SIGTERM)
    system.predictor.signal(signal.SIGTERM)

    with psycopg.connect(stack.postgres.url) as conn:
        stored = [
            row[0] for row in conn.execute("SELECT transaction_id FROM transactions WHERE source = 'stream'")
        ]
        deciding = dict(
            conn.execute("""SELECT transaction_id, count(*) FROM decisions WHERE NOT shadow
                                        AND source = 'stream' GROUP BY transaction_id""").fetchall()
        )
        frauds = {
            row[0]
            for row in conn.execute(
                "SELECT transaction_id FROM decisions WHERE NOT shadow AND is_fraud AND source = 'stream'"
            )
        }
    dead = read_topic(
        stack.kafka.bootstrap,
        stack.settings.dlq_topic,
        sum(end_offsets(stack.kafka.bootstrap, stack.settings.dlq_topic).values()),
        timeout_s=180,
    )
    letters: dict[tuple[int, int], str] = {}
    for message in dead:
        headers = {k: v.decode() for k, v in message.headers()}
        letters[(int(headers["dlq.partition"]), int(headers["dlq.offset"]))] = headers["dlq.field"]
    alerts = Counter(
        m.key().decode()
        for m in read_topic(
            stack.kafka.bootstrap,
            stack.settings.alerts_topic,
            sum(end_offsets(stack.kafka.bootstrap, stack.settings.alerts_topic).values()),
            timeout_s=180,
        )
    )
    comparison = compare_with_reference(
        stack.postgres.url, [value for _, _, value, _ in plan], trained_artifact, topic
    )
    poisoned = load.produced.poison_at
    wrong_field = [pos for pos, expected in poisoned.items() if pos in letters and letters[pos] != expected]
    rows = [
        ("faults injected", ", ".join(f"{kind}: {count}" for kind, count in system.faults.counts.items())),
        (
            "transactions produced",
            f"{len(plan):,} ({len(valid_ids):,} valid incl. a 3,000-record hot-key burst, "
            f"{len(poisoned):,} poison of {len(poison_kinds)} kinds)",
        ),
        ("stored (distinct) / duplicate rows", f"{len(set(stored)):,} / {len(stored) - len(set(stored))}"),
        (
            "valid missing / poison in the tables",
            f"{len(valid_ids - set(stored))} / {len(set(stored) - valid_ids)}",
        ),
        (
            "deciding decisions not exactly one",
            str(sum(1 for n in deciding.values() if n != 1) + len(valid_ids - set(deciding))),
        ),
        ("dead-lettered (distinct) / duplicates", f"{len(letters):,} / {len(dead) - len(letters)}"),
        (
            "poison missing from the DLQ / wrong field",
            f"{len(set(poisoned) - set(letters))} / {len(wrong_field)}",
        ),
        ("valid records in the DLQ", str(len(set(letters) - set(poisoned)))),
        (
            "alerts implied / missing / duplicates",
            f"{len(frauds):,} / {len(frauds - set(alerts))} / {sum(n - 1 for n in alerts.values())}",
        ),
        (
            "feature mismatches (scores / checkpointed states)",
            f"{len(comparison.score_mismatches)} / "
            f"{len(comparison.state_mismatches)} "
            f"(of {comparison.states:,} states)",
        ),
        ("unplanned exits (manual restarts needed)", str(len(system.unplanned))),
        (
            "time to zero lag after the last fault",
            f"{lag_zero_after_fault_s:.0f} s (stated bound: "
            f"{LAG_ZERO_WITHIN_S:.0f} s); {lag_zero_at - load_ended:.0f} s after "
            f"the last record was produced",
        ),
        (
            "gateway /predict answers",
            ", ".join(f"{status}: {n}" for status, n in sorted(probe.statuses.items())),
        ),
        ("suite runtime", f"{time.monotonic() - began:.0f} s"),
    ]
    print("\n" + write_report(rows, system.faults.events, REPORT))

    assert sum(system.faults.counts.values()) >= CONSUMER_KILLS + 7
    assert system.faults.counts["consumer kill -9"] >= CONSUMER_KILLS
    assert not system.unplanned, system.unplanned
    assert load.produced.failed == 0
    assert len(stored) == len(set(stored)) == len(valid_ids) and set(stored) == valid_ids
    assert all(n == 1 for n in deciding.values()) and set(deciding) == valid_ids
    assert set(poisoned) <= set(letters) and not wrong_field and not set(letters) - set(poisoned)
    assert {kind for kind in poison_kinds} <= {p.kind for p in POISONS}
    assert frauds <= set(alerts), "every alert the stored decisions imply is on the alerts topic"
    assert not comparison.score_mismatches and not comparison.state_mismatches and comparison.states
    assert lag_zero_after_fault_s <= LAG_ZERO_WITHIN_S
    assert not [status for status in probe.statuses if status.startswith("5") and status != "503"], (
        probe.statuses
    )
