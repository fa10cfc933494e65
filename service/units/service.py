"""The org tree: upsert with validation (unknown parent, cycle, duplicate key), read it in tree order."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import Unprocessable
from service.models import Unit
from service.units.schemas import UnitIn


@dataclass(frozen=True)
class Tree:
    """The org tree in an order where parents come before children."""

    keys: list[str]
    names: list[str]
    parent: list[int]  # index into keys, -1 at a root
    ids: list[int]
    whole: bool = True  # False for a subtree (``subtree``): rows of other units are left out when loading

    def index(self) -> dict[str, int]:
        return {key: i for i, key in enumerate(self.keys)}


def subtree(tree: Tree, unit_id: int) -> Tree:
    """The part of ``tree`` under the unit ``unit_id``, that unit its root: a scoped wave's tree. Depth-first
    order keeps a subtree contiguous, starting at its root."""
    start = tree.ids.index(unit_id)
    end = start + 1
    while end < len(tree.ids) and _below(tree, end, start):
        end += 1
    return Tree(
        keys=tree.keys[start:end],
        names=tree.names[start:end],
        parent=[-1] + [p - start for p in tree.parent[start + 1 : end]],
        ids=tree.ids[start:end],
        whole=False,
    )


def _below(tree: Tree, node: int, root: int) -> bool:
    while node > root:
        node = tree.parent[node]
    return node == root


def load_tree(session: Session, root: int | None = None) -> Tree:
    """The org tree, or with ``root`` (a unit's id: a scoped wave's) the subtree under that unit."""
    rows = session.execute(select(Unit.id, Unit.key, Unit.name, Unit.parent_id).order_by(Unit.id)).all()
    by_id = {row.id: row for row in rows}
    children: dict[int | None, list[int]] = {}
    for row in rows:
        children.setdefault(row.parent_id, []).append(row.id)
    order: list[int] = []
    stack = list(reversed(children.get(None, [])))
    while stack:  # depth-first, parents first, children in id order
        unit_id = stack.pop()
        order.append(unit_id)
        stack.extend(reversed(children.get(unit_id, [])))
    position = {unit_id: i for i, unit_id in enumerate(order)}
    tree = Tree(
        keys=[by_id[u].key for u in order],
        names=[by_id[u].name for u in order],
        parent=[position[p] if (p := by_id[u].parent_id) is not None else -1 for u in order],
        ids=order,
    )
    return tree if root is None else subtree(tree, root)


def parents(session: Session) -> list[tuple[str, str | None]]:
    """Every unit's key and its parent's key, as the tree is now."""
    tree = load_tree(session)
    return [(key, tree.keys[p] if p >= 0 else None) for key, p in zip(tree.keys, tree.parent, strict=True)]


def upsert(session: Session, units: list[UnitIn]) -> tuple[int, int]:
    """Insert or update ``units``; refuse the whole request, naming the keys, if the result is not a tree."""
    duplicates = sorted(key for key, count in Counter(u.key for u in units).items() if count > 1)
    if duplicates:
        raise Unprocessable(
            f"duplicate unit keys: {', '.join(duplicates[:20])}",
            details=[{"key": k, "reason": "duplicate key"} for k in duplicates],
        )
    existing = {row.key: row for row in session.scalars(select(Unit))}
    parent_of: dict[str, str | None] = {}
    id_to_key = {row.id: row.key for row in existing.values()}
    for row in existing.values():
        parent_of[row.key] = id_to_key.get(row.parent_id) if row.parent_id is not None else None
    for unit in units:
        parent_of[unit.key] = unit.parent_key

    unknown = sorted({u.parent_key for u in units if u.parent_key is not None and u.parent_key not in parent_of})
    if unknown:
        raise Unprocessable(
            f"unknown parent keys: {', '.join(unknown[:20])}",
            details=[
                {"key": u.key, "reason": f"unknown parent {u.parent_key!r}"}
                for u in units
                if u.parent_key in set(unknown)
            ],
        )
    cyclic = _keys_on_cycles(parent_of)
    if cyclic:
        raise Unprocessable(
            f"these units form a cycle: {', '.join(cyclic[:20])}",
            details=[{"key": k, "reason": "part of a cycle"} for k in cyclic],
        )

    created = updated = 0
    for unit in units:  # parents first, so new children can point at new parents
        current = existing.get(unit.key)
        if current is None:
            current = Unit(key=unit.key, name=unit.name)
            session.add(current)
            existing[unit.key] = current
            created += 1
        elif current.name != unit.name or parent_of_row(current, id_to_key) != unit.parent_key:
            current.name = unit.name
            updated += 1
    session.flush()
    for unit in units:
        row = existing[unit.key]
        row.parent_id = existing[unit.parent_key].id if unit.parent_key is not None else None
    session.flush()
    return created, updated


def parent_of_row(row: Unit, id_to_key: dict[int, str]) -> str | None:
    return id_to_key.get(row.parent_id) if row.parent_id is not None else None


def _keys_on_cycles(parent_of: dict[str, str | None]) -> list[str]:
    """Keys that lie on a cycle of the parent relation (walks each chain once: linear time)."""
    state: dict[str, int] = {}  # 1 = on the current walk, 2 = done
    on_cycle: set[str] = set()
    for start in parent_of:
        path: list[str] = []
        key: str | None = start
        while key is not None and state.get(key) is None:
            state[key] = 1
            path.append(key)
            key = parent_of.get(key)
        if key is not None and state.get(key) == 1:
            on_cycle.update(path[path.index(key) :])
        for visited in path:
            state[visited] = 2
    return sorted(on_cycle)
