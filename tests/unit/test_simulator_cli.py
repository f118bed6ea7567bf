"""`fraudops simulate` end to end in-process, and the Kafka record encoding.

The CLI runs through the real `run_app` error handling with only the simulate verb registered
(importing every verb of the full CLI costs seconds that this suite does not need to spend).
"""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer

from fraudops.schema import TRANSACTION_FIELDS, Transaction
from fraudops_cli import simulate as simulate_verb
from fraudops_cli.errors import run_app
from fraudops_simulator import SimulationConfig, simulate
from fraudops_simulator.kafka import KafkaUnavailableError, RateLimit, check_broker, encode_records

PAST = ["--start", "2026-03-01", "--days", "20"]


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.callback()(lambda: None)
    app.command("simulate")(simulate_verb.simulate)
    monkeypatch.setattr(sys, "argv", ["fraudops", "simulate", *args])
    with pytest.raises(SystemExit) as exit_info:
        run_app(app)
    return int(exit_info.value.code or 0), capsys.readouterr().err


def assert_one_line_error(code: int, stderr: str, *expected: str) -> None:
    assert code != 0
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    for text in expected:
        assert text in lines[0]


def test_simulate_writes_the_file_and_summarises_it(monkeypatch, capsys, tmp_path: Path) -> None:
    output = tmp_path / "history.parquet"
    code, stderr = run_cli(
        monkeypatch,
        capsys,
        "-n",
        "4000",
        "--fraud-rate",
        "0.02",
        "--difficulty",
        "easy",
        "-o",
        str(output),
        *PAST,
    )
    assert code == 0
    assert pq.read_metadata(output).num_rows == 4000
    for text in ("transactions", "4,000", "frauds", "80 (2.00%)", "transactions/s", "seconds"):
        assert text in stderr


def test_patterns_option_limits_fraud_to_the_named_patterns(monkeypatch, capsys, tmp_path: Path) -> None:
    output = tmp_path / "two.parquet"
    code, _ = run_cli(
        monkeypatch,
        capsys,
        "-n",
        "4000",
        "--patterns",
        "card_testing,app_scam",
        "--difficulty",
        "easy",
        "-o",
        str(output),
        *PAST,
    )
    assert code == 0
    patterns = set(pq.read_table(output, columns=["fraud_pattern"]).column(0).drop_null().to_pylist())
    assert patterns == {"card_testing", "app_scam"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--fraud-rate", "2", "-o", "x.parquet"), "--fraud-rate"),
        (("-o", "foo.xlsx"), ".parquet or .csv"),
        (("--patterns", "card_testing,teleportation", "-o", "x.parquet"), "teleportation"),
        (("-n", "10"), "--output"),
        (("-o", "x.parquet", "--rate", "100"), "--kafka"),
        (("-o", "x.parquet", "--start", "2099-01-01"), "--start"),
    ],
)
def test_bad_option_values_end_in_one_line_that_says_what_to_do(monkeypatch, capsys, args, expected) -> None:
    code, stderr = run_cli(monkeypatch, capsys, *args)
    assert_one_line_error(code, stderr, expected)


def test_unreachable_broker_ends_in_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    simulate_verb.get_settings.cache_clear()
    try:
        code, stderr = run_cli(monkeypatch, capsys, "--kafka", "-n", "10")
    finally:
        simulate_verb.get_settings.cache_clear()
    assert_one_line_error(code, stderr, "cannot reach Kafka at 127.0.0.1:9", "fraudops infra up")


def test_check_broker_names_the_servers_it_could_not_reach() -> None:
    with pytest.raises(KafkaUnavailableError, match=r"127\.0\.0\.1:9"):
        check_broker({"bootstrap.servers": "127.0.0.1:9"}, "transactions", timeout_s=1.0)


def test_kafka_records_are_transactions_without_labels() -> None:
    config = SimulationConfig(transactions=3_000, fraud_rate=0.05, seed=2, start=date(2026, 3, 1), days=10)
    table = pa.concat_tables(list(simulate(config)))
    records = [orjson.loads(value) for value in encode_records(table)]
    assert len(records) == table.num_rows
    assert all(tuple(record) == TRANSACTION_FIELDS for record in records)
    frauds = [i for i, flag in enumerate(table.column("is_fraud").to_pylist()) if flag][:50]
    for i in [*frauds, *range(0, table.num_rows, 97)]:
        transaction = Transaction.model_validate(records[i])
        assert transaction.transaction_id == table.column("transaction_id")[i].as_py()
        assert transaction.event_time == table.column("event_time")[i].as_py()


def test_rate_limit_releases_batches_on_schedule() -> None:
    limit = RateLimit(rate=2_000)
    for sent in range(limit.batch, 401, limit.batch):
        limit.wait_for(sent)
    elapsed = time.perf_counter() - limit.started
    assert 0.19 <= elapsed < 0.35  # 400 messages at 2,000/s
