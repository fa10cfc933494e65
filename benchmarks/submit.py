"""Benchmark of survey submissions through the web form, against a minimal insert-only app, in the same run.

    .venv/bin/python benchmarks/submit.py            # SQLite, then PostgreSQL (127.0.0.1:5432)
    .venv/bin/python benchmarks/submit.py --quick    # fewer submissions and a shorter paced run
    .venv/bin/python benchmarks/submit.py --backend sqlite

For each database it does what a user would: a fresh database, `peil db upgrade`, `peil keys create`, and
`peil serve --workers 2` on a free 127.0.0.1 port; then, as HR over the API, an org tree, a `career-safety`
wave and 20,000 invitations, opened. A separate load process (httpx, asyncio) posts complete surveys to the
links, each link once, the whole survey in one form POST to ``/s/{token}`` (the form's no-JavaScript-free
"whole survey" mode; it is what the form's own tests post and it runs the same checks and storage as the
page-by-page flow). Full runs also measure the page-by-page flow a browser walks through (six page posts,
each followed by loading the next page), counted as one submission per completed survey.

The baseline is a minimal FastAPI app defined below, served by the same uvicorn with 2 workers on the same
kind of database (same engine settings) that takes the same form POST and inserts its fields as JSON into
one table. Both are measured at full speed (a closed loop of concurrent clients: submissions per second, p50,
p99) and paced at 200 submissions per second (an open loop; latency counts from the scheduled send time, so
queueing is not hidden), both over at most 16 keep-alive connections, as a reverse proxy's upstream pool
would hold. Every submission must get its 200; the number of complete responses the service reports
afterwards must equal the number of 200s.

Goals on a 2-core machine: >= 60% of the baseline's throughput, p99 < 100 ms at 200/s, zero errors.
The load generator shares the two cores with the server, for the service and the baseline alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
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
from dataclasses import dataclass
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
INVITATIONS = 20_000
PACED_RATE = 200.0
TEAMS = 40


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
    from service.config import Settings
    from service.instruments.loader import load_definitions

    instrument = load_definitions(Settings().definitions_dir)[("career-safety", 1)].instrument
    rng = random.Random(seed)

    def answer(item: Any) -> list[str]:
        if item.type in ("likert5", "likert7", "nps"):
            low, high = {"likert5": (1, 5), "likert7": (1, 7), "nps": (0, 10)}[item.type]
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
        PEIL_BASE_URL=base,
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


def setup_wave(base: str, key: str, invitations: int) -> tuple[int, list[str]]:
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
            "attributes": {"tenure_band": ["<1", "1-3", "3+"][i % 3], "location": "AB"[i % 2]},
        }
        for i in range(invitations)
    ]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300) as api:
        api.put("/api/v1/units", json={"units": units}).raise_for_status()
        wave_id = api.post("/api/v1/waves", json=wave).raise_for_status().json()["id"]
        started = time.perf_counter()
        links = api.post(f"/api/v1/waves/{wave_id}/participants", json={"participants": rows}).raise_for_status()
        print(f"  {invitations} invitations uploaded in {time.perf_counter() - started:.1f} s")
        api.post(f"/api/v1/waves/{wave_id}/open").raise_for_status()
    return wave_id, [link["url"].rsplit("/s/", 1)[1] for link in links.json()["links"]]


def responded(base: str, key: str, wave_id: int) -> int:
    response = httpx.get(
        f"{base}/api/v1/waves/{wave_id}/participation", headers={"Authorization": f"Bearer {key}"}, timeout=60
    )
    [org] = [u for u in response.raise_for_status().json()["units"] if u["unit_key"] == "org"]
    return int(org["responded"])


# The load process ----------------------------------------------------------------------------------------------


@dataclass
class Figures:
    label: str
    submitted: int
    ok: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    error_kinds: dict[str, int]

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _load(job: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement: ``mode`` max (closed loop), paced (open loop at ``rate``) or flow (page by page)."""
    base, mode = job["base"], job["mode"]
    tokens: list[str] = job["tokens"]
    bodies: list[Any] = job["bodies"]
    deadline = time.perf_counter() + job["max_seconds"]
    latencies: list[float] = []
    kinds: dict[str, int] = {}
    headers = {"content-type": "application/x-www-form-urlencoded"}
    limits = httpx.Limits(max_connections=job["connections"], max_keepalive_connections=job["connections"])

    def fail(kind: str) -> None:
        kinds[kind] = kinds.get(kind, 0) + 1

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        # Requests waiting for a connection queue here (FIFO, O(1)), not inside httpx's pool, which slows down
        # badly with thousands of waiters when a paced run falls behind.
        gate = asyncio.Semaphore(job["connections"])

        async def submit(n: int, started: float) -> None:
            async with gate:
                await send(n, started)

        async def send(n: int, started: float) -> None:
            try:
                if mode == "flow":
                    for body in bodies[n]:
                        response = await client.post(f"/s/{tokens[n]}", content=body, headers=headers)
                        if response.status_code == 303:
                            response = await client.get(f"/s/{tokens[n]}{response.headers['location']}")
                        if response.status_code != 200:
                            break
                else:
                    response = await client.post(f"/s/{tokens[n]}", content=bodies[n], headers=headers)
            except httpx.HTTPError as exc:
                fail(type(exc).__name__)
                return
            if response.status_code != 200 or "Thank" not in response.text:
                fail(f"HTTP {response.status_code}")
                return
            latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        count = len(tokens)
        if mode == "paced":
            tasks = []
            for n in range(count):
                due = started + n / job["rate"]
                if due > deadline:
                    count = n
                    break
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(submit(n, due)))  # latency from the scheduled send
            await asyncio.gather(*tasks)
        else:
            queue = iter(range(count))
            done = 0

            async def worker() -> None:
                nonlocal done
                for n in queue:
                    if time.perf_counter() > deadline:
                        return
                    await submit(n, time.perf_counter())
                    done += 1

            await asyncio.gather(*(worker() for _ in range(job["connections"])))
            count = done
        seconds = time.perf_counter() - started
    return {"submitted": count, "latencies": latencies, "kinds": kinds, "seconds": seconds}


