"""Benchmark of survey submissions through the web form, against a minimal insert-only app, in the same run.

    .venv/bin/python benchmarks/submit.py            # SQLite, then PostgreSQL (127.0.0.1:5432)
    .venv/bin/python benchmarks/submit.py --quick    # fewer submissions, shorter rounds
    .venv/bin/python benchmarks/submit.py --backend sqlite

For each database it does what a user would: a fresh database, `peil db upgrade`, `peil keys create`, and
`peil serve --workers 2` on a free 127.0.0.1 port; then, as HR over the API, an org tree, a `career-safety`
wave and as many invitations as the run needs, opened; the links are read from the mails Peil writes to its
file outbox. A separate load process answers each link once, in two ways:

- the whole survey in one form POST to ``/s/{token}`` (no browser does this; it runs the same checks and storage);
- page by page, as a browser walks the form: open the link, post each of the six pages and follow each 303 to
  the next page (12 requests a survey).

The baseline is a minimal FastAPI app defined below, served by the same uvicorn with 2 workers on the same kind
of database (same engine settings) that takes one form POST and inserts its fields as JSON into one table: a bare
insert per request. (It writes no access log; `peil serve` does, as a user runs it.) Measurements alternate
(baseline, whole posts, page by page, in each round), at full speed (a closed loop: submissions or surveys per
second, requests per second, p50, p99) and paced (an open loop, latency counted from the scheduled send time, so
queueing is not hidden): whole posts at 200/s, and surveys at 50/s page by page, where each page's wait (a post
and the page it redirects to) is timed too. All over 16 keep-alive connections, as a reverse proxy's upstream
pool would hold, each closed and opened again after 100 requests so that both workers get their share. Every
survey must end on its thank-you page; the complete responses stored must equal the thank-you pages. Errors are
counted for the baseline as well as for Peil.

The load process is a bare HTTP/1.1 client (prepared bytes out, status, headers and body in) that costs about 0.1
ms of CPU per request, so it leaves the two cores to the servers. Each measurement also prints the CPU the servers
used per submission (the uvicorn processes, and PostgreSQL's processes: the whole local cluster, so other work on
it counts too), read from /proc: on a busy machine the throughput moves by tens of percent from run to run, the CPU
per submission much less.

Goals on a 2-core machine (benchmarks/README.md): whole posts at >= 60% of the baseline's rate; page-by-page
requests at >= 50% of the baseline's requests per second; p99 < 100 ms for whole posts at 200/s and per page at
50 surveys/s; zero errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import quopri
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("PEIL_BENCH_POSTGRES", "postgresql://127.0.0.1:5432/test")
SECRET = "bench-" + "s" * 42
PACED_RATE = 200.0  # whole-survey posts per second in the paced run
FLOW_RATE = 50.0  # surveys per second walked page by page in the paced run
TEAMS = 40
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# The baseline app --------------------------------------------------------------------------------------------


def make_baseline() -> Any:
    """A minimal FastAPI app: the same form POST, its fields inserted as one JSON document into one table."""
    from sqlalchemy import JSON, Column, Integer, MetaData, String, Table

    from service.db import make_engine

    engine = make_engine(os.environ["BENCH_DATABASE_URL"])
    metadata = MetaData()
    table = Table(
        "bench_answers",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("token", String(64)),
        Column("answers", JSON),
    )
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/s/{token}", response_class=HTMLResponse)
    async def submit(token: str, request: Request) -> str:
        form = await request.form()
        answers: dict[str, Any] = {}
        for name, value in form.multi_items():
            answers.setdefault(name, []).append(value)
        await asyncio.to_thread(_insert, token, answers)
        return "<!doctype html><title>Thanks</title><p>Thank you!</p>"

    def _insert(token: str, answers: dict[str, Any]) -> None:
        with engine.begin() as conn:
            conn.execute(table.insert().values(token=token[:64], answers=answers))

    return app


def create_baseline_table(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        key = "SERIAL" if engine.dialect.name == "postgresql" else "INTEGER"
        conn.execute(text(f"CREATE TABLE bench_answers (id {key} PRIMARY KEY, token VARCHAR(64), answers JSON)"))
    engine.dispose()


# Answers -------------------------------------------------------------------------------------------------------


def survey_bodies(count: int, seed: int = 1) -> tuple[list[str], list[list[str]]]:
    """``count`` complete career-safety surveys as url-encoded bodies: one whole post, and one per page."""
    from scoring.spec import SCALE_BOUNDS
    from service.config import Settings
    from service.instruments.loader import load_definitions

    instrument = load_definitions(Settings().definitions_dir)[("career-safety", 1)].instrument
    rng = random.Random(seed)

    def answer(item: Any) -> list[str]:
        if item.type in ("likert5", "likert7", "nps"):
            low, high = SCALE_BOUNDS[item.type]
            return [str(rng.randint(low, high))]
        options = [o.id for o in item.options]
        if item.type == "single":
            return [rng.choice(options)]
        if item.type == "multi":
            return rng.sample(options, k=rng.randint(1, 3))
        return [rng.choice(["Meer tijd om te leren.", "More honest career talks, please.", ""])]

    whole: list[str] = []
    pages: list[list[str]] = []
    for _ in range(count):
        per_section = []
        for section in instrument.sections:
            per_section.append([(item.id, value) for item in section.items for value in answer(item)])
        fields = [pair for section_fields in per_section for pair in section_fields]
        whole.append(urlencode([("_lang", "en"), *fields]))
        last = len(per_section)
        pages.append(
            [
                urlencode(
                    [
                        ("_lang", "en"),
                        ("_page", str(n)),
                        *section_fields,
                        ("_action", "finish" if n == last else "next"),
                    ]
                )
                for n, section_fields in enumerate(per_section, start=1)
            ]
        )
    return whole, pages


# Servers -------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"server did not start:\n{log.read_text()[-3000:]}")


@contextmanager
def running(command: list[str], env: dict[str, str], log: Path, base: str) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
    try:
        wait_healthy(base, process, log)
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def peil_env(url: str, data_dir: Path, base: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEIL_")}
    env.update(
        PEIL_DATABASE_URL=url, PEIL_SECRET_KEY=SECRET, PEIL_ENV="production", PEIL_DATA_DIR=str(data_dir),
        PEIL_BASE_URL=base, PEIL_MAIL_URL=(data_dir / "outbox").as_uri(), PEIL_MAIL_RATE="100000",
        PEIL_MAIL_INTERVAL_SECONDS="1",
    )  # fmt: skip
    return env


def peil(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(BIN / "peil"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"peil {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result.stdout


def uvicorn_command(target: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
        "--no-access-log", "--no-server-header", *extra,
    ]  # fmt: skip


# Databases -----------------------------------------------------------------------------------------------------


@contextmanager
def fresh_database(backend: str, tmp: Path, label: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp / f'{label}.db'}"
        return
    import psycopg

    name = f"peil_bench_{label}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# HR's setup ----------------------------------------------------------------------------------------------------


def setup_wave(base: str, key: str, invitations: int, outbox: Path) -> tuple[int, list[str]]:
    """HR's setup over the API; the links as the service mailed them into its outbox folder."""
    from datetime import UTC, datetime, timedelta

    units = [{"key": "org", "name": "Organisation", "parent_key": None}]
    units += [{"key": f"dept{d}", "name": f"Department {d}", "parent_key": "org"} for d in range(TEAMS // 8)]
    units += [{"key": f"team{t}", "name": f"Team {t}", "parent_key": f"dept{t % (TEAMS // 8)}"} for t in range(TEAMS)]
    now = datetime.now(UTC)
    wave = {
        "name": "Benchmark",
        "instrument": "career-safety",
        "version": 1,
        "opens_at": (now + timedelta(hours=1)).isoformat(),
        "closes_at": (now + timedelta(days=14)).isoformat(),
        "attributes": ["tenure_band", "location"],
    }
    rows = [
        {
            "unit_key": f"team{i % TEAMS}",
            "email": f"p{i}@example.com",
            "attributes": {"tenure_band": ["<1", "1-3", "3+"][i % 3], "location": "AB"[i % 2]},
        }
        for i in range(invitations)
    ]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300) as api:
        api.put("/api/v1/units", json={"units": units}).raise_for_status()
        wave_id = api.post("/api/v1/waves", json=wave).raise_for_status().json()["id"]
        started = time.perf_counter()
        api.post(f"/api/v1/waves/{wave_id}/participants", json={"participants": rows}).raise_for_status()
        print(f"  {invitations} invitations uploaded in {time.perf_counter() - started:.1f} s")
        api.post(f"/api/v1/waves/{wave_id}/open").raise_for_status()
        started = time.perf_counter()
        while api.get(f"/api/v1/waves/{wave_id}").raise_for_status().json()["mail"]["pending"]:
            time.sleep(1)
    tokens = mailed_tokens(outbox, wave_id)
    print(f"  {len(tokens)} invitations mailed (to files) in {time.perf_counter() - started:.1f} s")
    return wave_id, tokens


def mailed_tokens(outbox: Path, wave_id: int) -> list[str]:
    """The link token in each invitation file of the wave (its text is quoted-printable)."""
    link = re.compile(rb"/s/([A-Za-z0-9_-]{43})\?lang=")
    tokens = {
        match.group(1).decode()
        for path in outbox.glob(f"*-wave-{wave_id}-invitation-*.eml")
        if (match := link.search(quopri.decodestring(path.read_bytes())))
    }
    return sorted(tokens)


def responded(url: str, wave_id: int) -> int:
    """Complete responses stored, counted in the database (an open wave's API shows participation in steps)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = text("SELECT count(*) FROM responses WHERE wave_id = :wave AND complete")
            return int(conn.execute(query, {"wave": wave_id}).scalar_one())
    finally:
        engine.dispose()


# The load process ----------------------------------------------------------------------------------------------

# Each client connection is closed after this many requests and opened again (nginx closes an upstream
# keep-alive connection after `keepalive_requests`). With connections that live for the whole run, the worker
# that happened to accept them at the start decided the result: all 16 on one worker, the other idle, was seen.
REQUESTS_PER_CONNECTION = 100
TIMEOUT = 30.0


@dataclass
class Figures:
    label: str
    submitted: int
    seconds: float
    latencies: list[float]
    error_kinds: dict[str, int]
    load_cpu: float  # CPU seconds of the load process
    server_cpu: float  # CPU seconds of the server's processes (and PostgreSQL's); nan when not measured
    requests: int = 0  # HTTP requests answered (a page-by-page survey takes 12)
    pages: list[float] = field(default_factory=list)  # page by page: each page's wait (a post and its redirect)

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def errors(self) -> int:
        return self.submitted - self.ok

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def request_rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def page_p99_ms(self) -> float:
        return 1000 * percentile(self.pages, 99)

    @property
    def p50_ms(self) -> float:
        return 1000 * percentile(self.latencies, 50)

    @property
    def p99_ms(self) -> float:
        return 1000 * percentile(self.latencies, 99)

    def cpu_ms(self, seconds: float) -> float:
        return 1000 * seconds / max(1, self.submitted)

    @classmethod
    def total(cls, label: str, rounds: list[Figures]) -> Figures:
        kinds: dict[str, int] = {}
        for r in rounds:
            for kind, count in r.error_kinds.items():
                kinds[kind] = kinds.get(kind, 0) + count
        return cls(
            label,
            sum(r.submitted for r in rounds),
            sum(r.seconds for r in rounds),
            [latency for r in rounds for latency in r.latencies],
            kinds,
            sum(r.load_cpu for r in rounds),
            sum(r.server_cpu for r in rounds),
            sum(r.requests for r in rounds),
            [page for r in rounds for page in r.pages],
        )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Connection:
    """One keep-alive HTTP/1.1 connection, with the least work a client can do per request.

    The load process must leave the cores to the servers: a general client (httpx) spent about 2 ms of CPU
    per submission here, more than the baseline server itself. This one writes prepared bytes and reads the
    status, the headers and a body of the announced length.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict[bytes, bytes], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.used = 0
        assert self.reader is not None
        self.used += 1
        closing = self.used >= REQUESTS_PER_CONNECTION
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body:
            head += f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
        if closing:
            head += "Connection: close\r\n"
        try:
            async with asyncio.timeout(TIMEOUT):
                self.writer.write(head.encode() + b"\r\n" + body)
                lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
                status = int(lines[0].split(b" ", 2)[1])
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                if b"content-length" in headers:
                    content = await self.reader.readexactly(int(headers[b"content-length"]))
                elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                    content = await self._chunked()
                else:
                    content, closing = await self.reader.read(), True
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            raise
        if closing or headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, headers, content

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await self.reader.readexactly(size + 2))
        await self.reader.readuntil(b"\r\n")
        return b"".join(part[:-2] for part in parts)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass(frozen=True)
