"""Benchmark of the scoring engine against a straightforward pandas implementation, measured in the same run.

    .venv/bin/python benchmarks/scoring.py            # 100,000 respondents, 40 items, 10,000 units in 5 levels
    .venv/bin/python benchmarks/scoring.py --small    # 10,000 respondents, 1,000 units: a quick run

In one run it times:

1. the whole unsuppressed table, like for like: ``pandas_whole_table`` (each respondent repeated for each
   ancestor unit, ``groupby().agg`` of n, mean and std and ``groupby().sum()`` of indicator columns per unit
   and per unit x attribute value, then the interval formulas on the aggregated columns) against
   ``scoring.cell_statistics``, the unsuppressed table build_table itself uses; checked equal on every figure;
2. the construct figures only: pandas' n, mean and std against ``cell_statistics(distributions=False)`` (which
   still computes intervals, favourable shares and eNPS); checked equal on every cell;
3. ``scoring.build_table``, the whole published table with the anonymity guard (suppression and its audit),
   reliability, changes and flags, in a child process with a timeout: the guard's ``suppress`` on the result
   cells alone once, then ``--builds`` whole tables (best and median: this VM's speed varies by a fifth between
   runs), then one more with its stages timed (``stage_times``: the guard on its thread; participation,
   comments, cell statistics, changes, reliability, flags on the calling thread), for where the time goes.

Pandas and the engine run alternately (best of ``--repeat`` each, and the spread of the pair ratios), so a
burst of load from elsewhere falls on both. It prints the times, the ratios and peak memory (tracemalloc in
process; peak RSS of the child).
Goals: the guarded table in <= 2 s on a 2-core machine; the unsuppressed table >= 5x faster than pandas.
"""

from __future__ import annotations

import argparse
import gc
import resource
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy import stats as scipy_stats

from scoring import build_table, cell_statistics, suppress_cells
from scoring.cells import SCALED, distribution_items, points
from scoring.loss import describe
from scoring.scales import construct_scores
from scoring.spec import (
    SCALE_BOUNDS,
    Attribute,
    BarrierRule,
    ConstructSpec,
    FlagRules,
    InstrumentSpec,
    ItemSpec,
    OrgTree,
    WaveData,
)


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
        rules = FlagRules(below=2.5 if scale == "likert5" else 3.5)
        if c == 3:
            rules = FlagRules(below=2.5, barrier=BarrierRule("barriers", 0.5, ignore=("none",)))
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
    person = {c.id: rng.normal(0, 0.7, n_respondents) for c in instrument.constructs}
    reverse = {i for c in instrument.constructs for i in c.reverse}
    answers = np.full((n_respondents, len(instrument.items)), np.nan)
    for j, item in enumerate(instrument.items):
        if item.type in ("likert5", "likert7"):
            high = 5 if item.type == "likert5" else 7
            level = high * 0.65 + team_effect + person[item.construct or ""]
            raw = np.clip(np.rint(rng.normal(level, 0.8)), 1, high)
            answers[:, j] = 1 + high - raw if item.id in reverse else raw
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
    long = _repeated(frame, data)

    def flat(table: pd.DataFrame) -> pd.DataFrame:
        table.columns = [f"{construct}:{figure}" for construct, figure in table.columns]
        return table

    tables = [flat(long.groupby("unit")[names].agg(["count", "mean", "std"])).assign(attribute=None, value=None)]
    for attribute in data.attributes:
        cut = flat(long.groupby(["unit", attribute.name])[names].agg(["count", "mean", "std"]))
        tables.append(
            cut.reset_index(level=1).rename(columns={attribute.name: "value"}).assign(attribute=attribute.name)
        )
    return pd.concat(tables)


def _repeated(frame: pd.DataFrame, data: WaveData) -> pd.DataFrame:
    """Each respondent's row repeated for their own unit and every ancestor (column ``unit``)."""
    parent = data.tree.parent
    frame["unit"] = data.unit
    rows = []
    current = frame
    while len(current):
        rows.append(current)
        up = parent[current["unit"].to_numpy()]
        current = current[up >= 0].assign(unit=up[up >= 0])
    return pd.concat(rows, ignore_index=True)