def measure(label: str, base: str, mode: str, tokens: list[str], bodies: list[Any], tmp: Path, **job: Any) -> Figures:
    """Run the load in a separate process and collect its figures."""
    spec = {"base": base, "mode": mode, "tokens": tokens, "bodies": bodies, **job}
    job_file, out_file = tmp / f"{label}.job.json", tmp / f"{label}.out.json"
    job_file.write_text(json.dumps(spec))
    subprocess.run([sys.executable, __file__, "--load-job", str(job_file), str(out_file)], check=True, timeout=900)
    result = json.loads(out_file.read_text())
    latencies = result["latencies"]
    errors = result["submitted"] - len(latencies)
    return Figures(
        label,
        result["submitted"],
        len(latencies),
        errors,
        result["seconds"],
        1000 * percentile(latencies, 50),
        1000 * percentile(latencies, 99),
        result["kinds"],
    )


# The run -------------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    max_count: int
    paced_seconds: float
    flow_count: int
    connections: int = 16


def show(figures: Figures) -> None:
    kinds = f"  {figures.error_kinds}" if figures.error_kinds else ""
    print(
        f"  {figures.label:<28} {figures.ok:>6} ok {figures.errors:>4} errors  {figures.rate:8.1f}/s"
        f"  p50 {figures.p50_ms:7.1f} ms  p99 {figures.p99_ms:7.1f} ms{kinds}"
    )


