"""Run a real etcd + kube-apiserver on loopback for tests (stdlib only).

The binaries come from ``hack/k8s/build.sh`` (``make k8s-bin``), which puts
them in ``<repo>/.cache/k8s/bin`` or ``$K8S_BIN_DIR``. This is the same setup
controller-runtime's envtest uses: no kubelet, no controller-manager, no
scheduler -- just the API (CRDs, validation, RBAC, watches, server-side apply).

Usage::

    from tests.k8s.apiserver import LocalKubeApiServer   # or however tests import it

    with LocalKubeApiServer() as kube:
        kube.kubeconfig_path   # kubeconfig file (token auth, CA of the self-signed cert)
        kube.url               # "https://127.0.0.1:<port>"
        kube.token             # bearer token of an admin in group system:masters
        kube.kubectl("apply", "--server-side", "-f", "crds/")   # built kubectl, checked

    LocalKubeApiServer(controller_manager=True)  # + kube-controller-manager running the
                                                 # namespace and garbage-collector controllers

Manual use: ``python3 -m tests.k8s.apiserver`` (from the repository) starts one and prints how to
reach it until Ctrl-C.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tests.waiting import ProcessExited, WaitTimedOut, wait_until

__all__ = [
    "BinariesNotFoundError",
    "KubeApiServerError",
    "LocalKubeApiServer",
    "default_bin_dir",
    "find_binaries",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
BINARIES = ("etcd", "kube-apiserver", "kubectl")
KCM = "kube-controller-manager"
# What controller_manager=True runs: namespace deletion and ownerReference GC.
DEFAULT_CONTROLLERS = ("namespace-controller", "garbage-collector-controller")
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"


class KubeApiServerError(RuntimeError):
    """etcd or kube-apiserver could not be started (message includes the log tail)."""


class BinariesNotFoundError(KubeApiServerError, FileNotFoundError):
    """The etcd / kube-apiserver / kubectl binaries have not been built."""


def default_bin_dir() -> Path:
    """``$K8S_BIN_DIR`` if set, else ``<repo>/.cache/k8s/bin``."""
    env = os.environ.get("K8S_BIN_DIR")
    return Path(env) if env else REPO_ROOT / ".cache" / "k8s" / "bin"


def find_binaries(
    bin_dir: str | os.PathLike[str] | None = None, names: Iterable[str] = BINARIES
) -> dict[str, Path]:
    """Return ``{"etcd": path, "kube-apiserver": path, "kubectl": path}`` (or `names`).

    Raises BinariesNotFoundError naming ``make k8s-bin`` if any is missing.
    """
    d = Path(bin_dir) if bin_dir is not None else default_bin_dir()
    found = {name: d / name for name in names}
    missing = [n for n, p in found.items() if not (p.is_file() and os.access(p, os.X_OK))]
    if missing:
        raise BinariesNotFoundError(
            f"missing {', '.join(missing)} in {d}: run `make k8s-bin` "
            f"(= bash hack/k8s/build.sh; ~10 min cold) or set K8S_BIN_DIR"
        )
    return found


# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 40) -> str:
    try:
        data = path.read_bytes()[-64 * 1024 :]
    except OSError:
        return "(no log)"
    text = data.decode("utf-8", "replace").splitlines()[-lines:]
    return "\n".join(text) if text else "(empty log)"


def _body_if_ok(url: str, context: ssl.SSLContext | None = None, timeout_s: float = 2) -> bytes | None:
    """The body `url` answers with 200, or None while it does not answer so (not listening yet, 5xx)."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout_s) as response:
            return response.read() if response.status == 200 else None
    except OSError:
        return None


def _pdeathsig_preexec() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - best effort, Linux only
        pass