def pandas_whole_table(data: WaveData) -> list[pd.DataFrame]:
    """The whole unsuppressed table, the obvious way, like for like with ``cell_statistics``: per cell and
    construct n, mean, sd, t-interval, favourable share with its Wilson interval and the 0-100 index; eNPS with
    its interval; every item's distribution (answers per point or option) with its n and mean.

    Respondent-level columns (construct scores, favourable marks, eNPS categories, one uint8 indicator column
    per item point or option), each respondent repeated for each ancestor, ``groupby().agg`` for n, mean and
    std and ``groupby().sum()`` for the indicators, per unit and per unit x attribute value; then the interval
    formulas on the aggregated columns (t quantiles looked up once per distinct n, as the engine does).
    One frame per block of columns (the totals, then each attribute).
    """
    instrument = data.instrument
    scores = construct_scores(instrument, data.answers)
    names = [c.id for c in instrument.constructs]
    columns: dict[str, Any] = {name: scores.score[:, j] for j, name in enumerate(names)}
    columns |= {f"fav:{name}": scores.favourable[:, j].astype(np.uint8) for j, name in enumerate(names)}
    if scores.enps is not None:
        columns |= {f"enps:{v}": (scores.enps == v).astype(np.uint8) for v in (1, 0, -1)}
    items = distribution_items(instrument.items)
    for item in items:
        j = instrument.items.index(item)
        if item.type == "multi":
            chosen = np.asarray(data.multi[item.id])
            columns[f"answered:{item.id}"] = np.asarray(data.multi_answered[item.id]).astype(np.uint8)
            columns |= {f"{item.id}={o}": chosen[:, o].astype(np.uint8) for o in range(len(item.options))}
        else:
            low = SCALE_BOUNDS[item.type][0] if item.type in SCALED else 0
            columns |= {
                f"{item.id}={p}": (data.answers[:, j] == low + p).astype(np.uint8) for p in range(len(points(item)))
            }
    frame = pd.DataFrame(columns)
    for attribute in data.attributes:
        frame[attribute.name] = np.asarray(attribute.values, dtype=object)[attribute.codes]
    long = _repeated(frame, data)
    indicators = [c for c in columns if c not in names]
    bounds = {c.id: SCALE_BOUNDS[c.scale] for c in instrument.constructs}
    z = 1.959963984540054

    def block(keys: list[str]) -> pd.DataFrame:
        grouped = long.groupby(keys)
        moments = grouped[names].agg(["count", "mean", "std"])
        sums = grouped[indicators].sum()
        out: dict[str, Any] = {}
        for name in names:
            n, mean, sd = (moments[name][f].to_numpy() for f in ("count", "mean", "std"))
            table = np.full(int(n.max()) + 1, np.nan)
            table[2:] = scipy_stats.t.ppf(0.975, np.arange(1, table.size - 1))
            half = table[n] * sd / np.sqrt(n)
            fav = sums[f"fav:{name}"].to_numpy()
            centre, spread = (fav + z * z / 2) / (n + z * z), z * np.sqrt(fav * (n - fav) / n + z * z / 4) / (n + z * z)
            low, high = bounds[name]
            out |= {
                f"{name}:n": n, f"{name}:mean": mean, f"{name}:sd": sd,
                f"{name}:ci_low": mean - half, f"{name}:ci_high": mean + half,
                f"{name}:favourable": fav / n, f"{name}:fav_low": np.maximum(centre - spread, 0),
                f"{name}:fav_high": np.minimum(centre + spread, 1), f"{name}:index": (mean - low) * 100 / (high - low),
            }  # fmt: skip
        if scores.enps is not None:
            pp, pa, pd_ = (sums[f"enps:{v}"].to_numpy() for v in (1, 0, -1))
            n = pp + pa + pd_
            share_p, share_d = pp / n, pd_ / n
            score = 100 * (share_p - share_d)
            se = 100 * z * np.sqrt((share_p + share_d - (share_p - share_d) ** 2) / n)
            out |= {"enps:n": n, "enps:score": score, "enps:low": np.maximum(score - se, -100)}
            out["enps:high"] = np.minimum(score + se, 100)
        for item in items:
            counts = sums[[f"{item.id}={p}" for p in range(len(points(item)))]].to_numpy()
            out |= {f"{item.id}={p}": counts[:, p] for p in range(counts.shape[1])}
            n = sums[f"answered:{item.id}"].to_numpy() if item.type == "multi" else counts.sum(axis=1)
            out[f"{item.id}:n"] = n
            if item.type in SCALED:
                low = SCALE_BOUNDS[item.type][0]
                out[f"{item.id}:mean"] = counts @ np.arange(low, low + counts.shape[1]) / n
        return pd.DataFrame(out, index=moments.index)

    with np.errstate(invalid="ignore", divide="ignore"):
        return [block(["unit"])] + [block(["unit", a.name]) for a in data.attributes]


