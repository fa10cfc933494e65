"""Benchmark of the scoring engine against a straightforward pandas implementation, measured in the same run.

    .venv/bin/python benchmarks/scoring.py            # 100,000 respondents, 40 items, 10,000 units in 5 levels
    .venv/bin/python benchmarks/scoring.py --small    # 10,000 respondents, 1,000 units: a quick run

It times (1) ``scoring.build_table``: the whole published table with suppression and its audit, reliability,
changes and flags; (2) ``scoring.cell_statistics``: the unsuppressed table (the very function build_table
uses), and (3) pandas: each respondent repeated for each ancestor unit, then ``groupby().agg`` of n, mean and
std per construct, for unit totals and for each attribute cut. It checks that (2) and (3) agree, and prints
the times, their ratio and the peak memory (tracemalloc, Python allocations including numpy's).
Goals: the guarded table in <= 2 s on a 2-core machine; the unsuppressed table >= 5x faster than pandas.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring import build_table, cell_statistics
from scoring.scales import construct_scores
from scoring.spec import (
    Attribute,
    BarrierRule,
    ConstructSpec,
    FlagRules,
    InstrumentSpec,
    ItemSpec,
    OrgTree,
    WaveData,
)

T = TypeVar("T")


def synthetic_tree(n_units: int, levels: int, rng: np.random.Generator) -> np.ndarray:
    """A single-root tree of ``n_units`` in ``levels`` levels, each level ~3.5x wider than the one above."""
    widths = np.geomspace(1, n_units * 0.7, levels)
    widths = np.maximum(1, np.round(widths / widths.sum() * n_units)).astype(int)
    widths[0] = 1
    widths[-1] += n_units - widths.sum()
    parent = np.full(n_units, -1, dtype=np.int64)
    start = 1
    above = np.array([0])
    for width in widths[1:]:
        level = np.arange(start, start + width)
        parent[level] = np.sort(rng.choice(above, size=width))
        above, start = level, start + width
    return parent


def synthetic_instrument(n_items: int) -> InstrumentSpec:
    """8 constructs of 4 likert items (one on 7 points), an eNPS item, and single, multi and text items."""
    items: list[ItemSpec] = []
    constructs = []
    for c in range(8):
        scale = "likert7" if c == 0 else "likert5"
        ids = tuple(f"c{c}_i{i}" for i in range(4))
        items += [ItemSpec(i, scale, f"c{c}") for i in ids]
        rules = FlagRules(below=3.0 if scale == "likert5" else 4.0)
        if c == 3:
            rules = FlagRules(below=3.0, barrier=BarrierRule("barriers", 0.4, ignore=("none",)))
        constructs.append(
            ConstructSpec(
                f"c{c}",
                scale,  # type: ignore[arg-type]
                ids,
                frozenset(ids[:1]),
                min_answered=3,
                favourable_min=5.0 if scale == "likert7" else 4.0,
                flags=rules,
            )
        )
    items.append(ItemSpec("enps", "nps", "enps"))
    constructs.append(ConstructSpec("enps", "nps", ("enps",), favourable_min=9.0, flags=FlagRules(below=-20)))
    items += [ItemSpec(f"single{s}", "single", None, ("a", "b", "c", "d")) for s in range(n_items - len(items) - 3)]
    items.append(ItemSpec("barriers", "multi", None, ("manager", "vacancies", "loyalty", "none")))
    items.append(ItemSpec("learning", "multi", None, ("course", "coach", "job")))
    items.append(ItemSpec("grow", "text"))
    return InstrumentSpec("bench", 1, tuple(items), tuple(constructs))


def synthetic_wave(
    n_respondents: int, n_units: int, levels: int, seed: int = 7, wave_id: int = 2, shift: float = 0.0
) -> WaveData:
    """Answers with team effects (so that ICC, shrinkage and flags have something to find), 5 % gaps."""
    rng = np.random.default_rng(seed)
    parent = synthetic_tree(n_units, levels, rng)
    instrument = synthetic_instrument(40)
    unit = rng.integers(0, n_units, n_respondents)
    team_effect = rng.normal(0, 0.4, n_units)[unit] + shift
    answers = np.full((n_respondents, len(instrument.items)), np.nan)
    for j, item in enumerate(instrument.items):
        if item.type in ("likert5", "likert7"):
            high = 5 if item.type == "likert5" else 7
            raw = np.rint(rng.normal(high * 0.65 + team_effect, 1.0))
            answers[:, j] = np.clip(raw, 1, high)
        elif item.type == "nps":
            answers[:, j] = np.clip(np.rint(rng.normal(7 + 2 * team_effect, 2.0)), 0, 10)
        elif item.type == "single":
            answers[:, j] = rng.integers(0, len(item.options), n_respondents)
    answers[rng.random(answers.shape) < 0.05] = np.nan
    multi = {i.id: rng.random((n_respondents, len(i.options))) < 0.3 for i in instrument.items if i.type == "multi"}
    multi_answered = {k: v.any(axis=1) for k, v in multi.items()}
    attributes = tuple(
        Attribute(name, tuple(f"v{v}" for v in range(size)), rng.integers(0, size, n_respondents))
        for name, size in (("tenure", 4), ("location", 6), ("contract", 2))
    )
    writers = np.flatnonzero(rng.random(n_respondents) < 0.1)
    invited = np.bincount(unit, minlength=n_units) + rng.integers(0, 4, n_units)
    return WaveData(
        wave_id=wave_id,
        instrument=instrument,
        tree=OrgTree(tuple(f"u{i}" for i in range(n_units)), parent),
        min_group_size=5,
        unit=unit,
        attributes=attributes,
        answers=answers,
        multi=multi,
        multi_answered=multi_answered,
        comments={"grow": tuple((int(r), f"comment {r}") for r in writers)},
        invited=invited,
        invited_attributes={},
    )


def pandas_table(data: WaveData) -> pd.DataFrame:
    """The unsuppressed construct table the obvious way: respondents x ancestors, then groupby().agg."""
    scores = construct_scores(data.instrument, data.answers).score
    names = [c.id for c in data.instrument.constructs]
    frame = pd.DataFrame(scores, columns=names)
    for attribute in data.attributes:
        frame[attribute.name] = np.asarray(attribute.values, dtype=object)[attribute.codes]
    parent = data.tree.parent
    frame["unit"] = data.unit
    rows = []
    current = frame
    while len(current):  # each respondent repeated for its own unit and every ancestor
        rows.append(current)
        up = parent[current["unit"].to_numpy()]
        current = current[up >= 0].assign(unit=up[up >= 0])
    long = pd.concat(rows, ignore_index=True)
    tables = [long.groupby("unit")[names].agg(["count", "mean", "std"]).assign(attribute=None, value=None)]
    for attribute in data.attributes:
        cut = long.groupby(["unit", attribute.name])[names].agg(["count", "mean", "std"])
        tables.append(
            cut.reset_index(level=1).rename(columns={attribute.name: "value"}).assign(attribute=attribute.name)
        )
    return pd.concat(tables)


def timed(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Best wall time of ``repeat`` runs (after a warm-up run) and the last result."""
    result = fn()
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_memory(fn: Callable[[], Any]) -> float:
    """Peak traced memory of one run, MiB."""
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def check_agree(data: WaveData, frame: pd.DataFrame) -> None:
    """The engine's unsuppressed means equal pandas' for the unit totals (to 1e-9)."""
    cells = cell_statistics(data)
    totals = frame[frame["attribute"].isna()]
    for j, construct in enumerate(data.instrument.constructs):
        units = totals.index.to_numpy()
        np.testing.assert_array_equal(cells.construct_n[units, 0, j], totals[(construct.id, "count")].to_numpy())
        np.testing.assert_allclose(
            cells.construct_stats[units, 0, j, 0], totals[(construct.id, "mean")].to_numpy(), rtol=1e-9
        )
        np.testing.assert_allclose(
            cells.construct_stats[units, 0, j, 1], totals[(construct.id, "std")].to_numpy(), rtol=1e-7, atol=1e-9
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="10,000 respondents and 1,000 units")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    respondents, units = (10_000, 1_000) if args.small else (100_000, 10_000)
    data = synthetic_wave(respondents, units, 5)
    previous = synthetic_wave(respondents, units, 5, seed=8, wave_id=1, shift=0.1)
    print(
        f"synthetic wave: {respondents:,} respondents, {len(data.instrument.items)} items, "
        f"{units:,} units in 5 levels, attributes with {[len(a.values) for a in data.attributes]} values"
    )

    t_pandas, frame = timed(lambda: pandas_table(data), args.repeat)
    check_agree(data, frame)
    t_cells, _ = timed(lambda: cell_statistics(data), args.repeat)
    t_table, table = timed(lambda: build_table(data, None), args.repeat)
    t_change, _ = timed(lambda: build_table(data, previous), args.repeat)
    hidden = sum(1 for _ in ())
    arrays = getattr(table.cells, "arrays", None)
    if arrays is not None:
        hidden = int(arrays.hidden.sum())
    print(f"pandas, unsuppressed (n/mean/std per construct):   {t_pandas:8.3f} s")
    print(f"scoring.cell_statistics, unsuppressed (all cells): {t_cells:8.3f} s   {t_pandas / t_cells:5.1f}x faster")
    print(f"scoring.build_table, guarded, no previous wave:    {t_table:8.3f} s   goal <= 2 s")
    print(f"scoring.build_table, guarded, with changes:        {t_change:8.3f} s")
    print(f"cells: {len(table.cells):,}, hidden: {hidden:,}, flags: {len(table.flags):,}")
    print(f"peak memory: pandas {peak_memory(lambda: pandas_table(data)):.0f} MiB, ", end="")
    print(f"cell_statistics {peak_memory(lambda: cell_statistics(data)):.0f} MiB, ", end="")
    print(f"build_table with changes {peak_memory(lambda: build_table(data, previous)):.0f} MiB")


if __name__ == "__main__":
    main()
