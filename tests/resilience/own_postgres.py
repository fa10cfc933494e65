"""A PostgreSQL instance of our own (initdb into a temporary folder, a free port), to stop and start at will.

The shared server on 5432 is left alone. initdb refuses to run as root, so as root the instance belongs to
the ``postgres`` system user (via runuser) in a folder that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.resilience.live import free_port


def find_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl, or the ones on PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name or 0)
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


@dataclass
class OwnPostgres:
    bin: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as_owner(), *args], capture_output=True, text=True, timeout=60, cwd=self.root, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stdout[-1500:]} {result.stderr[-1500:]}")

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off -c max_connections=100"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "pg.log"), "-w", "-t", "30",
            "-o", options, "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        path = self.root / "pg.log"
        return path.read_text(errors="replace") if path.exists() else ""


def launch() -> OwnPostgres | str:
    """A started instance, or why there cannot be one here."""
    binaries = find_bin()
    if binaries is None:
        return "initdb/pg_ctl not found under /usr/lib/postgresql/*/bin or on PATH"
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to own the instance"
    root = Path(tempfile.mkdtemp(prefix="peil-pg-"))
    if os.geteuid() == 0:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    root.chmod(0o755)
    instance = OwnPostgres(binaries, root, free_port())
    instance.init()
    instance.start()
    return instance


def remove(instance: OwnPostgres) -> None:
    with contextlib.suppress(RuntimeError):  # already stopped
        instance.stop("immediate")
    shutil.rmtree(instance.root, ignore_errors=True)
