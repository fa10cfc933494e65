"""Benchmark of the results API and the HR pages on the demo data, against GET /healthz in the same run.

    .venv/bin/python benchmarks/results.py              # 200 calls per endpoint
    .venv/bin/python benchmarks/results.py --calls 500
    .venv/bin/python benchmarks/results.py --database /tmp/peil-bench.db   # keep the demo database; reuse it next time

It migrates a temporary SQLite database, loads `peil demo` into it (which closes the demo wave through the same
close path as the API, so its result table is built and stored once, and times that), then runs only the ASGI app,
in process, through Starlette's test client (no network, no server). Each endpoint gets one cold call (the stored
table is read and decompressed into this process's cache) and then ``--calls`` timed calls. It prints the median
and p99 per endpoint, and the ratio of the median to the median of GET /healthz measured the same way in the same
run (the cost of the client, routing and middleware that every call pays). The HR pages are timed the same way,
signed in through the sign-in form as hr and as a manager of one division. Goals: results calls under 20 ms and
pages under 100 ms at the median. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.config import REPO_ROOT, Settings
from service.db import transaction
from service.demo import run as demo
from service.keys import repository
from service.models import Wave, WaveResult

MANAGED = "div-3"  # the demo division whose manager's pages are timed too


def _migrate(url: str) -> None:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


def _times(client: TestClient, path: str, headers: dict[str, str], calls: int) -> tuple[float, list[float]]:
    """The cold first call and ``calls`` warm ones, in milliseconds; every answer must be a 200."""
    timings = []
    for _ in range(calls + 1):
        start = time.perf_counter()
        response = client.get(path, headers=headers)
        timings.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code} {response.text[:300]}")
    return timings[0], timings[1:]


def _sign_in(client: TestClient, key: str) -> None:
    """Sign in to the HR pages as a browser does: the form (its token and cookie), then the key."""
    form = client.get("/hr/login")
    token = re.search(r'name="_csrf" value="([^"]+)"', form.text)
    if token is None:
        raise SystemExit("the sign-in form has no token")
    done = client.post("/hr/login", data={"key": key, "_csrf": token.group(1)}, follow_redirects=False)
    if done.status_code != 303:
        raise SystemExit(f"signing in failed: {done.status_code}")


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--database", type=Path, help="a SQLite file to keep (and reuse if it holds the demo)")
    args = parser.parse_args()
    logging.getLogger("peil").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="peil-bench-") as folder:
        database = args.database or Path(folder) / "peil.db"
        reuse = database.exists()
        url = f"sqlite:///{database.resolve()}"
        settings = Settings(
            env="test",
            database_url=url,
            secret_key="b" * 48,  # type: ignore[arg-type]
            data_dir=Path(folder) / "data",
            base_url="http://127.0.0.1:8000",
        )
        _migrate(url)
        if not reuse:
            start = time.perf_counter()
            for line in demo(settings):
                if line.startswith("Demo organisation"):
                    print(line)
            print(f"demo loaded, wave closed and its table built in {time.perf_counter() - start:.1f} s")

        app = create_app(settings, scheduler=False)
        with TestClient(app) as client:
            with transaction(app.state.sessionmaker) as session:
                _row, key = repository.create(session, role="dashboard", name="benchmark")
                _row, hr = repository.create(session, role="hr", name="benchmark pages")
                _row, manager = repository.create(session, role="manager", name="benchmark", unit=MANAGED)
                wave_id = session.scalar(select(Wave.id).where(Wave.state == "closed"))
                stored = session.get(WaveResult, wave_id) if wave_id is not None else None
                if stored is None:
                    raise SystemExit("the demo's closed wave has no stored result table: see the log above")
                print(f"wave {wave_id}: stored table {len(stored.table) / 1024:.0f} KiB gzipped JSON")
            headers = {"Authorization": f"Bearer {key}"}
            api = f"/api/v1/waves/{wave_id}"
            paths = {
                "GET /healthz (baseline)": "/healthz",
                "GET /results": f"{api}/results",
                "GET /results?unit=div-3-dep-1&by=location": f"{api}/results?unit=div-3-dep-1&by=location",
                "GET /heatmap": f"{api}/heatmap",
                "GET /flags": f"{api}/flags",
            }
            measured = {name: _times(client, path, headers, args.calls) for name, path in paths.items()}
            pages = {
                "page /hr/waves": "/hr/waves",
                "page heatmap": f"/hr/waves/{wave_id}",
                "page heatmap, all open, by location": f"/hr/waves/{wave_id}?open=*&by=location",
                "page unit (a department)": f"/hr/waves/{wave_id}/units/{MANAGED}-dep-1",
                "page unit (a division)": f"/hr/waves/{wave_id}/units/{MANAGED}",
                "page flags": f"/hr/waves/{wave_id}/flags",
                "page heatmap.csv": f"/hr/waves/{wave_id}/heatmap.csv",
            }
            _sign_in(client, hr)
            measured |= {name: _times(client, path, {}, args.calls) for name, path in pages.items()}
            client.cookies.clear()
            _sign_in(client, manager)
            measured["page heatmap, manager"] = _times(client, f"/hr/waves/{wave_id}", {}, args.calls)

    baseline = statistics.median(measured["GET /healthz (baseline)"][1])
    print(f"\n{args.calls} calls each, in process (Starlette test client, SQLite, one thread)")
    print(f"{'endpoint':42} {'cold ms':>9} {'median ms':>10} {'p99 ms':>8} {'x healthz':>10}")
    for name, (cold, warm) in measured.items():
        median = statistics.median(warm)
        print(f"{name:42} {cold:9.2f} {median:10.2f} {_p99(warm):8.2f} {median / baseline:10.1f}")
    api = max(statistics.median(w) for n, (_c, w) in measured.items() if n.startswith("GET /") and "healthz" not in n)
    page = max(statistics.median(w) for n, (_c, w) in measured.items() if n.startswith("page"))
    print(f"\ngoal: results calls under 20 ms at the median; slowest median here {api:.2f} ms")
    print(f"goal: pages under 100 ms at the median; slowest median here {page:.2f} ms")


if __name__ == "__main__":
    main()