class _Job:
    """One measurement's job as the load process runs it: the server, how to load it, and the prepared bodies
    (bytes; a list of pages each with ``flow``)."""

    host: str
    port: int
    mode: str
    flow: bool
    tokens: list[str]
    bodies: list[Any]
    lanes: int

    @classmethod
    def of(cls, job: dict[str, Any]) -> _Job:
        host, port = job["base"].removeprefix("http://").rsplit(":", 1)
        flow = job["flow"]
        bodies = [[b.encode() for b in body] if flow else body.encode() for body in job["bodies"]]
        return cls(host, int(port), job["mode"], flow, job["tokens"], bodies, job["connections"])


@dataclass
class _Tally:
    """What one measurement saw: each thanked submission's latency, each page's wait, the requests answered, and
    the failures by kind."""

    latencies: list[float] = field(default_factory=list)
    page_waits: list[float] = field(default_factory=list)
    requests: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def fail(self, kind: str) -> None:
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


async def _walk(connection: Connection, path: str, pages: list[bytes], tally: _Tally) -> tuple[int, bytes]:
    """A browser's way through the form: open the link, post each page, follow each redirect."""
    started = time.perf_counter()
    status, _headers, content = await connection.request("GET", path)
    tally.requests += 1
    tally.page_waits.append(time.perf_counter() - started)
    for body in pages:
        if status != 200:
            break
        started = time.perf_counter()
        status, headers, content = await connection.request("POST", path, body)
        tally.requests += 1
        if status == 303:
            location = headers[b"location"].decode()
            status, headers, content = await connection.request("GET", path + location)
            tally.requests += 1
        tally.page_waits.append(time.perf_counter() - started)
    return status, content