def bench_backend(backend: str, plan: Plan, tmp: Path) -> dict[str, Any]:
    print(f"\n== {backend} ==")
    paced_count = int(plan.paced_seconds * PACED_RATE)
    needed = plan.max_count + paced_count + plan.flow_count
    whole, pages = survey_bodies(needed)

    # The baseline: same uvicorn settings, same kind of database, one table.
    with fresh_database(backend, tmp, "baseline") as url:
        create_baseline_table(url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "BENCH_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
        command = uvicorn_command("benchmarks.submit:make_baseline", port, "--factory")
        with running(command, env, tmp / f"baseline-{backend}.log", base):
            fake = [secrets.token_urlsafe(32) for _ in range(needed)]
            measure(
                f"warm-b-{backend}",
                base,
                "max",
                fake[-200:],
                whole[:200],
                tmp,
                connections=plan.connections,
                max_seconds=60,
            )
            b_max = measure(
                f"baseline-{backend}", base, "max", fake[: plan.max_count], whole[: plan.max_count], tmp,
                connections=plan.connections, max_seconds=120,
            )  # fmt: skip
            b_paced = measure(
                f"baseline-paced-{backend}", base, "paced", fake[plan.max_count : plan.max_count + paced_count],
                whole[plan.max_count : plan.max_count + paced_count], tmp, rate=PACED_RATE,
                connections=plan.connections, max_seconds=plan.paced_seconds,
            )  # fmt: skip

    # The service, as a user runs it.
    with fresh_database(backend, tmp, "peil") as url:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = peil_env(url, tmp, base)
        peil("db", "upgrade", env=env)
        key = peil("keys", "create", "--role", "hr", "--name", "benchmark", env=env).strip().splitlines()[-1]
        command = [str(BIN / "peil"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
        with running(command, env, tmp / f"peil-{backend}.log", base):
            wave_id, tokens = setup_wave(base, key, INVITATIONS)
            if len(tokens) < needed + 200:
                raise SystemExit(f"{needed} submissions need more than {len(tokens)} invitations")
            warm = tokens[-200:]
            warmed = measure(
                f"warm-p-{backend}", base, "max", warm, whole[:200], tmp, connections=plan.connections, max_seconds=60
            )
            s_max = measure(
                f"peil-{backend}", base, "max", tokens[: plan.max_count], whole[: plan.max_count], tmp,
                connections=plan.connections, max_seconds=120,
            )  # fmt: skip
            s_paced = measure(
                f"peil-paced-{backend}", base, "paced", tokens[plan.max_count : plan.max_count + paced_count],
                whole[plan.max_count : plan.max_count + paced_count], tmp, rate=PACED_RATE,
                connections=plan.connections, max_seconds=plan.paced_seconds,
            )  # fmt: skip
            flow = None
            if plan.flow_count:
                start = plan.max_count + paced_count
                flow = measure(
                    f"peil-flow-{backend}", base, "flow", tokens[start : start + plan.flow_count],
                    pages[start : start + plan.flow_count], tmp, connections=plan.connections, max_seconds=120,
                )  # fmt: skip
            stored = responded(base, key, wave_id)
    expected = warmed.ok + s_max.ok + s_paced.ok + (flow.ok if flow else 0)
    show(b_max)
    show(s_max)
    ratio = s_max.rate / b_max.rate if b_max.rate else float("nan")
    print(f"  throughput ratio peil/baseline: {ratio:.2f}  (goal >= 0.60)")
    show(b_paced)
    show(s_paced)
    if flow:
        show(flow)
        print(f"  page-by-page surveys/s vs baseline submissions/s: {flow.rate / b_max.rate:.2f}")
    print(
        f"  complete responses stored: {stored}, thank-you pages: {expected}"
        f"  ({'match' if stored == expected else 'MISMATCH'})"
    )
    return {
        "backend": backend,
        "ratio": ratio,
        "paced_p99_ms": s_paced.p99_ms,
        "errors": s_max.errors + s_paced.errors + (flow.errors if flow else 0),
        "stored_match": stored == expected,
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--load-job":
        job = json.loads(Path(sys.argv[2]).read_text())
        Path(sys.argv[3]).write_text(json.dumps(asyncio.run(_load(job))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer submissions, a 5 s paced run, no page flow")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    plan = Plan(max_count=1500, paced_seconds=5, flow_count=0) if args.quick else Plan(4000, 15, 500)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"2 uvicorn workers; load from a separate process; {os.cpu_count()} cores shared by all")
    tmp = Path(tempfile.mkdtemp(prefix="peil-bench-"))
    try:
        summary = [bench_backend(backend, plan, tmp) for backend in backends]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n== summary ==")
    for s in summary:
        verdict = s["ratio"] >= 0.6 and s["paced_p99_ms"] < 100 and s["errors"] == 0 and s["stored_match"]
        print(
            f"  {s['backend']:<10} ratio {s['ratio']:.2f}  p99 at {PACED_RATE:.0f}/s {s['paced_p99_ms']:.1f} ms"
            f"  errors {s['errors']}  stored {'ok' if s['stored_match'] else 'MISMATCH'}  "
            f"{'goals met' if verdict else 'goals NOT met'}"
        )


if __name__ == "__main__":
    main()
