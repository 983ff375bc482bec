"""PostgreSQL and RabbitMQ servers a test run starts for itself, so that the fault drills can stop
and restart a server without breaking anyone else's connections to the machine's shared ones.

Each lives in a temporary directory ``einvoice-test-{pg,rabbitmq}-<pytest pid>-*`` with a free port
of its own (RabbitMQ also with its own node name, distribution port and Erlang cookie; epmd is the
machine's). As root they run as the ``postgres`` / ``rabbitmq`` OS user, as PostgreSQL refuses
to run as root. ``stop_and_remove`` always ends the server, by force if it must, and removes the
directory; directories left by a run that was killed outright are cleaned up by the next run.
When the programs are missing, the tests that need them fail under ``CI=true`` and skip elsewhere.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import random
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika
import pika.exceptions
import psycopg
from sqlalchemy.engine import make_url

from tests.conftest import unavailable

PG_PREFIX = "einvoice-test-pg-"
RABBITMQ_PREFIX = "einvoice-test-rabbitmq-"


# --- common ----------------------------------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on, below the kernel's ephemeral range (32768-) so that no client
    connection takes it meanwhile, and low enough that RabbitMQ's command-line tools, which use the
    distribution port + 10000 to + 10010, stay within 65535."""
    for _ in range(200):
        port = random.randint(20000, 30000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 30000")


def _service_user(name: str, *, required: bool) -> str | None:
    """The OS user to run a server as: ``name`` when running as root, else the current user (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        if required:
            unavailable(f"running as root and there is no {name!r} OS user to run the private server as")
        return None
    if shutil.which("runuser") is None:
        unavailable("running as root and runuser is missing (needed to run the private server as a service user)")
    return name


def _as_user(user: str | None, command: list[str], **env: str) -> list[str]:
    """``command`` run as ``user`` (with ``env`` set; runuser resets HOME) or as ourselves."""
    assignments = [f"{k}={v}" for k, v in env.items()]
    if user is None:
        return ["env", *assignments, *command] if assignments else command
    return ["runuser", "-u", user, "--", "env", *assignments, *command]


def _make_directory(prefix: str, user: str | None) -> Path:
    directory = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    return directory


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended (a zombie waiting for its parent has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _started_from(pid: int, directory: Path) -> bool:
    """Whether process ``pid`` names ``directory`` in its command line or environment: a server (or
    one of its helpers) started there, not an unrelated process that reuses the number. epmd,
    which a node starts when none runs, is the machine's to share and never counts."""
    needle = str(directory).encode()
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/comm").read_text().strip() == "epmd":
            return False
    for part in ("cmdline", "environ"):
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{pid}/{part}").read_bytes():
                return True
    return False


def _kill_leftovers(directory: Path, *pids: int | None, timeout: float = 10) -> None:
    """SIGKILL every process still running from ``directory``: those given (a server's recorded
    pid) and any other found in /proc (a node whose pid file was never written)."""
    candidates = {pid for pid in pids if pid is not None}
    candidates |= {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()}
    doomed = [pid for pid in candidates if pid != os.getpid() and _alive(pid) and _started_from(pid, directory)]
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in doomed) and time.monotonic() < deadline:
        time.sleep(0.05)


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(path.read_text().split()[0])
    return None


def remove_stale_directories() -> list[Path]:
    """Stop the servers and remove the directories of test runs that no longer exist (a run killed
    before its finalizers ran); return the directories removed. Other runs' servers are left alone."""
    removed = []
    for prefix in (PG_PREFIX, RABBITMQ_PREFIX):
        for entry in glob.glob(os.path.join(tempfile.gettempdir(), prefix + "*")):
            directory = Path(entry)
            match = re.match(re.escape(prefix) + r"(\d+)-", directory.name)
            if match is None or _alive(int(match.group(1))):
                continue
            _kill_leftovers(directory, _read_pid(directory / "data" / "postmaster.pid"))
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed


