"""Benchmark of closing a wave whole: 100,000 respondents in the database, closed through the real close job.

    .venv/bin/python benchmarks/close.py                       # SQLite, in a temporary folder
    .venv/bin/python benchmarks/close.py --postgres postgresql://127.0.0.1:5432/test   # a database of its own there
    .venv/bin/python benchmarks/close.py --respondents 10000   # a quick run

A child process fills a fresh, migrated database: the scoring benchmark's organisation (its tree generator, 10,000
units in 5 levels), a career-safety wave with 3 attributes, its invitations (the respondents and a few more per
unit) and one complete response per respondent, answers as the form stores them (JSON), the wave frozen as HR's
close leaves it (``closing``). Then this process runs the close job (``service.waves.close.run_due``, exactly what
the worker in ``peil serve`` runs) ``--rounds`` times; before each round the wave is set back to closing and its
stored table deleted (its responses stay as the first close rewrote them: each round rewrites them again). It
prints each round's steps, the median and spread over the rounds, the first results call after the close (cold:
the stored table is read and decoded) against ``GET /healthz`` in the same client, the peak memory of this
process, and as its last line

    close 100000 respondents: T s (load L, build B, store S, export E)

where T is the whole job (claim, load, build, store, export, the closing transaction, and the lease's queries),
L reads the answers into the engine's arrays, B is ``scoring.build_table``, S makes the table's stored form
(``ResultTable.to_dict``, then JSON and gzip) and E derives the export's columnar copy from the same dict.
``commit`` (the table written, the responses rewritten, the wave marked closed) is printed on a line before.
Goal: T <= 5 s on SQLite on a 2-core machine, and L + S <= B (the ratio is printed). Figures:
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# ``benchmarks/scoring.py`` would shadow the ``scoring`` package: import it under another name, from the repo root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import importlib.util  # noqa: E402

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy import delete, insert, update  # noqa: E402

from scoring.spec import SCALE_BOUNDS  # noqa: E402
from service.config import REPO_ROOT, Settings  # noqa: E402
from service.db import make_engine, make_sessionmaker, transaction  # noqa: E402
from service.instruments.loader import load_definitions  # noqa: E402
from service.instruments.schema import Instrument  # noqa: E402
from service.models import Invitation, Response, Unit, Wave, WaveResult  # noqa: E402
from service.models.base import utcnow  # noqa: E402

ATTRIBUTES = {"tenure_band": 4, "location": 6, "contract": 2}  # as the scoring benchmark's
SECRET = "b" * 48


def _scoring_benchmark() -> Any:
    spec = importlib.util.spec_from_file_location("scoring_benchmark", HERE / "scoring.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _migrate(url: str) -> None:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


def answers_of(instrument: Instrument, n: int, unit: np.ndarray, rng: np.random.Generator) -> list[dict[str, Any]]:
    """``n`` respondents' answers in the form's stored shape, with team effects and 4 % of optional items left out."""
    team = rng.normal(0, 0.4, int(unit.max()) + 1)[unit]
    level = {c.id: rng.normal(0.9, 0.7, n) + team for c in instrument.constructs}
    columns: dict[str, list[Any]] = {}
    for item in instrument.items:
        if item.type in ("likert5", "likert7", "nps"):
            low, high = SCALE_BOUNDS[item.type]
            mid, spread = (low + high) / 2, (high - low) / 4
            value = mid + spread * (level.get(item.construct_id or "", np.zeros(n)) + rng.normal(0, 0.7, n))
            columns[item.id] = np.clip(np.rint(value), low, high).astype(int).tolist()
        elif item.type == "single":
            options = [o.id for o in item.options]
            columns[item.id] = [options[k] for k in rng.integers(0, len(options), n)]
        elif item.type == "multi":
            options = [o.id for o in item.options if o.id != "none"]
            nothing = ["none"] if len(options) < len(item.options) else options[:1]
            chosen = rng.random((n, len(options))) < 0.2
            columns[item.id] = [[o for o, c in zip(options, row, strict=True) if c] or nothing for row in chosen]
        elif item.type == "text":
            columns[item.id] = [f"Meer tijd om te leren, zegt nummer {r}." if r % 10 == 0 else None for r in range(n)]
        if not item.required:
            gaps = rng.random(n) < 0.04
            columns[item.id] = [None if g else v for v, g in zip(columns[item.id], gaps, strict=True)]
    names = list(columns)
    return [
        {k: v for k, v in zip(names, values, strict=True) if v is not None}
        for values in zip(*columns.values(), strict=True)
    ]


def fill(url: str, respondents: int, units: int, seed: int) -> int:
    """The organisation, the wave, its invitations and responses; the wave left closing. Returns the wave id."""
    rng = np.random.default_rng(seed)
    parent = _scoring_benchmark().synthetic_tree(units, 5, rng)
    instrument = load_definitions(REPO_ROOT / "survey_definitions")[("career-safety", 1)].instrument
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    now = utcnow()
    with transaction(factory) as session:
        session.execute(
            insert(Unit),
            [{"id": u + 1, "key": f"u{u}", "name": f"Unit {u}", "parent_id": None} for u in range(units)],
        )
        session.execute(
            update(Unit).execution_options(synchronize_session=False),
            [{"id": u + 1, "parent_id": int(p) + 1} for u, p in enumerate(parent) if p >= 0],
        )
        values = {name: [f"v{v}" for v in range(size)] for name, size in ATTRIBUTES.items()}
        wave = Wave(
            name="Benchmark",
            instrument="career-safety",
            version=1,
            opens_at=now - timedelta(days=14),
            closes_at=now,
            min_group_size=5,
            attributes=list(ATTRIBUTES),
            attribute_values=values,
            state="closing",
            opened_at=now - timedelta(days=14),
            closed_at=now,
        )
        session.add(wave)
        session.flush()
        wave_id = wave.id
        unit = rng.integers(0, units, respondents)
        invited = np.bincount(unit, minlength=units) + rng.integers(0, 4, units)
        session.execute(
            insert(Invitation),
            [
                {
                    "wave_id": wave_id,
                    "unit_id": u + 1,
                    "sealed_attributes": b"sealed",
                    "token_hash": secrets.token_hex(32),
                }
                for u in np.repeat(np.arange(units), invited).tolist()
            ],
        )
        codes = {name: rng.integers(0, size, respondents) for name, size in ATTRIBUTES.items()}
        answered = answers_of(instrument, respondents, unit, rng)
        day = date.today()
        batch = 10_000
        for start in range(0, respondents, batch):
            session.execute(
                insert(Response),
                [
                    {
                        "id": secrets.token_hex(16),
                        "wave_id": wave_id,
                        "unit_id": int(unit[r]) + 1,
                        "attributes": {name: values[name][int(codes[name][r])] for name in ATTRIBUTES},
                        "token_mac": secrets.token_hex(32),
                        "answers": answered[r],
                        "complete": True,
                        "answered_on": day,
                    }
                    for r in range(start, min(start + batch, respondents))
                ],
            )
    engine.dispose()
    return wave_id


def reopen(factory: Any, wave_id: int) -> None:
    """The wave back as HR's close leaves it: closing, no stored table, no lease."""
    with transaction(factory) as session:
        session.execute(delete(WaveResult).where(WaveResult.wave_id == wave_id))
        session.execute(
            update(Wave)
            .where(Wave.id == wave_id)
            .values(state="closing", close_attempts=0, close_owner=None, close_lease_until=None, close_error=None)
        )


