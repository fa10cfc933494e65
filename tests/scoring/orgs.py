"""Organisations for the guard's tests: hand-made trees built to break naive suppression, and random trees with
random answers (Hypothesis), each with what the independent attacker finds in a pattern."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from scoring.layout import Statistic
from tests.scoring.attacker import attack
from tests.scoring.exact_guard import suppress

LO, HI = 1.0, 5.0


@dataclass(frozen=True)
class Org:
    parent: list[int]
    unit: np.ndarray
    codes: np.ndarray
    n_values: tuple[int, ...]
    k: int
    values: np.ndarray  # answers on 1..5
    present: np.ndarray  # who answered the scored statistic

    @property
    def width(self) -> int:
        return 1 + sum(self.n_values)

    def members(self, u: int, column: int) -> np.ndarray:
        """Who is in cell (u, column): the unit's subtree, with the cut's attribute value when column > 0."""
        inside = np.zeros(len(self.unit), dtype=bool)
        for r in range(len(self.unit)):
            v = int(self.unit[r])
            while v >= 0 and v != u:
                v = self.parent[v]
            inside[r] = v == u
        if column > 0:
            offsets = np.cumsum((1, *self.n_values))[:-1]
            a = int(np.searchsorted(offsets, column, side="right")) - 1
            inside &= self.codes[:, a] == column - offsets[a]
        return inside

    def statistics(self, *, bounds: bool = True) -> list[Statistic]:
        everyone = np.ones(len(self.unit), dtype=bool)
        vals = np.where(self.present, self.values, np.nan)
        return [
            Statistic(everyone, None, None, "respondents"),
            Statistic(self.present, vals, (LO, HI) if bounds else None, "score"),
        ]

    def primary(self) -> np.ndarray:
        """The naive pattern: cells with 1..k-1 respondents (for any statistic), computed from scratch."""
        hidden = np.zeros((len(self.parent), self.width), dtype=bool)
        for mask in (np.ones(len(self.unit), dtype=bool), self.present):
            n = cell_counts(self, mask)
            hidden |= (n >= 1) & (n < self.k)
        return hidden

    def attacks(self, hidden: np.ndarray, stats: list[Statistic] | None = None) -> list[str]:
        out = []
        for stat in self.statistics() if stats is None else stats:
            found = attack(
                self.parent,
                self.unit,
                self.codes,
                self.n_values,
                self.k,
                stat.present,
                stat.values,
                stat.bounds,
                hidden,
            )
            out += [f"{stat.name}: {a.kind}: {a.detail}" for a in found]
        return out

    def suppress(self, *, bounds: bool = True) -> np.ndarray:
        s = suppress(self.parent, self.unit, self.codes, self.n_values, self.k, self.statistics(bounds=bounds))
        return s.hidden


def cell_counts(org: Org, mask: np.ndarray) -> np.ndarray:
    """n per (unit, column), by walking each respondent's ancestors (independent of the guard)."""
    n = np.zeros((len(org.parent), org.width), dtype=np.int64)
    offsets = np.cumsum((1, *org.n_values))[:-1]
    for r in np.flatnonzero(mask):
        u = int(org.unit[r])
        while u >= 0:
            n[u, 0] += 1
            for a, off in enumerate(offsets):
                n[u, off + org.codes[r, a]] += 1
            u = org.parent[u]
    return n


def make(
    parent: list[int], people: list[tuple[int, ...]], n_values: tuple[int, ...], k: int, value: float = 3.0
) -> Org:
    """An org from (unit, code, code, ...) per respondent; everyone answers ``value``."""
    unit = np.array([p[0] for p in people], dtype=np.int64)
    codes = np.array([p[1:] for p in people], dtype=np.int64).reshape(len(people), len(n_values))
    values = np.full(len(people), value)
    return Org(parent, unit, codes, n_values, k, values, np.ones(len(people), dtype=bool))


def team(u: int, count: int, *codes: int) -> list[tuple[int, ...]]:
    return [(u, *codes)] * count


# --------------------------------------------------------------------------------------------------------------------
# Hand-made trees built to break naive suppression

CASES = {
    # a parent (8) with a big child (6) and one small child (2): parent - big child = the small child
    "parent with one small child": make([-1, 0, 0], team(1, 6) + team(2, 2), (), 5),
    # two small siblings (2 + 2) beside a big one (6): parent - big sibling = the two small ones together (4 < 5)
    "two small siblings whose total is known": make([-1, 0, 0, 0], team(1, 2) + team(2, 2) + team(3, 6), (), 5),
    # a unit of 7 cut by one attribute into 5 and 2: the unit minus its published cut = the 2
    "a unit whose cut leaves one small complement": make([-1], team(0, 5, 0) + team(0, 2, 1), (2,), 5),
    # the parent's cut A=1 (12) minus the same cut of its children (6 and 5) = the parent's one direct member A=1
    "a cut of a parent minus the same cut of its children": make(
        [-1, 0, 0],
        team(0, 1, 1) + team(0, 6, 0) + team(1, 6, 1) + team(2, 5, 1) + team(2, 5, 0),
        (2,),
        5,
    ),
    # a department of one manager and three teams of 6: department minus its teams = the manager
    "a department with one direct member": make(
        [-1, 0, 0, 0], team(0, 1) + team(1, 6) + team(2, 6) + team(3, 6), (), 5
    ),
    # two attributes on one team of 11 with no one in (A=1, B=1): A=0 (6) + B=0 (6) - total (11) = (A=0, B=0), 1 person
    "two cuts that intersect in one person": make(
        [-1], team(0, 5, 0, 1) + team(0, 1, 0, 0) + team(0, 5, 1, 0), (2, 2), 5
    ),
}


# --------------------------------------------------------------------------------------------------------------------
# Random trees, random answers


@st.composite
def orgs(draw: st.DrawFn) -> Org:
    n_units = draw(st.integers(2, 25))
    parent = [-1] + [draw(st.integers(-1, i - 1)) if draw(st.booleans()) or i < 3 else i - 1 for i in range(1, n_units)]
    n_values = tuple(draw(st.lists(st.integers(2, 4), min_size=0, max_size=2)))
    n_people = draw(st.integers(0, 120))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # people cluster in a few units, as in real orgs, so that cells of k or more exist
    weights = rng.gamma(0.6, size=n_units)
    unit = rng.choice(n_units, size=n_people, p=weights / weights.sum()) if n_people else np.zeros(0, np.int64)
    codes = np.column_stack([rng.integers(0, v, n_people) for v in n_values]) if n_values else None
    if codes is None:
        codes = np.zeros((n_people, 0), dtype=np.int64)
    values = rng.integers(1, 6, n_people).astype(float)
    present = rng.random(n_people) < draw(st.sampled_from([1.0, 0.9]))
    return Org(
        parent, unit.astype(np.int64), codes.astype(np.int64), n_values, draw(st.integers(3, 6)), values, present
    )


PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
