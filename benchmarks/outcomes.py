"""Outcome tables and drivers, each against a baseline measured in the same run.

    .venv/bin/python benchmarks/outcomes.py            # 10,000 units in 5 levels, 100,000 people / respondents
    .venv/bin/python benchmarks/outcomes.py --small    # 1,000 units, 10,000

1. ``scoring.outcome_table`` (one period: seven counts rolled up, the guard on the people behind the rates and
   again on the promoted, the cells) against the guard alone, once, on the same tree and the same people
   (``scoring.tree_guard.suppress_tree``): what an upload costs per period beyond its one unavoidable step.
2. ``scoring.build_table`` with its drivers (correlations with eNPS and intention to stay, their guard, focus
   areas) against the same build with the drivers left out (``wave_correlations`` answering no pairs), on the
   scoring benchmark's organisation with an intention-to-stay item added.

Engine and baseline alternate (``--repeat`` pairs); it prints the median and the spread of each and of the pair
ratios, and the load average, since other work on the machine moves the figures. Figures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring import build as build_module
from scoring import build_table
from scoring.drivers import Correlations
from scoring.outcomes import OutcomeCounts, outcome_table
from scoring.spec import ItemSpec, OrgTree, WaveData
from scoring.tree_guard import Counted, suppress_tree

_SPEC = importlib.util.spec_from_file_location("scoring_benchmark", Path(__file__).with_name("scoring.py"))
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def synthetic_counts(n_units: int, people: int, rng: np.random.Generator) -> tuple[OrgTree, OutcomeCounts]:
    """Counts at the leaves of the scoring benchmark's tree: about ``people`` in all, 2-3 % leaving per period."""
    parent = bench.synthetic_tree(n_units, 5, rng)
    leaf = ~np.isin(np.arange(n_units), parent)
    start = np.where(leaf, rng.poisson(people / max(int(leaf.sum()), 1), n_units), 0)
    end = np.maximum(start + rng.integers(-2, 3, n_units), 0) * leaf
    most = np.maximum(start, end)
    counts = OutcomeCounts(
        headcount_start=start.astype(np.int64),
        headcount_end=end.astype(np.int64),
        leavers=rng.binomial(most, 0.025),
        moves_in=rng.binomial(most, 0.02),
        moves_out=rng.binomial(most, 0.02),
        promotions=(promotions := rng.binomial(most, 0.05)),
        months_waited=promotions * rng.uniform(6, 30, n_units),
    )
    return OrgTree(tuple(f"u{i}" for i in range(n_units)), parent), counts


def with_intention(data: WaveData, rng: np.random.Generator) -> WaveData:
    """The wave with an intention-to-stay item (``ca_future_here``) that goes with its first construct."""
    items = (*data.instrument.items, ItemSpec("ca_future_here", "likert5", None))
    first = data.instrument.constructs[0]
    column = [i.id for i in data.instrument.items].index(first.items[0])
    base = np.nan_to_num(data.answers[:, column], nan=3.0)
    intention = np.clip(np.rint(base + rng.normal(0, 1, base.size)), 1, 5)
    return replace(
        data,
        instrument=replace(data.instrument, items=items),
        answers=np.column_stack([data.answers, intention]),
    )


def alternate(engine: Callable[[], Any], baseline: Callable[[], Any], repeat: int) -> tuple[list[float], list[float]]:
    engine_times, baseline_times = [], []
    for _ in range(repeat):
        for fn, times in ((baseline, baseline_times), (engine, engine_times)):
            gc.collect()
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return engine_times, baseline_times


def report(label: str, engine: list[float], baseline: list[float], names: tuple[str, str]) -> None:
    ratios = [e / b for e, b in zip(engine, baseline, strict=True)]

    def spread(x: list[float]) -> str:
        return f"median {float(np.median(x)):.3f} s ({min(x):.3f}-{max(x):.3f})"

    print(f"{label}:")
    print(f"  {names[1]:<44} {spread(baseline)}")
    print(f"  {names[0]:<44} {spread(engine)}")
    print(
        f"  ratio {float(np.median(ratios)):.2f}x median (pairs {min(ratios):.2f}x to {max(ratios):.2f}x), "
        f"load {os.getloadavg()[0]:.2f}"
    )


def _no_pairs(data: WaveData, scores: Any, plan: Any) -> Correlations:
    n = len(data.tree.keys)
    empty = np.zeros((n, 0))
    return Correlations((), empty.astype(np.int64), empty, empty, empty, np.zeros(n, dtype=np.bool_))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="1,000 units, 10,000 people")
    parser.add_argument("--repeat", type=int, default=5, help="pairs of timed runs")
    args = parser.parse_args()
    units, people = (1_000, 10_000) if args.small else (10_000, 100_000)
    rng = np.random.default_rng(11)

    tree, counts = synthetic_counts(units, people, rng)
    rows = np.maximum(counts.headcount_start, counts.headcount_end)
    print(f"outcomes: {units:,} units, {int(rows.sum()):,} people (the larger headcount of each unit)")
    unit = np.repeat(np.arange(units), rows)
    everyone = [Counted(np.ones(unit.size, dtype=np.bool_))]
    engine, baseline = alternate(
        lambda: outcome_table("2026-Q1", tree, counts, 5),
        lambda: suppress_tree(tree.parent, unit, 5, everyone),
        args.repeat,
    )
    report("one period's outcome table", engine, baseline, ("outcome_table", "the guard once (same people)"))

    data = with_intention(bench.synthetic_wave(people, units, 5), rng)
    print(f"drivers: {people:,} respondents, {units:,} units, {len(data.instrument.constructs)} constructs")
    original = build_module.wave_correlations

    def without() -> Any:
        build_module.wave_correlations = _no_pairs  # type: ignore[assignment]
        try:
            return build_table(data)
        finally:
            build_module.wave_correlations = original

    table = build_table(data)
    shown = {r.unit for r in table.drivers.relations}
    print(f"  {len(shown)} units with drivers, {len(table.drivers.relations)} relations, "
          f"{len(table.drivers.focus_areas)} focus areas")  # fmt: skip
    engine, baseline = alternate(lambda: build_table(data), without, args.repeat)
    report("build_table", engine, baseline, ("with drivers", "drivers left out"))


if __name__ == "__main__":
    main()