async def _submit(connection: Connection, job: _Job, tally: _Tally, n: int, due: float) -> None:
    """Submission n (a whole post, or with ``flow`` a walk through the pages); its latency counted from ``due``
    when it ends on the thank-you page, else its failure by kind."""
    path = f"/s/{job.tokens[n]}"
    try:
        if job.flow:
            status, content = await _walk(connection, path, job.bodies[n], tally)
        else:
            status, _headers, content = await connection.request("POST", path, job.bodies[n])
            tally.requests += 1
    except Exception as exc:  # every failure is counted, by its kind
        tally.fail(type(exc).__name__)
        return
    if status != 200 or b"Thank" not in content:
        tally.fail(f"HTTP {status}")
        return
    tally.latencies.append(time.perf_counter() - due)


_Queue = asyncio.Queue[tuple[int, float] | None]


async def _lane(job: _Job, tally: _Tally, queue: _Queue, deadline: float) -> int:
    """One connection taking submissions from the queue, one at a time, until told to stop (or, at full speed,
    until the deadline); how many it sent."""
    connection = Connection(job.host, job.port)
    done = 0
    try:
        while (item := await queue.get()) is not None:
            n, due = item
            if job.mode != "paced" and time.perf_counter() > deadline:
                break
            await _submit(connection, job, tally, n, due if job.mode == "paced" else time.perf_counter())
            done += 1
    finally:
        connection.close()
    return done


