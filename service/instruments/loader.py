"""Reading instrument files: check and load ``survey_definitions/<slug>/<version>.yaml``, and hand scoring its spec."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from scoring import spec
from service.instruments.schema import Instrument

DEFINITIONS_DIR = Path(__file__).resolve().parents[2] / "survey_definitions"
SCHEMA_FILE = "schema.json"
_VERSION_FILE = re.compile(r"^[1-9][0-9]*\.yaml$")
# A problem the instrument-level validator reports, e.g. "item ps_risk: unknown construct 'x'".
_REFERENCE_PROBLEM = re.compile(r"^(item|construct|section) ([a-z][a-z0-9_]*): (.+)$", re.DOTALL)


@dataclass(frozen=True)
class LoadedInstrument:
    """A validated instrument with the file it came from and the sha256 of that file's bytes."""

    instrument: Instrument
    path: Path
    sha256: str


Instruments = dict[tuple[str, int], LoadedInstrument]  # the loaded definitions, by (slug, version)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an instrument file.

    location: where in the file, e.g. ``"section team / item ps_mistakes / text.en"``,
              ``"construct mobility"``, ``"line 12"``; empty when it concerns the whole file.
    """

    file: Path
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.location}: {self.message}" if self.location else f"{self.file}: {self.message}"


class InstrumentError(ValueError):
    """One or more instrument files are invalid; ``problems`` lists each of them."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in instrument files:\n{lines}")


class _DefinitionLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys and reads only true/false as booleans.

    PyYAML follows YAML 1.1, where ``yes``, ``no``, ``on`` and ``off`` are booleans: an option id
    ``no`` would silently become ``False``. Here they stay strings, as in YAML 1.2.
    """


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Hashable, Any]:
    mapping: dict[Hashable, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node)
    return mapping


def _yaml12_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool | str:
    value = loader.construct_scalar(node)
    return {"true": True, "false": False}.get(str(value).lower(), str(value))


_DefinitionLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)
_DefinitionLoader.add_constructor("tag:yaml.org,2002:bool", _yaml12_bool)


def _read(path: Path, root: Path) -> tuple[Instrument | None, bytes, list[Problem]]:
    """Parse and validate one file; the instrument is None when any problem was found."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, b"", [Problem(path, "", f"cannot read the file: {exc.strerror}")]
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_DefinitionLoader)  # noqa: S506 (a SafeLoader subclass)
    except UnicodeDecodeError:
        return None, raw, [Problem(path, "", "the file is not UTF-8 text")]
    except yaml.YAMLError as exc:
        return None, raw, [_yaml_problem(path, exc)]
    if not isinstance(data, dict):
        return None, raw, [Problem(path, "", "the file must be a YAML mapping with slug, version, title, ...")]
    try:
        instrument = Instrument.model_validate(data)
    except ValidationError as exc:
        errors = _without_echoes(exc.errors())
        return None, raw, [problem for error in errors for problem in _schema_problems(path, data, error)]
    problems = _path_problems(path, root, instrument)
    return (None if problems else instrument), raw, problems


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    location = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    message = "; ".join(str(p) for p in parts if p) or str(exc)
    return Problem(path, location, f"invalid YAML: {message}")