def check_whole_agree(data: WaveData, blocks: list[pd.DataFrame]) -> None:
    """The engine's favourable counts, eNPS, item distributions and every interval equal pandas' (totals and
    the first attribute's cut; n, mean and sd of every cut are checked by ``check_agree``)."""
    cells = cell_statistics(data)
    names = [c.id for c in data.instrument.constructs]
    first = data.attributes[0]
    for frame, column_of in (
        (blocks[0], lambda index: np.zeros(len(index), dtype=np.int64)),
        (blocks[1], lambda index: 1 + index.get_level_values(1).map({v: i for i, v in enumerate(first.values)})),
    ):
        units = frame.index.get_level_values(0).to_numpy()
        w = np.asarray(column_of(frame.index), dtype=np.int64)
        for j, name in enumerate(names):
            for f, field in enumerate(
                ("mean", "sd", "ci_low", "ci_high", "favourable", "fav_low", "fav_high", "index")
            ):
                np.testing.assert_allclose(
                    cells.construct_stats[f, units, w, j], frame[f"{name}:{field}"], rtol=1e-7, atol=1e-9
                )
        if cells.enps is not None:
            for f, field in ((0, "n"), (1, "score"), (2, "low"), (3, "high")):
                np.testing.assert_allclose(cells.enps[units, w, f], frame[f"enps:{field}"], rtol=1e-9, atol=1e-9)
        for i, item in enumerate(cells.items):
            start = int(cells.item_offsets[i])
            for p in range(len(points(item))):
                np.testing.assert_array_equal(cells.counts[units, w, start + p], frame[f"{item.id}={p}"])
            np.testing.assert_array_equal(cells.item_n[units, w, i], frame[f"{item.id}:n"])
            if item.type in SCALED:
                np.testing.assert_allclose(cells.item_mean[units, w, i], frame[f"{item.id}:mean"], rtol=1e-9)


def paired(baseline: Callable[[], Any], engine: Callable[[], Any], repeat: int) -> tuple[float, float, list[float]]:
    """Best wall times of ``baseline`` and ``engine``, run alternately ``repeat`` times each (after a warm-up
    of each), and the ratio of each pair: a burst of load from elsewhere falls on both sides, not on one."""
    baseline()
    engine()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, out in ((baseline, times[0]), (engine, times[1])):
            gc.collect()
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return min(times[0]), min(times[1]), [b / e for b, e in zip(*times, strict=True)]


def peak_memory(fn: Callable[[], Any]) -> float:
    """Peak traced memory of one run, MiB (tracemalloc sees numpy's buffers too)."""
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def check_agree(data: WaveData, frame: pd.DataFrame) -> None:
    """The engine's unsuppressed n, mean and sd equal pandas' for the unit totals and every cut."""
    cells = cell_statistics(data, distributions=False)
    columns = {c: w for w, c in enumerate(cells.layout.columns)}
    for attribute, value in columns:
        if attribute is None:
            part = frame[frame["attribute"].isna()]
        else:
            part = frame[(frame["attribute"] == attribute) & (frame["value"] == value)]
        units, w = part.index.to_numpy(), columns[(attribute, value)]
        for j, construct in enumerate(data.instrument.constructs):
            count = part[f"{construct.id}:count"].to_numpy()
            np.testing.assert_array_equal(cells.construct_n[units, w, j], count)
            np.testing.assert_allclose(cells.construct_stats[0, units, w, j], part[f"{construct.id}:mean"], rtol=1e-9)
            sd = part[f"{construct.id}:std"].to_numpy()
            np.testing.assert_allclose(cells.construct_stats[1, units, w, j], sd, rtol=1e-7, atol=1e-9)


# The stages of build_table, by the functions of scoring.build that make them (the guard: every suppress_partition
# call, wherever it is made; the other stages exclude the guard calls inside them).
STAGES: dict[str, tuple[str, ...]] = {
    "guard": ("suppress_partition", "guard_cells"),
    "cell_statistics": ("cell_statistics",),
    "participation": ("participation_cells",),
    "comments": ("_comments",),
    "changes": ("_previous_wave", "_change_tests", "_changes"),
    "reliability": ("_reliability",),
    "flags": (
        "_team_moments",
        "_score_moments",
        "_org_baseline",
        "_multi_totals",
        "below_flags",
        "below_org_flags",
        "decline_flags",
        "barrier_flags",
        "participation_flags",
    ),
    "cell_arrays": ("_cell_arrays",),
}


