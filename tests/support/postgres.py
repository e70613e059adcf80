"""A throwaway PostgreSQL server for the test suite: real SQL, real locks, on loopback.

The store must behave the same on PostgreSQL as on SQLite (JSONB, row locks, advisory
locks, uuid columns), and only a real server shows that. One cluster serves the whole
session: ``initdb`` into a temporary folder, ``pg_ctl start`` listening on 127.0.0.1 at a
free port (its unix socket stays inside the folder, so it never meets a system server),
trust authentication for these local connections only. Durability settings are off:
the data is thrown away, and start-up and ``CREATE DATABASE`` get faster.

PostgreSQL refuses to run as root; as root (CI, containers) every server command runs as
Debian's ``postgres`` user through ``runuser``, in a folder handed over to that user.
Missing binaries are an error, never a skip: ``scripts/setup`` installs them.
"""
from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

BIN_GLOB = "/usr/lib/postgresql/*/bin"
SERVICE_USER = "postgres"
#: pg_ctl waits this long for the server to accept connections (the brief: start < 10 s).
START_TIMEOUT = 10
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
}


class PostgresUnavailable(RuntimeError):
    """The server cannot be started on this machine (binaries, user or start failed)."""


def find_bindir() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/N/bin)."""
    candidates = [Path(p) for p in glob.glob(BIN_GLOB) if (Path(p) / "pg_ctl").is_file()
                  and (Path(p) / "initdb").is_file()]
    if not candidates:
        raise PostgresUnavailable("PostgreSQL server binaries not found: run scripts/setup")
    return max(candidates, key=lambda p: _version_key(p.parent.name))


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running throwaway cluster; ``url(name)`` gives SQLAlchemy URLs into it."""

    bindir: Path
    root: Path
    port: int
    as_user: str | None  # run server commands as this user (we are root), else ourselves

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database with a unique name; returns the name."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        # FILE_COPY (PostgreSQL 15+) copies template1's files whole: with fsync off it
        # takes half the time of the default WAL_LOG strategy
        strategy = " STRATEGY = FILE_COPY" if _version_key(self.bindir.parent.name) >= (15,) else ""
        self._admin(f'CREATE DATABASE "{name}"{strategy}')
        return name

    def drop_database(self, name: str) -> None:
        # FORCE: a connection a failed test left open must not keep the database alive
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname="postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)  # type: ignore[arg-type]  # names are ours, never input

    def _run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              cwd=self.root, check=False)

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise PostgresUnavailable(f"{what} failed ({result.returncode}): "
                                      f"{(result.stderr or result.stdout).strip()}\n{log}")

    def start(self) -> None:
        self._check(self._run("initdb", "-D", str(self.datadir), "-U", "postgres",
                              "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8",
                              "--no-sync", "--no-instructions"), "initdb")
        settings = {**SETTINGS, "port": str(self.port),
                    "unix_socket_directories": f"'{self.root}'"}
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("".join(f"{key} = {value}\n" for key, value in settings.items()))
        self._check(self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile),
                              "-w", "-t", str(START_TIMEOUT), "start",
                              timeout=START_TIMEOUT + 5), "pg_ctl start")

    def stop(self) -> None:
        """Stop the server (fast: sessions are cut) and delete everything it wrote."""
        try:
            if (self.datadir / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start() -> PostgresServer:
    """Start a fresh cluster on a free loopback port; the caller must ``stop()`` it."""
    bindir = find_bindir()
    as_user = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root and there is no {SERVICE_USER!r} user to run PostgreSQL "
                "as: run scripts/setup") from None
        as_user = SERVICE_USER
    # as root the service user must reach the folder: /tmp is world-traversable, a
    # TMPDIR under /root would not be
    root = Path(tempfile.mkdtemp(prefix="pg-test-", dir="/tmp" if as_user else None))
    if as_user:
        os.chown(root, account.pw_uid, account.pw_gid)
    last: PostgresUnavailable | None = None
    for _ in range(3):  # the free port can be taken between probing and binding
        server = PostgresServer(bindir=bindir, root=root, port=_free_port(), as_user=as_user)
        try:
            server.start()
            return server
        except (PostgresUnavailable, subprocess.TimeoutExpired) as exc:
            last = exc if isinstance(exc, PostgresUnavailable) else PostgresUnavailable(str(exc))
            server._run("pg_ctl", "-D", str(server.datadir), "-m", "immediate", "stop")
            shutil.rmtree(server.datadir, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    assert last is not None
    raise last