async def _pace(job: _Job, queue: _Queue, rate: float, started: float, deadline: float) -> None:
    """Queue submission n at ``started + n / rate`` (its due time with it), until the deadline."""
    for n in range(len(job.tokens)):
        due = started + n / rate
        if due > deadline:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((n, due))


async def _load(job: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement: ``mode`` max (closed loop) or paced (open loop at ``rate``), of whole-survey posts or,
    with ``flow``, of surveys walked page by page as a browser does (12 requests each).

    ``connections`` lanes each own one connection and send one request at a time, as a proxy's upstream pool
    would. A paced run schedules submission n at ``start + n / rate`` and counts its latency from then, so
    time spent waiting for a free lane is not hidden.
    """
    started_cpu = time.process_time()
    load, tally = _Job.of(job), _Tally()
    queue: _Queue = asyncio.Queue()
    started = time.perf_counter()
    deadline = started + job["max_seconds"]
    workers = [asyncio.create_task(_lane(load, tally, queue, deadline)) for _ in range(load.lanes)]
    if load.mode == "paced":
        await _pace(load, queue, job["rate"], started, deadline)
    else:  # a closed loop: each lane takes the next submission when its last one is answered, until the deadline
        for n in range(len(load.tokens)):
            queue.put_nowait((n, 0.0))
    for _ in range(load.lanes):
        queue.put_nowait(None)
    submitted = sum(await asyncio.gather(*workers))
    seconds = time.perf_counter() - started
    return {
        "submitted": submitted,
        "latencies": tally.latencies,
        "kinds": tally.kinds,
        "seconds": seconds,
        "cpu": time.process_time() - started_cpu,
        "requests": tally.requests,
        "pages": tally.page_waits,
    }


# CPU accounting (Linux /proc): what a measurement cost the servers, not only how fast it went -----------------


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, name, CPU seconds of the process and of its children that have ended)."""
    table: dict[int, tuple[int, str, float]] = {}
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (name) ": state, ppid, ...
        cpu = sum(int(f) for f in fields[11:15]) / TICKS  # utime, stime, cutime, cstime
        table[int(entry.name)] = (int(fields[1]), raw[raw.index("(") + 1 : raw.rindex(")")], cpu)
    return table


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds used so far by ``roots`` and all their descendants (ended ones too, once reaped)."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _name, _cpu) in table.items():
        children.setdefault(parent, []).append(pid)
    total, todo, seen = 0.0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        total += table[pid][2]
        todo.extend(children.get(pid, ()))
    return total


def postgres_roots() -> list[int]:
    """The local PostgreSQL postmasters (their backends and helpers are their descendants)."""
    table = _processes()
    return [
        pid
        for pid, (parent, name, _) in table.items()
        if name == "postgres" and table.get(parent, (0, ""))[1] != "postgres"
    ]


def measure(
    label: str,
    base: str,
    mode: str,
    tokens: list[str],
    bodies: list[Any],
    tmp: Path,
    cpu_roots: list[int],
    *,
    flow: bool = False,
    **job: Any,
) -> Figures:
    """Run the load in a separate process and collect its figures, with the CPU ``cpu_roots`` used meanwhile."""
    spec = {"base": base, "mode": mode, "flow": flow, "tokens": tokens, "bodies": bodies, **job}
    name = "".join(c if c.isalnum() else "-" for c in label)
    job_file, out_file = tmp / f"{name}.job.json", tmp / f"{name}.out.json"
    job_file.write_text(json.dumps(spec))
    before = tree_cpu(cpu_roots)
    subprocess.run([sys.executable, __file__, "--load-job", str(job_file), str(out_file)], check=True, timeout=900)
    server_cpu = tree_cpu(cpu_roots) - before if cpu_roots else float("nan")
    result = json.loads(out_file.read_text())
    return Figures(
        label,
        result["submitted"],
        result["seconds"],
        result["latencies"],
        result["kinds"],
        result["cpu"],
        server_cpu,
        result["requests"],
        result["pages"],
    )


# The run -------------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    rounds: int  # full-speed measurements alternate: baseline, whole posts, page by page, baseline, ...
    round_count: int  # whole-survey posts per round at most
    flow_count: int  # surveys walked page by page per round at most
    round_seconds: float  # and seconds per round at most
    paced_seconds: float
    connections: int = 16


def show(figures: Figures) -> None:
    kinds = f"  {figures.error_kinds}" if figures.error_kinds else ""
    pages = f"  page p99 {figures.page_p99_ms:6.1f} ms" if figures.pages else ""
    print(
        f"  {figures.label:<26} {figures.ok:>6} ok {figures.errors:>4} errors {figures.rate:7.1f}/s"
        f" ({figures.request_rate:6.0f} req/s)  p50 {figures.p50_ms:6.1f} ms  p99 {figures.p99_ms:6.1f} ms{pages}"
        f"  cpu/sub: server {figures.cpu_ms(figures.server_cpu):5.2f} ms,"
        f" load {figures.cpu_ms(figures.load_cpu):4.2f} ms{kinds}"
    )


@contextmanager
def baseline_server(backend: str, tmp: Path) -> Iterator[tuple[str, list[int]]]:
    """The baseline app on a fresh database: its address and the processes whose CPU it uses."""
    with fresh_database(backend, tmp, "baseline") as url:
        create_baseline_table(url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "BENCH_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
        command = uvicorn_command("benchmarks.submit:make_baseline", port, "--factory")
        with running(command, env, tmp / f"baseline-{backend}.log", base) as process:
            yield base, [process.pid, *(postgres_roots() if backend == "postgresql" else [])]


@contextmanager
def peil_server(backend: str, tmp: Path) -> Iterator[tuple[str, list[int], str, str]]:
    """`peil serve --workers 2` on a fresh database, as a user runs it: address, processes, an HR key, its URL."""
    with fresh_database(backend, tmp, "peil") as url:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        data = tmp / f"data-{backend}"  # its own outbox folder, where it mails the links
        data.mkdir(exist_ok=True)
        env = peil_env(url, data, base)
        peil("db", "upgrade", env=env)
        key = peil("keys", "create", "--role", "hr", "--name", "benchmark", env=env).strip().splitlines()[-1]
        command = [str(BIN / "peil"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
        with running(command, env, tmp / f"peil-{backend}.log", base) as process:
            yield base, [process.pid, *(postgres_roots() if backend == "postgresql" else [])], key, url


class Tokens:
    """Hands out each link once: every measurement answers fresh links."""

    def __init__(self, tokens: list[str]) -> None:
        self._tokens, self._next = tokens, 0

    def take(self, count: int) -> slice:
        if self._next + count > len(self._tokens):
            raise SystemExit(f"the run needs more than {len(self._tokens)} invitations")
        self._next += count
        return slice(self._next - count, self._next)


def bench_backend(backend: str, plan: Plan, tmp: Path) -> dict[str, Any]:
    """Both servers run side by side; the measurements alternate (baseline, whole posts, page by page), so a
    change in the machine's other load falls on all three rather than on whichever came last."""
    print(f"\n== {backend} ==")
    paced_count, flow_paced_count = int(plan.paced_seconds * PACED_RATE), int(plan.paced_seconds * FLOW_RATE)
    needed = 200 + plan.rounds * (plan.round_count + plan.flow_count) + paced_count + flow_paced_count
    whole, pages = survey_bodies(needed)
    lanes: dict[str, Any] = {"connections": plan.connections}
    with baseline_server(backend, tmp) as (b_base, b_roots), peil_server(backend, tmp) as (p_base, p_roots, key, p_url):
        wave_id, tokens = setup_wave(p_base, key, needed, tmp / f"data-{backend}" / "outbox")
        fake = [secrets.token_urlsafe(32) for _ in range(needed)]
        links = Tokens(tokens)
        part = links.take(200)
        measure("warm-b", b_base, "max", fake[part], whole[part], tmp, [], max_seconds=60, **lanes)
        warm = [measure("warm-p", p_base, "max", tokens[part], whole[part], tmp, [], max_seconds=60, **lanes)]
        b_rounds: list[Figures] = []
        p_rounds: list[Figures] = []
        f_rounds: list[Figures] = []
        for n in range(plan.rounds):
            part = links.take(plan.round_count)
            for label, base, roots, chosen, rounds in (
                ("baseline", b_base, b_roots, fake, b_rounds),
                ("peil", p_base, p_roots, tokens, p_rounds),
            ):
                rounds.append(
                    measure(
                        f"{label}-{n}",
                        base,
                        "max",
                        chosen[part],
                        whole[part],
                        tmp,
                        roots,
                        max_seconds=plan.round_seconds,
                        **lanes,
                    )
                )
            part = links.take(plan.flow_count)
            f_rounds.append(
                measure(
                    f"flow-{n}",
                    p_base,
                    "max",
                    tokens[part],
                    pages[part],
                    tmp,
                    p_roots,
                    flow=True,
                    max_seconds=plan.round_seconds,
                    **lanes,
                )
            )
        b_max, s_max = Figures.total("baseline", b_rounds), Figures.total("peil whole survey", p_rounds)
        f_max = Figures.total("peil page by page", f_rounds)
        part = links.take(paced_count)
        b_paced = measure(
            f"baseline paced {PACED_RATE:.0f}/s", b_base, "paced", fake[part], whole[part], tmp, b_roots,
            rate=PACED_RATE, max_seconds=plan.paced_seconds, **lanes,
        )  # fmt: skip
        s_paced = measure(
            f"peil paced {PACED_RATE:.0f}/s", p_base, "paced", tokens[part], whole[part], tmp, p_roots,
            rate=PACED_RATE, max_seconds=plan.paced_seconds, **lanes,
        )  # fmt: skip
        part = links.take(flow_paced_count)
        f_paced = measure(
            f"pages paced {FLOW_RATE:.0f} surveys/s", p_base, "paced", tokens[part], pages[part], tmp, p_roots,
            flow=True, rate=FLOW_RATE, max_seconds=plan.paced_seconds, **lanes,
        )  # fmt: skip
        stored = responded(p_url, wave_id)
    return report(
        backend, stored, [b_max, s_max, f_max, b_paced, s_paced, f_paced, *warm], b_rounds, p_rounds, f_rounds
    )


def report(
    backend: str,
    stored: int,
    figures: list[Figures],
    b_rounds: list[Figures],
    p_rounds: list[Figures],
    f_rounds: list[Figures],
) -> dict[str, Any]:
    """Print one database's figures and return what the summary needs."""
    b_max, s_max, f_max, b_paced, s_paced, f_paced, warm = figures
    for shown in (b_max, s_max, f_max, b_paced, s_paced, f_paced):
        show(shown)
    ratio = s_max.rate / b_max.rate if b_max.rate else float("nan")
    flow_ratio = f_max.request_rate / b_max.request_rate if b_max.request_rate else float("nan")
    by_round = ", ".join(f"{p.rate / b.rate:.2f}" for b, p in zip(b_rounds, p_rounds, strict=True) if b.rate)
    flow_by_round = ", ".join(
        f"{f.request_rate / b.request_rate:.2f}" for b, f in zip(b_rounds, f_rounds, strict=True) if b.request_rate
    )
    print(f"  whole-survey posts per second, peil/baseline: {ratio:.2f}  (goal >= 0.60; by round: {by_round})")
    print(
        f"  page-by-page requests per second, peil/baseline: {flow_ratio:.2f}"
        f"  (goal >= 0.50; by round: {flow_by_round}); {f_max.rate:.1f} surveys/s"
    )
    # Every survey the service thanked for, including those of rounds cut short by their time limit.
    expected = warm.ok + s_max.ok + f_max.ok + s_paced.ok + f_paced.ok
    verdict = "match" if stored == expected else "MISMATCH"
    print(f"  complete responses stored: {stored}, thank-you pages: {expected}  ({verdict})")
    peil_errors = sum(f.errors for f in (warm, s_max, f_max, s_paced, f_paced))
    return {
        "backend": backend,
        "ratio": ratio,
        "flow_ratio": flow_ratio,
        "paced_p99_ms": s_paced.p99_ms,
        "page_p99_ms": f_paced.page_p99_ms,
        "errors": peil_errors,
        "baseline_errors": b_max.errors + b_paced.errors,
        "stored_match": stored == expected,
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--load-job":
        job = json.loads(Path(sys.argv[2]).read_text())
        Path(sys.argv[3]).write_text(json.dumps(asyncio.run(_load(job))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer submissions and shorter rounds")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    plan = Plan(2, 1500, 300, 2.0, paced_seconds=5) if args.quick else Plan(3, 4000, 1000, 4.0, paced_seconds=15)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"2 uvicorn workers; load from a separate process; {os.cpu_count()} cores shared by all")
    tmp = Path(tempfile.mkdtemp(prefix="peil-bench-"))
    try:
        summary = [bench_backend(backend, plan, tmp) for backend in backends]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n== summary ==")
    for s in summary:
        verdict = (
            s["ratio"] >= 0.6
            and s["flow_ratio"] >= 0.5
            and s["paced_p99_ms"] < 100
            and s["page_p99_ms"] < 100
            and s["errors"] == 0
            and s["stored_match"]
        )
        print(
            f"  {s['backend']:<10} whole posts {s['ratio']:.2f} (>= 0.60), page requests {s['flow_ratio']:.2f}"
            f" (>= 0.50); p99 at {PACED_RATE:.0f} posts/s {s['paced_p99_ms']:.1f} ms, per page at"
            f" {FLOW_RATE:.0f} surveys/s {s['page_p99_ms']:.1f} ms (< 100); errors: peil {s['errors']},"
            f" baseline {s['baseline_errors']}; stored {'ok' if s['stored_match'] else 'MISMATCH'}:"
            f" {'goals met' if verdict else 'goals NOT met'}"
        )


if __name__ == "__main__":
    main()