def _without_echoes(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Drop "tuple too short" errors that only echo a failed member (pydantic counts the valid ones)."""
    locs = [tuple(e["loc"]) for e in errors]
    return [
        error
        for error, loc in zip(errors, locs, strict=True)
        if error["type"] != "too_short" or not any(len(o) > len(loc) and o[: len(loc)] == loc for o in locs)
    ]


def _schema_problems(path: Path, data: dict[str, Any], error: ErrorDetails) -> list[Problem]:
    """Turn one pydantic error into problems located by section, item, construct and option ids."""
    message = error["msg"].removeprefix("Value error, ")
    location = _readable_location(data, error["loc"])
    if error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] == "extra_forbidden":
        message = "unknown field (not in the instrument schema)"
    elif error["type"] != "value_error" and isinstance(error.get("input"), str | int | float | bool):
        message = f"{message} (got {error['input']!r})"
    if location or error["type"] != "value_error":
        return [Problem(path, location, message)]
    # The instrument-level check joins its findings with "; ", each "item X: ..." or "construct X: ...".
    problems = []
    for part in message.split("; "):
        found = _REFERENCE_PROBLEM.match(part)
        if found:
            kind, ident, text = found.groups()
            problems.append(Problem(path, _with_section(data, kind, ident), text))
        else:
            problems.append(Problem(path, "instrument", part))
    return problems


def _readable_location(data: Any, loc: Sequence[int | str]) -> str:
    """``("sections", 0, "items", 3, "text", "en")`` -> ``"section team / item ps_risk / text.en"``."""
    labels = {"sections": "section", "items": "item", "constructs": "construct", "options": "option"}
    parts: list[str] = []
    fields: list[str] = []
    node = data
    i = 0
    while i < len(loc):
        key = loc[i]
        child = _child(node, key)
        index = loc[i + 1] if i + 1 < len(loc) else None
        if isinstance(key, str) and key in labels and isinstance(index, int):
            element = _child(child, index)
            ident = element.get("id") if isinstance(element, dict) else None
            if fields:
                parts.append(".".join(fields))
                fields = []
            parts.append(f"{labels[key]} {ident}" if isinstance(ident, str) else f"{labels[key]} #{index + 1}")
            node, i = element, i + 2
            continue
        fields.append(str(key + 1) if isinstance(key, int) else key)  # list positions 1-based, as people count
        node, i = child, i + 1
    if fields:
        parts.append(".".join(fields))
    return " / ".join(parts)


def _child(node: Any, key: int | str) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return None


def _with_section(data: dict[str, Any], kind: str, ident: str) -> str:
    """``item ps_risk`` -> ``section team / item ps_risk`` when the item's section can be found."""
    if kind == "item":
        for section in data.get("sections") or []:
            items = section.get("items") if isinstance(section, dict) else None
            if any(isinstance(i, dict) and i.get("id") == ident for i in items or []):
                return f"section {section.get('id')} / item {ident}"
    return f"{kind} {ident}"


def _path_problems(path: Path, root: Path, instrument: Instrument) -> list[Problem]:
    problems = []
    folder = path.parent.name
    if folder != instrument.slug:
        problems.append(Problem(path, "slug", f"slug {instrument.slug!r} does not match its folder {folder!r}"))
    if _VERSION_FILE.match(path.name) and int(path.stem) != instrument.version:
        problems.append(
            Problem(path, "version", f"version {instrument.version} does not match the file name {path.name!r}")
        )
    return problems


def check_definitions(root: Path) -> list[Problem]:
    """Validate every ``<slug>/<version>.yaml`` under ``root``; return each problem found (empty when all valid).

    Checks YAML syntax (and duplicate keys), the instrument schema with its cross-references, that the
    file lies at ``<slug>/<version>.yaml`` with the slug and version it declares, and that no other
    YAML file lies around where it would be silently ignored.
    """
    return _scan(root)[1]


def load_definitions(root: Path) -> Instruments:
    """Load every instrument under ``root``, keyed by ``(slug, version)``.

    Raises
    ------
    InstrumentError
        when any file is invalid (listing every problem), or when there is no instrument at all.
    """
    loaded, problems = _scan(root)
    if problems:
        raise InstrumentError(problems)
    return loaded


def _scan(root: Path) -> tuple[dict[tuple[str, int], LoadedInstrument], list[Problem]]:
    if not root.is_dir():
        return {}, [Problem(root, "", "the instrument folder does not exist")]
    loaded: dict[tuple[str, int], LoadedInstrument] = {}
    problems: list[Problem] = []
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        relative = path.relative_to(root)
        if len(relative.parts) != 2 or path.suffix != ".yaml" or not _VERSION_FILE.match(path.name):
            problems.append(
                Problem(
                    path, "", "not an instrument file: instruments live at <slug>/<version>.yaml, e.g. pulse/1.yaml"
                )
            )
            continue
        instrument, raw, found = _read(path, root)
        problems.extend(found)
        if instrument is not None:
            key = (instrument.slug, instrument.version)
            loaded[key] = LoadedInstrument(instrument, path, hashlib.sha256(raw).hexdigest())
    if not loaded and not problems:
        problems.append(Problem(root, "", "no instrument files (<slug>/<version>.yaml) found"))
    return dict(sorted(loaded.items())), problems


_BARRIER_FIELDS = {f.name for f in dataclasses.fields(spec.BarrierRule)}


def to_spec(instrument: Instrument) -> spec.InstrumentSpec:
    """The scoring engine's view of an instrument: items in order with their option ids, constructs with rules."""
    items = tuple(
        spec.ItemSpec(
            id=item.id,
            type=item.type,
            construct=item.construct_id,
            options=tuple(o.id for o in item.options),
            option_labels=tuple(spec.Label(nl=o.text.nl, en=o.text.en) for o in item.options),
        )
        for item in instrument.items
    )
    constructs = []
    for construct in instrument.constructs:
        rules = construct.flags
        barrier = None
        if rules.barrier is not None:
            fields: dict[str, Any] = {"item": rules.barrier.item, "share": rules.barrier.share}
            if "ignore" in _BARRIER_FIELDS:  # scoring learns to skip non-barrier options such as "none"
                fields["ignore"] = rules.barrier.ignore
            barrier = spec.BarrierRule(**fields)
        constructs.append(
            spec.ConstructSpec(
                id=construct.id,
                scale=construct.scale,
                items=tuple(item.id for item in instrument.construct_items(construct.id)),
                reverse=frozenset(construct.reverse),
                min_answered=construct.min_answered,
                favourable_min=construct.favourable.min,
                flags=spec.FlagRules(
                    below=rules.below,
                    below_org=rules.below_org,
                    decline=rules.decline,
                    alpha=rules.alpha,
                    barrier=barrier,
                ),
                label=spec.Label(nl=construct.name.nl, en=construct.name.en),
            )
        )
    return spec.InstrumentSpec(
        slug=instrument.slug,
        version=instrument.version,
        items=items,
        constructs=tuple(constructs),
        low_participation=instrument.flags.low_participation,
    )


def json_schema_text() -> str:
    """The instrument JSON Schema (file keys, i.e. by alias), pretty-printed with sorted keys."""
    return json.dumps(Instrument.model_json_schema(by_alias=True), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json_schema(root: Path) -> Path:
    """Write the JSON Schema of instrument files to ``root/schema.json`` (editors validate YAML against it)."""
    target = root / SCHEMA_FILE
    target.write_text(json_schema_text(), encoding="utf-8")
    return target