def _write_rsa_key(path: Path) -> None:
    """Write a 2048-bit RSA private key (PEM) for service-account token signing."""
    openssl = shutil.which("openssl")
    if openssl:
        proc = subprocess.run(
            [openssl, "genrsa", "-out", str(path), "2048"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if proc.returncode == 0:
            return
    _write_rsa_key_pure_python(path)


def _write_rsa_key_pure_python(path: Path) -> None:
    """Fallback without openssl: PKCS#1 RSA key from stdlib primitives."""

    def is_probable_prime(n: int) -> bool:
        small = (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47)
        if any(n % p == 0 for p in small):
            return False
        d, r = n - 1, 0
        while d % 2 == 0:
            d //= 2
            r += 1
        for _ in range(40):
            x = pow(secrets.randbelow(n - 3) + 2, d, n)
            if x in (1, n - 1):
                continue
            for _ in range(r - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                return False
        return True

    def prime(bits: int) -> int:
        while True:
            c = secrets.randbits(bits) | (3 << (bits - 2)) | 1
            if (c - 1) % 65537 and is_probable_prime(c):
                return c

    e = 65537
    while True:
        p, q = prime(1024), prime(1024)
        if p != q and (p * q).bit_length() == 2048:
            break
    n, phi = p * q, (p - 1) * (q - 1)
    d = pow(e, -1, phi)

    def der_len(n_: int) -> bytes:
        if n_ < 0x80:
            return bytes([n_])
        b = n_.to_bytes((n_.bit_length() + 7) // 8, "big")
        return bytes([0x80 | len(b)]) + b

    def der_int(v: int) -> bytes:
        b = v.to_bytes(v.bit_length() // 8 + 1, "big")  # leading 0 keeps it positive
        return b"\x02" + der_len(len(b)) + b

    body = b"".join(der_int(v) for v in (0, n, e, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p)))
    der = b"\x30" + der_len(len(body)) + body
    b64 = base64.encodebytes(der).decode().replace("\n", "")
    pem_lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    path.write_text(
        "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(pem_lines) + "\n-----END RSA PRIVATE KEY-----\n"
    )


# --------------------------------------------------------------------------- server

_LIVE: weakref.WeakSet[LocalKubeApiServer] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()


class LocalKubeApiServer:
    """etcd + kube-apiserver on 127.0.0.1 with a static admin token (system:masters).

    Attributes (valid after start()):
        url              "https://127.0.0.1:<port>"
        port             kube-apiserver secure port
        token            admin bearer token (user "admin", groups system:masters)
        kubeconfig_path  Path of a kubeconfig (server url, CA data, token; context "fraudops-local")
        ca_path          Path of the CA bundle that verifies the serving cert (apiserver.crt)
        etcd_url         "http://127.0.0.1:<port>"
        run_dir          temp dir holding etcd data, certs, kubeconfig and logs
        apiserver_log_path, etcd_log_path
        startup_seconds  wall time start() took (etcd + apiserver ready)
        binaries         {"etcd": Path, "kube-apiserver": Path, "kubectl": Path[, "kube-controller-manager": Path]}
        controller_manager_log_path  (only with controller_manager)
    """

    def __init__(
        self,
        *,
        bin_dir: str | os.PathLike[str] | None = None,
        start_timeout: float = 90.0,
        authorization_mode: str = "RBAC",
        apiserver_args: Mapping[str, str] | Iterable[str] = (),
        etcd_args: Mapping[str, str] | Iterable[str] = (),
        run_dir_parent: str | os.PathLike[str] | None = None,
        keep_run_dir: bool = False,
        kill_on_parent_death: bool = True,
        controller_manager: bool | Sequence[str] = False,
        controller_manager_args: Mapping[str, str] | Iterable[str] = (),
    ) -> None:
        """Configure (does not start; use start() or ``with``).

        apiserver_args / etcd_args: extra flags, either a mapping
        ``{"feature-gates": "X=true"}`` (overrides defaults of the same name) or
        a list of raw ``--flag=value`` strings (appended).
        keep_run_dir: leave logs/data behind after stop() (for debugging).
        kill_on_parent_death: set PR_SET_PDEATHSIG so the servers die with the
            Python process even if it is SIGKILLed. Note: Linux delivers it when
            the *thread* that called start() exits, so pass False if you start
            the server from a short-lived thread.
        controller_manager: also run kube-controller-manager (must have been
            built: it is by default) with the namespace and garbage-collector
            controllers (True) or the given controller names, so namespaces
            really go away and ownerReferences cascade. Still no pods ever run.
        """
        if controller_manager is True:
            self._controllers: tuple[str, ...] = DEFAULT_CONTROLLERS
        elif controller_manager is False:
            self._controllers = ()
        else:
            self._controllers = tuple(controller_manager)
        self.binaries = find_binaries(bin_dir, BINARIES + ((KCM,) if self._controllers else ()))
        self._kcm_extra = controller_manager_args
        self.start_timeout = float(start_timeout)
        self.authorization_mode = authorization_mode
        self._apiserver_extra = apiserver_args
        self._etcd_extra = etcd_args
        self._run_dir_parent = run_dir_parent
        self.keep_run_dir = keep_run_dir
        self._kill_on_parent_death = kill_on_parent_death

        self.token = secrets.token_urlsafe(32)
        self.url = ""
        self.port = 0
        self.etcd_url = ""
        self.run_dir: Path | None = None
        self.kubeconfig_path: Path | None = None
        self.ca_path: Path | None = None
        self.apiserver_log_path: Path | None = None
        self.etcd_log_path: Path | None = None
        self.controller_manager_log_path: Path | None = None
        self.startup_seconds: float | None = None
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._kcm: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ public

    def __enter__(self) -> LocalKubeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._apiserver is not None and self._apiserver.poll() is None

    def start(self) -> LocalKubeApiServer:
        """Start etcd and kube-apiserver; return once /readyz is ok and the
        default namespace exists. Raises KubeApiServerError (with log tail)."""
        if self._apiserver is not None:
            raise KubeApiServerError("already started")
        t0 = time.monotonic()
        self.run_dir = Path(tempfile.mkdtemp(prefix="fraudops-kube-", dir=self._run_dir_parent))
        _LIVE.add(self)
        try:
            self._prepare_files()
            # Free ports are picked then released, so another process may grab
            # one before the server binds it: retry on an early exit.
            for attempt in range(3):
                try:
                    self._start_etcd()
                    break
                except _EarlyExit:
                    self._kill(self._etcd)
                    self._etcd = None
                    if attempt == 2:
                        raise KubeApiServerError(
                            self._log_error("etcd exited during start-up", self.etcd_log_path)
                        ) from None
            for attempt in range(3):
                try:
                    self._start_apiserver(t0)
                    break
                except _EarlyExit:
                    self._kill(self._apiserver)
                    self._apiserver = None
                    if attempt == 2:
                        raise KubeApiServerError(
                            self._log_error("kube-apiserver exited during start-up", self.apiserver_log_path)
                        ) from None
            self._write_kubeconfig()
            if self._controllers:
                self._start_controller_manager(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop kube-controller-manager, kube-apiserver then etcd (SIGTERM to their
        process groups, SIGKILL after 10 s), and remove the run dir unless
        keep_run_dir. Idempotent."""
        self._kill(self._kcm)
        self._kcm = None
        self._kill(self._apiserver)
        self._apiserver = None
        self._kill(self._etcd)
        self._etcd = None
        _LIVE.discard(self)
        if self.run_dir is not None and not self.keep_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A copy of os.environ (or `base`) with KUBECONFIG pointing at this server."""
        e = dict(os.environ if base is None else base)
        e["KUBECONFIG"] = str(self.kubeconfig_path)
        return e

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this server; stdout/stderr captured as text.
        With check=True a non-zero exit raises KubeApiServerError with the output."""
        cmd = [str(self.binaries["kubectl"]), f"--kubeconfig={self.kubeconfig_path}", *args]
        proc = subprocess.run(cmd, input=input, text=True, capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubeApiServerError(
                f"kubectl {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr}{proc.stdout}"
            )
        return proc

    def request(self, path: str, method: str = "GET", body: object | None = None) -> tuple[int, bytes]:
        """Tiny authenticated HTTPS call (verifies the serving cert); returns (status, body)."""
        return self._request(path, method=method, body=body, ctx=self._ssl_context(verify=True))

    # ------------------------------------------------------------------ internals

    def _prepare_files(self) -> None:
        rd = self.run_dir
        assert rd is not None
        (rd / "certs").mkdir()
        (rd / "etcd-data").mkdir(mode=0o700)
        _write_rsa_key(rd / "sa.key")
        # token,user,uid,"group1,group2"
        (rd / "tokens.csv").write_text(f'{self.token},admin,admin-uid,"system:masters"\n')
        self.etcd_log_path = rd / "etcd.log"
        self.apiserver_log_path = rd / "kube-apiserver.log"
        self.kubeconfig_path = rd / "kubeconfig"
        self.ca_path = rd / "certs" / "apiserver.crt"

    def _popen(self, cmd: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        # The child gets its own copy of the descriptor; ours is closed right away.
        with open(log_path, "ab") as log:
            log.write(("$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(self.run_dir),
                start_new_session=True,  # own process group, so stop() can kill everything
                preexec_fn=_pdeathsig_preexec
                if self._kill_on_parent_death and sys.platform == "linux"
                else None,
            )

    @staticmethod
    def _args(defaults: dict[str, str], extra: Mapping[str, str] | Iterable[str]) -> list[str]:
        raw: list[str] = []
        if isinstance(extra, Mapping):
            defaults = {**defaults, **{k.lstrip("-"): v for k, v in extra.items()}}
        else:
            raw = list(extra)
        return [f"--{k}={v}" for k, v in defaults.items()] + raw

    def _start_etcd(self) -> None:
        assert self.run_dir is not None and self.etcd_log_path is not None
        client, peer = _free_port(), _free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        args = self._args(
            {
                "name": "fraudops",
                "data-dir": str(self.run_dir / "etcd-data"),
                "listen-client-urls": self.etcd_url,
                "advertise-client-urls": self.etcd_url,
                "listen-peer-urls": peer_url,
                "initial-advertise-peer-urls": peer_url,
                "initial-cluster": f"fraudops={peer_url}",
                "unsafe-no-fsync": "true",  # test data only; much faster on slow disks
                "log-level": "warn",
            },
            self._etcd_extra,
        )
        self._etcd = self._popen([str(self.binaries["etcd"]), *args], self.etcd_log_path)
        try:
            wait_until(
                self._etcd_healthy,
                self.start_timeout,
                "etcd to be healthy",
                interval_s=0.1,
                alive=[self._etcd],
            )
        except ProcessExited:
            raise _EarlyExit() from None
        except WaitTimedOut as timed_out:
            raise KubeApiServerError(self._log_error(str(timed_out), self.etcd_log_path)) from None

    def _etcd_healthy(self) -> bool:
        body = _body_if_ok(self.etcd_url + "/health")
        try:
            return body is not None and json.loads(body).get("health") == "true"
        except ValueError:
            return False

    def _start_apiserver(self, t0: float) -> None:
        rd = self.run_dir
        assert rd is not None and self.apiserver_log_path is not None
        self.port = _free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        sa_key = str(rd / "sa.key")
        args = self._args(
            {
                "etcd-servers": self.etcd_url,
                "bind-address": "127.0.0.1",
                "advertise-address": "127.0.0.1",
                "secure-port": str(self.port),
                "cert-dir": str(rd / "certs"),  # self-signed serving cert generated here
                "token-auth-file": str(rd / "tokens.csv"),
                "authorization-mode": self.authorization_mode,
                "service-cluster-ip-range": SERVICE_CLUSTER_IP_RANGE,
                "service-account-issuer": self.url,
                "service-account-key-file": sa_key,
                "service-account-signing-key-file": sa_key,
                # No controller-manager runs, so nothing would create SA tokens.
                "disable-admission-plugins": "ServiceAccount",
                "allow-privileged": "true",
            },
            self._apiserver_extra,
        )
        self._apiserver = self._popen([str(self.binaries["kube-apiserver"]), *args], self.apiserver_log_path)
        ctx = self._ssl_context(verify=False)
        last_check = ""
        ready = False

        def ready_with_default_namespace() -> bool:
            nonlocal last_check, ready
            try:
                if not ready:
                    status, body = self._request("/readyz", ctx=ctx, timeout=5)
                    ready = status == 200 and body.strip() == b"ok"
                    last_check = f"/readyz -> {status} {body[:2000].decode('utf-8', 'replace')}"
                if ready:
                    # the bootstrap controller creates it right after readiness
                    status, body = self._request("/api/v1/namespaces/default", ctx=ctx, timeout=5)
                    if status == 200:
                        return True
                    last_check = f"/api/v1/namespaces/default -> {status}"
            except OSError as e:
                last_check = f"{type(e).__name__}: {e}"
            return False

        try:
            wait_until(
                ready_with_default_namespace,
                t0 + self.start_timeout - time.monotonic(),
                lambda: f"kube-apiserver to be ready (last check: {last_check})",
                interval_s=0.2,
                alive=[self._apiserver],
            )
        except ProcessExited as exited:
            if "address already in use" in _tail(self.apiserver_log_path, 80):
                raise _EarlyExit() from None
            raise KubeApiServerError(
                self._log_error(
                    f"kube-apiserver exited with code {exited.returncode} during start-up",
                    self.apiserver_log_path,
                )
            ) from None
        except WaitTimedOut as timed_out:
            raise KubeApiServerError(self._log_error(str(timed_out), self.apiserver_log_path)) from None

    def _start_controller_manager(self, t0: float) -> None:
        rd = self.run_dir
        assert rd is not None
        self.controller_manager_log_path = rd / "kube-controller-manager.log"
        ctx = self._ssl_context(verify=False)
        for attempt in range(3):
            port = _free_port()
            args = self._args(
                {
                    "kubeconfig": str(self.kubeconfig_path),
                    "controllers": ",".join(self._controllers),
                    "leader-elect": "false",
                    "bind-address": "127.0.0.1",
                    "secure-port": str(port),  # only for /healthz
                    "cert-dir": str(rd / "kcm-certs"),
                },
                self._kcm_extra,
            )
            self._kcm = self._popen([str(self.binaries[KCM]), *args], self.controller_manager_log_path)

            def healthy(healthz: str = f"https://127.0.0.1:{port}/healthz") -> bool:
                return _body_if_ok(healthz, ctx, timeout_s=5) is not None

            try:
                wait_until(
                    healthy,
                    t0 + self.start_timeout - time.monotonic(),
                    "kube-controller-manager to be healthy",
                    interval_s=0.2,
                    alive=[self._kcm],
                )
                return
            except WaitTimedOut as timed_out:
                raise KubeApiServerError(
                    self._log_error(str(timed_out), self.controller_manager_log_path)
                ) from None
            except ProcessExited as exited:
                port_taken = "address already in use" in _tail(self.controller_manager_log_path, 80)
                if not port_taken or attempt == 2:
                    raise KubeApiServerError(
                        self._log_error(
                            f"kube-controller-manager exited with code {exited.returncode} during start-up",
                            self.controller_manager_log_path,
                        )
                    ) from None
            self._kill(self._kcm)
            self._kcm = None

    def _ssl_context(self, verify: bool) -> ssl.SSLContext:
        if not verify:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return ssl.create_default_context(cafile=str(self.ca_path))

    def _request(
        self,
        path: str,
        *,
        ctx: ssl.SSLContext,
        method: str = "GET",
        body: object | None = None,
        timeout: float = 30,
    ) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def _write_kubeconfig(self) -> None:
        assert self.kubeconfig_path is not None and self.ca_path is not None
        ca_data = base64.b64encode(self.ca_path.read_bytes()).decode()
        # JSON is valid YAML, so kubectl and the Python kubernetes client read it.
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "fraudops-local",
                    "cluster": {"server": self.url, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "fraudops-local",
                    "context": {"cluster": "fraudops-local", "user": "admin", "namespace": "default"},
                }
            ],
            "current-context": "fraudops-local",
            "preferences": {},
        }
        self.kubeconfig_path.write_text(json.dumps(cfg, indent=2) + "\n")
        os.chmod(self.kubeconfig_path, 0o600)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # anything left in the group
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def _log_error(self, what: str, log_path: Path | None) -> str:
        tail = _tail(log_path) if log_path else "(no log)"
        return f"{what}; log {log_path} (last lines):\n{tail}"


class _EarlyExit(Exception):
    """Process died while starting (e.g. a port taken by someone else): retry."""


def _main(argv: Sequence[str]) -> int:
    with LocalKubeApiServer() as kube:
        print(f"kube-apiserver {kube.url} ready in {kube.startup_seconds:.1f}s")
        print(f"export KUBECONFIG={kube.kubeconfig_path}")
        print(f"kubectl: {kube.binaries['kubectl']}   logs: {kube.run_dir}")
        print("Ctrl-C to stop")
        try:
            if kube._apiserver is not None:
                kube._apiserver.wait()  # until the API server ends or Ctrl-C
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