def stage_times(build: Callable[[], Any]) -> tuple[float, dict[str, float]]:
    """Run ``build`` (a build_table call) with the stage functions of ``scoring.build`` timed: the whole wall time
    and seconds per stage of the calling thread; a stage's time excludes the guard calls inside it, and a stage
    function called inside another stage counts for the outer one. build_table runs the guard on the result cells
    on a thread of its own: its wall time is ``guard_thread``, and ``guard_done_at`` when it ended (from the
    start); what the calling thread does after it is the whole time less that."""
    from scoring import build as module

    spent = dict.fromkeys(STAGES, 0.0) | {"guard_thread": 0.0, "guard_done_at": 0.0}
    active: list[str] = []
    lock = threading.Lock()
    begin = time.perf_counter()

    def timed(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not threading.main_thread():
                start = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    with lock:
                        spent["guard_thread"] += time.perf_counter() - start
                        spent["guard_done_at"] = time.perf_counter() - begin
            if active and stage != "guard":
                return fn(*args, **kwargs)
            start = time.perf_counter()
            active.append(stage)
            try:
                return fn(*args, **kwargs)
            finally:
                active.pop()
                took = time.perf_counter() - start
                spent[stage] += took
                if active:
                    spent[active[-1]] -= took

        return call

    originals = {name: getattr(module, name) for names in STAGES.values() for name in names if hasattr(module, name)}
    for stage, names in STAGES.items():
        for name in names:
            if name in originals:
                setattr(module, name, timed(stage, originals[name]))
    try:
        gc.collect()
        begin = time.perf_counter()
        build()
        whole = time.perf_counter() - begin
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)
    return whole, spent


def guarded(respondents: int, units: int, previous: bool, builds: int) -> None:
    """Child process: time the guard on its own once, then build_table ``builds`` times (the times and their best
    and median), printing one line per result as it comes; then once more with its stages timed
    (``stage_times``), for where the time goes."""
    data = synthetic_wave(respondents, units, 5)
    before = synthetic_wave(respondents, units, 5, seed=8, wave_id=1, shift=0.1) if previous else None
    shown = detailed = None
    if before is not None:
        # As the service does: the previous wave's table was built when it closed; changes follow its stored
        # pattern (built here, untimed).
        guarded = suppress_cells(before, construct_scores(before.instrument, before.answers))
        hidden, withheld = guarded.cells.hidden[:, 0], guarded.details.hidden[:, 0]
        shown = {key for key, h in zip(before.tree.keys, hidden, strict=True) if not h}
        detailed = {key for key, h in zip(before.tree.keys, withheld, strict=True) if not h}
    start = time.perf_counter()
    scores = construct_scores(data.instrument, data.answers)
    suppress_cells(data, scores)
    print(f"guard {time.perf_counter() - start:.3f}", flush=True)
    times = []
    for _ in range(builds):
        gc.collect()
        start = time.perf_counter()
        table = build_table(data, before, previous_published=shown, previous_detailed=detailed)
        times.append(time.perf_counter() - start)
    print(f"tables {' '.join(f'{t:.3f}' for t in times)}", flush=True)
    print(f"table {min(times):.3f}", flush=True)
    print(f"median {float(np.median(times)):.3f}", flush=True)
    hidden = sum(c.suppressed for c in table.cells)
    print(f"cells {len(table.cells)} {hidden} {len(table.flags)}", flush=True)
    if table.publication is not None:
        for k, line in enumerate(describe(table.publication, data.min_group_size)):
            print(f"publication:{k:02d} {line}", flush=True)
    print(f"maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}", flush=True)
    del table
    whole, spent = stage_times(lambda: build_table(data, before, previous_published=shown, previous_detailed=detailed))
    print(f"again {whole:.3f}", flush=True)
    for stage, seconds in spent.items():
        print(f"stage:{stage} {seconds:.3f}", flush=True)