def _log_tail(path: Path, chars: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return "(no log)"


# --- PostgreSQL ------------------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, else Debian's /usr/lib/postgresql/<newest>/bin."""
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("pg_ctl") is not None:
        return Path(initdb).parent
    versions = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if (Path(p) / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return versions[-1] if versions else None


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory, trust authentication for ``postgres`` on
    127.0.0.1:<port>. ``url`` is its ``postgres`` database."""

    def __init__(self, bindir: Path, user: str | None):
        self.bindir = bindir
        self.user = user
        self.port = free_port()
        self.directory = _make_directory(PG_PREFIX, user)
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = _as_user(self.user, [str(self.bindir / args[0]), *args[1:]])
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({result.returncode}): {result.stdout}{result.stderr}\n"
                f"server log: {_log_tail(self.log)}"
            )

    def init(self) -> None:
        # fsync is not needed: nothing here outlives the run, and every restart is a clean one.
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"
        )

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        return _read_pid(self.data / "postmaster.pid")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        # -l always: without it the server would keep pg_ctl's output pipe open.
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", mode, "stop")

    def restart(self) -> None:
        """Stop (fast: open connections are cut, open transactions roll back) and start again."""
        before = self.pid
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-m", "fast", "restart")
        assert self.pid not in (None, before), "the private PostgreSQL did not restart"

    def ensure_running(self) -> None:
        pid = self.pid
        if pid is None or not _alive(pid):
            self.start()

    def stop_and_remove(self) -> None:
        pid = self.pid
        if pid is not None and _alive(pid):
            with contextlib.suppress(Exception):
                self.stop(mode="immediate")
        _kill_leftovers(self.directory, pid)
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private PostgreSQL, stopped and removed afterwards whatever happens."""
    bindir = postgres_bindir()
    if bindir is None:
        unavailable("PostgreSQL's initdb and pg_ctl were not found (PATH, /usr/lib/postgresql/*/bin)")
    remove_stale_directories()
    server = PrivatePostgres(bindir, _service_user("postgres", required=True))
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop_and_remove()


# --- RabbitMQ --------------------------------------------------------------------------------------


def rabbitmq_scripts() -> Path | None:
    """Where rabbitmq-server and rabbitmqctl are. Debian's /usr/sbin ones are wrappers that switch to
    the rabbitmq user with its home (and the shared node's Erlang cookie): the real scripts first."""
    debian = Path("/usr/lib/rabbitmq/bin")
    if (debian / "rabbitmq-server").exists() and (debian / "rabbitmqctl").exists():
        return debian
    server = shutil.which("rabbitmq-server")
    if server is not None and shutil.which("rabbitmqctl") is not None:
        return Path(server).parent
    return None


class PrivateRabbitMQ:
    """A RabbitMQ node ``einvoice-test-<pid>-<n>@localhost`` with its own AMQP and distribution ports,
    database, logs, configuration (none of the machine's: no plugins) and Erlang cookie. ``url``
    is its default virtual host, as guest."""

    def __init__(self, scripts: Path, user: str | None):
        self.scripts = scripts
        self.user = user
        self.directory = _make_directory(RABBITMQ_PREFIX, user)
        self.node = f"einvoice-test-{os.getpid()}-{self.directory.name.rsplit('-', 1)[-1].lower()}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        while self.dist_port == self.port:
            self.dist_port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self.pid_file = self.directory / "rabbitmq.pid"
        self.log = self.directory / "log" / f"{self.node}.log"
        (self.directory / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{self.port}\n")
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq-env.conf").write_text("")  # not the machine's /etc/rabbitmq one
        cookie = self.directory / ".erlang.cookie"
        cookie.write_text("".join(secrets.choice(string.ascii_uppercase) for _ in range(20)))
        cookie.chmod(0o400)
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in self.directory.iterdir():
                os.chown(path, entry.pw_uid, entry.pw_gid)
        d = self.directory
        self.env = {
            "HOME": str(d),  # the Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
        }

    @property
    def ctl_command(self) -> list[str]:
        """``rabbitmqctl`` aimed at this node (with its cookie: it cannot reach any other)."""
        return _as_user(self.user, [str(self.scripts / "rabbitmqctl"), "-n", self.node], **self.env)

    def ctl(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [*self.ctl_command, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=self.directory
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result.stdout

    @property
    def pid(self) -> int | None:
        return _read_pid(self.pid_file)

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def start(self, timeout: float = 120) -> None:
        """Start the node and wait until it has booted and accepts AMQP connections."""
        command = _as_user(self.user, [str(self.scripts / "rabbitmq-server"), "-detached"], **self.env)
        subprocess.run(
            command, cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=True
        )
        deadline = time.monotonic() + timeout
        while not self._listening():  # the listener opens at the end of the boot
            if time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ node {self.node} did not start in {timeout} s: {_log_tail(self.log)}")
            time.sleep(0.1)
        self.ctl("await_startup", "--timeout", str(int(timeout)))

    def stop(self) -> None:
        """Stop the whole node (not only the application) and wait until its process has gone."""
        pid = self.pid
        self.ctl("stop", str(self.pid_file))
        deadline = time.monotonic() + 60
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    def ensure_running(self) -> None:
        if not self._listening():
            self.start()

    def stop_and_remove(self) -> None:
        pid = self.pid
        if pid is not None and _alive(pid):
            with contextlib.suppress(Exception):
                self.ctl("stop", str(self.pid_file), timeout=60)
        _kill_leftovers(self.directory, pid)
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def private_rabbitmq() -> Iterator[PrivateRabbitMQ]:
    """A running private RabbitMQ node, stopped and removed afterwards whatever happens."""
    scripts = rabbitmq_scripts()
    if scripts is None:
        unavailable("rabbitmq-server and rabbitmqctl were not found (PATH, /usr/lib/rabbitmq/bin)")
    remove_stale_directories()
    server = PrivateRabbitMQ(scripts, _service_user("rabbitmq", required=False))
    try:
        server.start()
        yield server
    finally:
        server.stop_and_remove()


# --- watching a server's connections ---------------------------------------------------------------


class ConnectionWatch:
    """A connection held open to a PostgreSQL server and one to a RabbitMQ server, as anyone else
    using them holds theirs; ``dropped()`` names the servers that cut it since (a stop or restart
    does). Either URL may be None: nothing is watched there."""

    def __init__(self, postgres_url: str | None, rabbitmq_url: str | None):
        self.postgres_url = postgres_url
        self.rabbitmq_url = rabbitmq_url
        self._postgres: psycopg.Connection[tuple[object, ...]] | None = None
        self._rabbitmq: pika.BlockingConnection | None = None
        if postgres_url is not None:
            plain = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
            self._postgres = psycopg.connect(plain, autocommit=True)
        if rabbitmq_url is not None:
            parameters = pika.URLParameters(rabbitmq_url)
            parameters.heartbeat = 0  # held idle for minutes: no heartbeats to miss
            self._rabbitmq = pika.BlockingConnection(parameters)

    def dropped(self) -> list[str]:
        lost = []
        if self._postgres is not None:
            try:
                self._postgres.execute("SELECT 1")
            except psycopg.Error as exc:
                lost.append(f"PostgreSQL at {self.postgres_url}: {type(exc).__name__}: {exc}".strip())
        if self._rabbitmq is not None:
            try:
                self._rabbitmq.channel().close()
            except pika.exceptions.AMQPError as exc:
                lost.append(f"RabbitMQ at {self.rabbitmq_url}: {type(exc).__name__}: {exc!r}")
        return lost

    def close(self) -> None:
        if self._postgres is not None:
            self._postgres.close()
        if self._rabbitmq is not None:
            with contextlib.suppress(pika.exceptions.AMQPError):
                self._rabbitmq.close()