def close_rounds(url: str, wave_id: int, rounds: int) -> list[dict[str, float]]:
    """The close job ``rounds`` times; each round's seconds per step and in all."""
    from service.waves import close

    instruments = load_definitions(REPO_ROOT / "survey_definitions")
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    measured = []
    try:
        for n in range(rounds):
            if n:
                reopen(factory, wave_id)
            start = time.perf_counter()
            [done] = close.run_due(factory, instruments)
            total = time.perf_counter() - start
            measured.append({**done.seconds, "total": total})
            steps = ", ".join(f"{k} {v:.2f}" for k, v in done.seconds.items())
            print(f"round {n + 1}: {total:.2f} s ({steps})", flush=True)
    finally:
        engine.dispose()
    return measured


def first_results_call(url: str, wave_id: int, data_dir: Path) -> tuple[float, float]:
    """Milliseconds of the first ``GET /waves/{id}/results`` after the close (the stored table read and decoded
    into the cache) and of ``GET /healthz`` on the same client, in process."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.keys import repository

    settings = Settings(env="test", database_url=url, secret_key=SECRET, data_dir=data_dir)  # type: ignore[arg-type]
    app = create_app(settings, scheduler=False)
    with TestClient(app) as client:
        with transaction(app.state.sessionmaker) as session:
            _row, key = repository.create(session, role="dashboard", name="bench")
        headers = {"Authorization": f"Bearer {key}"}
        client.get("/healthz")
        start = time.perf_counter()
        health = client.get("/healthz")
        healthz = time.perf_counter() - start
        start = time.perf_counter()
        answer = client.get(f"/api/v1/waves/{wave_id}/results", headers=headers)
        first = time.perf_counter() - start
        if answer.status_code != 200 or health.status_code != 200:
            raise SystemExit(f"results: {answer.status_code} {answer.text[:300]}")
    return first * 1000, healthz * 1000


def _summary(measured: list[dict[str, float]], step: str) -> tuple[float, float, float]:
    values = [m[step] for m in measured]
    return statistics.median(values), min(values), max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--respondents", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server's admin database; a database is made")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fill", nargs=2, metavar=("URL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill:  # the child: fill the database, report the wave id
        wave_id = fill(args.fill[0], args.respondents, args.units, args.seed)
        Path(args.fill[1]).write_text(json.dumps({"wave_id": wave_id}))
        return

    folder = Path(tempfile.mkdtemp(prefix="peil-close-"))
    name = None
    if args.postgres:
        name = f"peil_bench_{secrets.token_hex(4)}"
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    else:
        url = f"sqlite:///{folder / 'peil.db'}"
    try:
        _migrate(url)
        start = time.perf_counter()
        out = folder / "filled.json"
        fill_command = [sys.executable, __file__, "--fill", url, str(out), "--respondents", str(args.respondents)]
        fill_command += ["--units", str(args.units), "--seed", str(args.seed)]
        subprocess.run(fill_command, check=True)
        wave_id = json.loads(out.read_text())["wave_id"]
        database = "PostgreSQL" if args.postgres else "SQLite"
        print(
            f"{database}: {args.respondents:,} respondents in {args.units:,} units filled in "
            f"{time.perf_counter() - start:.0f} s (not timed); load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        measured = close_rounds(url, wave_id, args.rounds)
        first, healthz = first_results_call(url, wave_id, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if name is not None:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"first results call after the close: {first:.0f} ms (GET /healthz {healthz:.1f} ms on the same client)")
    print(f"peak memory of the closing process: {peak:.0f} MiB")
    steps = [s for s in measured[0] if s != "total"]
    spread = ", ".join(f"{s} {_summary(measured, s)[1]:.2f}-{_summary(measured, s)[2]:.2f}" for s in [*steps, "total"])
    print(f"median of {len(measured)} rounds; spread (min-max): {spread}")
    median = {s: _summary(measured, s)[0] for s in [*steps, "total"]}
    ratio = (median["load"] + median["store"]) / median["build"]
    print(f"store {median['store']:.2f} s = ResultTable.to_dict {median['store: to_dict']:.2f} s + JSON and gzip")
    print(
        f"commit {median['commit']:.2f} s; (load + store) / build = {ratio:.2f} (goal <= 1); "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"close {args.respondents} respondents: {median['total']:.2f} s (load {median['load']:.2f}, "
        f"build {median['build']:.2f}, store {median['store']:.2f}, export {median['export']:.2f})"
    )


if __name__ == "__main__":
    main()