def run_guarded(respondents: int, units: int, previous: bool, builds: int, timeout: float) -> dict[str, str]:
    """Run ``guarded`` in a child process (so a slow guard can be timed out) and collect what it printed."""
    command = [sys.executable, __file__, "--child", str(respondents), str(units), "1" if previous else "0", str(builds)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        output, status = done.stdout, "" if done.returncode == 0 else f"failed: {done.stderr.strip()[-300:]}"
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        status = f"did not finish within {timeout:.0f} s"
    found = dict(line.split(" ", 1) for line in output.splitlines() if " " in line)
    found["status"] = status
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="10,000 respondents and 1,000 units")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (best is reported)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed for each guarded build")
    parser.add_argument("--builds", type=int, default=5, help="guarded tables built per child process")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        guarded(int(args.child[0]), int(args.child[1]), args.child[2] == "1", int(args.child[3]))
        return
    respondents, units = (10_000, 1_000) if args.small else (100_000, 10_000)
    data = synthetic_wave(respondents, units, 5)
    print(
        f"synthetic wave: {respondents:,} respondents, {len(data.instrument.items)} items "
        f"({len(data.instrument.constructs)} constructs), {units:,} units in 5 levels, "
        f"attributes with {[len(a.values) for a in data.attributes]} values, "
        f"{units * (1 + sum(len(a.values) for a in data.attributes)):,} cells"
    )
    check_agree(data, pandas_table(data))
    check_whole_agree(data, pandas_whole_table(data))
    t_whole_pandas, t_all, whole_ratios = paired(
        lambda: pandas_whole_table(data), lambda: cell_statistics(data), args.repeat
    )
    t_pandas, t_constructs, construct_ratios = paired(
        lambda: pandas_table(data), lambda: cell_statistics(data, distributions=False), args.repeat
    )

    def spread(ratios: list[float]) -> str:
        return f"pairs {min(ratios):.1f}x to {max(ratios):.1f}x, median {float(np.median(ratios)):.1f}x"

    print(
        f"unsuppressed table (best of {args.repeat} runs of each, pandas and engine alternating; all include the "
        "construct scores; results checked equal):"
    )
    print("  the whole table, like for like (what build_table uses):")
    print(
        f"    pandas: repeat per ancestor, groupby().agg/sum, then the formulas     {t_whole_pandas:7.3f} s\n"
        f"    cell_statistics                                                       {t_all:7.3f} s  "
        f"{t_whole_pandas / t_all:4.1f}x faster  (goal >= 5x; {spread(whole_ratios)})"
    )
    print("  the construct figures only:")
    print(
        f"    pandas: groupby().agg n/mean/std (no intervals, shares, eNPS)         {t_pandas:7.3f} s\n"
        f"    cell_statistics(distributions=False), with intervals, shares, eNPS    {t_constructs:7.3f} s  "
        f"{t_pandas / t_constructs:4.1f}x faster  ({spread(construct_ratios)})"
    )
    print(
        f"  peak memory: pandas whole table {peak_memory(lambda: pandas_whole_table(data)):.0f} MiB, "
        f"cell_statistics {peak_memory(lambda: cell_statistics(data)):.0f} MiB"
    )
    print(f"guarded table (scoring.build_table in a child process, timeout {args.timeout:.0f} s):")
    for previous in (False, True):
        found = run_guarded(respondents, units, previous, args.builds, args.timeout)
        label = "with changes against a previous wave" if previous else "without a previous wave"
        if "table" in found:
            n_cells, hidden, flags = found["cells"].split()
            print(
                f"  {label}: {float(found['table']):.3f} s best of {args.builds} (median {float(found['median']):.3f}; "
                f"goal <= 2 s; each: {found['tables']}); the guard's suppress on the result cells alone "
                f"{float(found['guard']):.3f} s; {int(n_cells):,} cells, {int(hidden):,} hidden, {flags} flags; "
                f"peak RSS {found['maxrss']} MiB"
            )
            for key in sorted(k for k in found if k.startswith("publication:")):
                print(f"    {found[key]}")
            if "again" in found:
                stages = {key.split(":", 1)[1]: float(v) for key, v in found.items() if key.startswith("stage:")}
                again = float(found["again"])
                guard_thread, done_at = stages.pop("guard_thread"), stages.pop("guard_done_at")
                busy = sum(stages.values())
                parts = ", ".join(f"{stage} {seconds:.3f}" for stage, seconds in stages.items() if seconds >= 0.0005)
                print(
                    f"    built again with its stages timed: {again:.3f} s. Guard thread: the result cells' guard "
                    f"{guard_thread:.3f} s, done at {done_at:.3f} s. Calling thread: {parts} "
                    f"(the guard calls inside participation and comments counted as guard), other (scores, tree, "
                    f"assembly) and waiting {again - busy:.3f}; after the guard {again - done_at:.3f} s"
                )
        else:
            guard = f"guard alone {float(found['guard']):.3f} s" if "guard" in found else "the guard did not finish"
            print(f"  {label}: {found['status']} ({guard})")


if __name__ == "__main__":
    main()
