"""A private PostgreSQL cluster under the run folder, listening on a loopback port.

Installed from Debian packages when missing. PostgreSQL refuses to run as root, so when we
are root the server runs as the `postgres` system user the package creates. Authentication is
`trust` on loopback only: this cluster is a local development and test fixture; clusters get
their DB_URL (with credentials) from a Kubernetes Secret.

The cluster's files live in the run folder (`<run>/postgres`) when the server's user can reach
it. A checkout in a private folder — root's home (mode 700), any `mktemp -d` — is out of the
`postgres` user's reach, so there the files go to a folder of that user's own
(`~postgres/fraudops/<id>`) and `<run>/postgres` is a symbolic link to it: status, logs and
`infra down --delete-data` find them through the link.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fraudops.config import Settings
from fraudops.errors import InfraError
from fraudops_infra.processes import apt_install, ensure_port_free, port_is_open, run_checked, wait_until

DB_USER = "fraudops"
DB_NAME = "fraudops"

# Tuned for a 2-core, 24 GiB developer machine; durability settings stay at their safe defaults
# (fsync, synchronous_commit) because the pipeline's "nothing lost" promise rests on them.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "512MB",
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "wal_compression": "on",
    "effective_io_concurrency": "50",
    "log_min_duration_statement": "2000",
    "log_line_prefix": "'%m [%p] %u@%d '",
}


@dataclass(frozen=True)
class PostgresPaths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (Debian layout), if any."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def ensure_installed() -> Path:
    """Return the server bin folder, installing Debian's `postgresql` package if it is missing."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        apt_install(["postgresql", "postgresql-contrib"], "PostgreSQL")
        bin_dir = find_bin_dir()
    if bin_dir is None:
        raise InfraError(
            "PostgreSQL is not installed and `apt-get install postgresql` did not provide initdb"
        )
    return bin_dir


def _server_user() -> str | None:
    """The user the server must run as: `postgres` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise InfraError(
            "running as root but there is no `postgres` user; reinstall the postgresql package"
        ) from exc
    return "postgres"


def _as_server_user(argv: list[str]) -> list[str]:
    user = _server_user()
    return ["runuser", "-u", user, "--", *argv] if user else argv


def _chown_to_server_user(path: Path) -> None:
    user = _server_user()
    if user:
        shutil.chown(path, user=user, group=user)


def _server_user_reaches(folder: Path) -> bool:
    """Whether the server's user can open `folder` (every folder above it must let that user through)."""
    user = _server_user()
    if user is None:
        return True
    return (
        subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(folder)], check=False).returncode == 0
    )


def _server_owned_root(run_dir: Path) -> Path:
    """A folder of the server user's own for the cluster of this run folder (one per run folder)."""
    user = _server_user()
    assert user is not None, "only needed when the server runs as another user"
    run_id = hashlib.sha256(str(run_dir).encode()).hexdigest()[:16]
    return Path(pwd.getpwnam(user).pw_dir) / "fraudops" / run_id


def cluster_root(run_dir: Path) -> Path:
    """Where the cluster's files are: `<run>/postgres`, or where that link points."""
    link = run_dir.resolve() / "postgres"
    return link.resolve() if link.is_symlink() else link


class LocalPostgres:
    """The lifecycle of the private cluster: install, init, start, create the database, stop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.postgres_port
        self.run_dir = settings.run_dir.resolve()
        self.paths = PostgresPaths(cluster_root(self.run_dir))

    @property
    def url(self) -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    def is_running(self) -> bool:
        bin_dir = find_bin_dir()
        if bin_dir is None or not (self.paths.data / "PG_VERSION").exists():
            return False
        result = subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "status", "-D", str(self.paths.data)]),
            capture_output=True,
            text=True,
            check=False,
        )
        return result.returncode == 0

    def up(self) -> str:
        """Make sure the cluster runs and the database exists; returns what was done."""
        bin_dir = ensure_installed()
        if self.is_running():
            return "already running"
        ensure_port_free(self.port, "POSTGRES_PORT")
        self._init_cluster(bin_dir)
        run_checked(
            _as_server_user(
                [
                    str(bin_dir / "pg_ctl"),
                    "start",
                    "-D",
                    str(self.paths.data),
                    "-l",
                    str(self.paths.log),
                    "-o",
                    f"-p {self.port} -k {self.paths.socket_dir}",
                    "-w",
                    "-t",
                    "60",
                ]
            ),
            "starting PostgreSQL",
        )
        wait_until(lambda: port_is_open(self.port), 30, "PostgreSQL", self.paths.log)
        self._create_database(bin_dir)
        return "started"

    def down(self) -> str:
        bin_dir = find_bin_dir()
        if bin_dir is None or not self.is_running():
            return "not running"
        run_checked(
            _as_server_user(
                [str(bin_dir / "pg_ctl"), "stop", "-D", str(self.paths.data), "-m", "fast", "-w", "-t", "60"]
            ),
            "stopping PostgreSQL",
        )
        return "stopped"

    def delete_data(self) -> str:
        """Stop the cluster and delete its files (also where `<run>/postgres` points); returns what was done."""
        self.down()
        link = self.run_dir / "postgres"
        if not link.is_symlink() and not link.exists():
            return "no data"
        if link.is_symlink():
            shutil.rmtree(self.paths.root, ignore_errors=True)
            link.unlink()
        else:
            shutil.rmtree(link)
        return f"deleted {self.paths.root}"

    def _place_cluster(self) -> None:
        """Keep the files in the run folder if the server's user can reach it, else in a folder of its own."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        link = self.run_dir / "postgres"
        if link.is_symlink() or _server_user_reaches(self.run_dir):
            return
        root = _server_owned_root(self.run_dir)
        root.mkdir(parents=True, exist_ok=True)
        for folder in (root.parent, root):
            _chown_to_server_user(folder)
        (root / "run-folder").write_text(f"{self.run_dir}\n")  # whose cluster this is, for a human
        if link.exists():  # left by an attempt the server could not use (no cluster in it: checked above)
            shutil.rmtree(link)
        link.symlink_to(root, target_is_directory=True)
        self.paths = PostgresPaths(root)

    def _init_cluster(self, bin_dir: Path) -> None:
        if (self.paths.data / "PG_VERSION").exists():
            return
        self._place_cluster()
        for folder in (self.paths.root, self.paths.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            _chown_to_server_user(folder)
        run_checked(
            _as_server_user(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.paths.data),
                    "-U",
                    DB_USER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ]
            ),
            "initialising the PostgreSQL cluster",
        )
        conf = self.paths.data / "postgresql.conf"
        extra = "\n".join(f"{key} = {value}" for key, value in SERVER_SETTINGS.items())
        with open(conf, "a") as handle:
            handle.write(f"\n# fraudops local settings\n{extra}\n")

    def _create_database(self, bin_dir: Path) -> None:
        psql = [
            str(bin_dir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            DB_USER,
            "-d",
            "postgres",
            "-tAc",
        ]
        exists = run_checked(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"], "checking the database"
        )
        if exists.stdout.strip() != "1":
            run_checked([*psql, f"CREATE DATABASE {DB_NAME}"], "creating the database")
