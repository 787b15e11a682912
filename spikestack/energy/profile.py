"""Chip profiles: a chip's limits and per-operation costs, as data with provenance.

A profile is one YAML file, shipped in `profiles/` or written by a user, read with `load_profile`.

Schema (every top-level key but `cycles` is required; nothing else is allowed at the top level):

    name: loihi                       # str; shipped files are named <name>.yaml
    description: "..."                # str, one line: what the chip is, where the numbers come from
    kind: snn                         # snn | ann (an ANN baseline has no neurons or spikes)
    estimated: false                  # true when any figure is of kind `assumed`
    limits:                           # may be {}: a limit no source gives is left out, never guessed
      <name>: {value: V, source: "...", kind: K}
    energy:                           # may be {}; units: energy (pJ, nJ, uJ, ...) or power (uW, mW, ...)
      <name>: {value: X, unit: U, source: "...", kind: K}
    latency:                          # may be {}; units: time (ns, us, ...)
      <name>: {value: X, unit: U, source: "...", kind: K}
    cycles:                           # optional; units: cycles, or 1 for a dimensionless factor
      <name>: {value: X, unit: U, source: "...", kind: K}

Limit values are positive integers, lists of them (one entry per core where cores differ, e.g.
Speck's kernel memory) or booleans (rules such as "memory is padded to powers of two"). `limits`
on the profile holds the bare values so the mapper reads `profile.limits["cores"]`; their
provenance sits beside them in `limit_sources`.

Constant `kind` says how far to trust a number: `measured` (measured on silicon: a chip measurement
a paper reports, or a model calibrated against the chip, such as SANA-FE's), `published` (a pre-silicon
figure, a vendor's figure or a vendor's public code), `assumed` (no source that measured or published it:
derived, carried over from another chip, or unverified). Every `source` names what a reader can open:
a paper and its table, a vendor page, or a file in a named package version. A profile holding any
`assumed` figure is `estimated: true`. Energy and latency names follow one convention so the energy model can look them up:
e_/t_ + syn_op, neuron_active, neuron_inactive, spike_local, hop_ew, hop_ns, barrier; e_mac, e_ac
for ANN arithmetic; p_ for a power. A range in a source is stored as its two ends, `<name>_min` and
`<name>_max`, with the range's domain (e.g. 1 and 32 tiles) said in each source string.

Xylo's `cycles` map holds Rockpool's cycle model; the clock needed to run in real time is
`clock_hz = total_cycles_per_step * (1 + clock_margin) / dt`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import yaml

from spikestack.errors import ChipError

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"

CONSTANT_KINDS = ("published", "measured", "assumed")
PROFILE_KINDS = ("snn", "ann")

# unit -> (dimension, power of ten to SI). Both micro signs (U+00B5, U+03BC) and "u" are accepted
# because people type all three; the shipped files use "u" to stay ASCII.
_PREFIXES = {"": 0, "m": -3, "u": -6, "\u00b5": -6, "\u03bc": -6, "n": -9, "p": -12, "f": -15}
UNITS: dict[str, tuple[str, int]] = {"cycles": ("cycles", 0), "1": ("ratio", 0)}
for _prefix, _exponent in _PREFIXES.items():
    UNITS[_prefix + "J"] = ("energy", _exponent)
    UNITS[_prefix + "W"] = ("power", _exponent)
    UNITS[_prefix + "s"] = ("time", _exponent)

# Which dimensions each constant map may hold: a static power lives beside the energies.
_SECTION_DIMENSIONS = {
    "energy": ("energy", "power"),
    "latency": ("time",),
    "cycles": ("cycles", "ratio"),
}
_REQUIRED = ("name", "description", "kind", "estimated", "limits", "energy", "latency")
_OPTIONAL = ("cycles",)
_CONSTANT_KEYS = ("value", "unit", "source", "kind")
_LIMIT_KEYS = ("value", "source", "kind")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_PROFILE_BYTES = 2**20  # the shipped profiles are 2-6 kB: anything near this is not a profile
MAX_DEPTH = 16  # top level, section, entry, a per-core list: four levels; deeper is not a profile


@dataclass(frozen=True)
class Constant:
    """One number with its unit and provenance, as written in the profile."""

    value: float
    unit: str
    source: str
    kind: str

    @property
    def dimension(self) -> str:
        """energy | power | time | cycles | ratio."""
        return _unit(self.unit)[0]

    @property
    def si(self) -> float:
        """The value in joules, watts or seconds (cycles and ratios unchanged).

        Scaling goes through Decimal so that 23.6 pJ gives exactly the float 23.6e-12, the number a
        reader would type; multiplying by 1e-12 in binary can land one ulp away.
        """
        exponent = _unit(self.unit)[1]
        return float(Decimal(repr(float(self.value))).scaleb(exponent))


def _unit(unit: str) -> tuple[str, int]:
    if unit not in UNITS:
        raise ChipError(f"unknown unit '{unit}' (known: {', '.join(sorted(UNITS))})")
    return UNITS[unit]


@dataclass(frozen=True)
class ChipProfile:
    """A chip's limits and costs. Read-only by convention: loaders build a fresh one each call."""

    name: str
    description: str
    kind: str
    estimated: bool
    limits: dict[str, object]
    energy: dict[str, Constant]
    latency: dict[str, Constant]
    cycles: dict[str, Constant]
    path: str
    limit_sources: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (source, kind)

    def constant(self, section: str, name: str) -> Constant:
        """A constant the caller cannot do without, or a ChipError saying which profile lacks it."""
        table = {"energy": self.energy, "latency": self.latency, "cycles": self.cycles}.get(section)
        if table is None:
            raise ChipError(f"chip profile section '{section}' does not exist (energy, latency, cycles)")
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            raise ChipError(
                f"chip profile '{self.name}' ({self.path}): no {section} constant '{name}' (has: {known})"
            )
        return table[name]


def list_profiles() -> list[str]:
    """Names of the shipped profiles, usable with `load_profile`."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | os.PathLike) -> ChipProfile:
    """Load a shipped profile by name (`"loihi"`) or any profile file by path, validating it."""
    text = os.fspath(name_or_path)
    # A bare word is a shipped name; anything with a directory or a YAML suffix is a path, so that a
    # user's `loihi.yaml` in the working directory is never shadowed by the shipped one.
    is_path = os.sep in text or "/" in text or text.endswith((".yaml", ".yml"))
    path = Path(text) if is_path else PROFILE_DIR / f"{text}.yaml"
    if not path.is_file():
        if not is_path:
            raise ChipError(f"unknown chip profile '{text}' (shipped: {', '.join(list_profiles())})")
        raise ChipError(f"chip profile {path}: {'not a regular file' if path.exists() else 'file not found'}")
    return _build(_read_yaml(path), path)


def _read_yaml(path: Path) -> object:
    """The file's YAML, after two refusals that keep a hostile file cheap: more than MAX_PROFILE_BYTES
    (read no further), or deeper than MAX_DEPTH (counted on PyYAML's event stream, which is iterative;
    building the objects recurses once per level and would end in a RecursionError)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_PROFILE_BYTES + 1)
        if len(raw) > MAX_PROFILE_BYTES:
            raise ChipError(f"chip profile {path}: larger than {MAX_PROFILE_BYTES // 2**20} MB; a profile is a few kB")
        text = raw.decode("utf-8")
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            depth += isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent))
            depth -= isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent))
            if depth > MAX_DEPTH:
                where = f" at line {event.start_mark.line + 1}" if event.start_mark is not None else ""
                raise ChipError(f"chip profile {path}: nested more than {MAX_DEPTH} levels deep{where}; "
                                "a profile nests four")
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ChipError(f"chip profile {path}: YAML syntax error{at}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ChipError(f"chip profile {path}: cannot read: {exc}") from None
    except RecursionError:  # belt and braces: the depth check should have refused it
        raise ChipError(f"chip profile {path}: nested too deeply to read") from None


def _fail(path: Path, key: str, reason: str) -> ChipError:
    return ChipError(f"chip profile {path}: {key}: {reason}")


def _build(data: object, path: Path) -> ChipProfile:
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise _fail(path, "<top level>", f"expected a mapping of keys, got {got}")
    for key in data:
        if key not in _REQUIRED + _OPTIONAL:
            raise _fail(path, str(key), f"unknown key (allowed: {', '.join(_REQUIRED + _OPTIONAL)})")
    for key in _REQUIRED:
        if key not in data:
            raise _fail(path, key, "missing required key")
    for key in ("name", "description"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise _fail(path, key, "must be a non-empty string")
    if data["kind"] not in PROFILE_KINDS:
        raise _fail(path, "kind", f"'{data['kind']}' is not one of {', '.join(PROFILE_KINDS)}")
    if not isinstance(data["estimated"], bool):
        raise _fail(path, "estimated", "must be true or false")
    limits, limit_sources = _limits(data["limits"], path)
    return ChipProfile(
        name=data["name"],
        description=" ".join(data["description"].split()),
        kind=data["kind"],
        estimated=data["estimated"],
        limits=limits,
        energy=_constants(data["energy"], "energy", path),
        latency=_constants(data["latency"], "latency", path),
        cycles=_constants(data.get("cycles", {}), "cycles", path),
        path=str(path),
        limit_sources=limit_sources,
    )


def _entries(section: object, where: str, keys: tuple[str, ...], path: Path):
    """Yield (name, entry) pairs of a section after the checks limits and constants share."""
    if section is None:  # `energy:` with nothing after it reads as None: treat as empty
        return
    if not isinstance(section, dict):
        raise _fail(path, where, "must be a mapping of names to entries")
    for name, entry in section.items():
        key = f"{where}.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise _fail(path, key, "names are lower_case identifiers")
        if not isinstance(entry, dict):
            raise _fail(path, key, f"must be a mapping with keys {', '.join(keys)}")
        for k in entry:
            if k not in keys:
                raise _fail(path, f"{key}.{k}", f"unknown key (allowed: {', '.join(keys)})")
        for k in keys:
            if k not in entry:
                raise _fail(path, f"{key}.{k}", "missing")
        if not isinstance(entry["source"], str) or not entry["source"].strip():
            raise _fail(path, f"{key}.source", "must say, non-empty, where the number comes from")
        if entry["kind"] not in CONSTANT_KINDS:
            raise _fail(path, f"{key}.kind", f"'{entry['kind']}' is not one of {', '.join(CONSTANT_KINDS)}")
        yield name, key, entry


def _limits(section: object, path: Path) -> tuple[dict[str, object], dict[str, tuple[str, str]]]:
    values: dict[str, object] = {}
    sources: dict[str, tuple[str, str]] = {}
    for name, key, entry in _entries(section, "limits", _LIMIT_KEYS, path):
        value = entry["value"]
        items = value if isinstance(value, list) else [value]
        plain_bool = isinstance(value, bool)
        if not plain_bool and (not items or not all(_is_count(v) for v in items)):
            raise _fail(path, f"{key}.value", "must be a positive integer, a list of them, or true/false "
                                              "(a count or a width: 0 would hold nothing)")
        values[name] = list(value) if isinstance(value, list) else value
        sources[name] = (" ".join(entry["source"].split()), entry["kind"])
    # A per-core list must name every core once, or the mapper would silently skip or invent cores.
    for name, value in values.items():
        if isinstance(value, list) and "cores" in values and len(value) != values["cores"]:
            reason = f"has {len(value)} entries but the chip has {values['cores']} cores"
            raise _fail(path, f"limits.{name}.value", reason)
    return values, sources


def _is_count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _constants(section: object, where: str, path: Path) -> dict[str, Constant]:
    table: dict[str, Constant] = {}
    for name, key, entry in _entries(section, where, _CONSTANT_KEYS, path):
        value = entry["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = " (PyYAML reads 1e3 without a dot as text: write 1.0e3)" if isinstance(value, str) else ""
            raise _fail(path, f"{key}.value", f"'{value}' is not a number{hint}")
        if not math.isfinite(value) or value < 0:
            raise _fail(path, f"{key}.value", f"{value} must be finite and non-negative")
        unit = entry["unit"]
        if not isinstance(unit, (str, int)) or str(unit) not in UNITS:
            raise _fail(path, f"{key}.unit", f"unknown unit '{unit}' (known: {', '.join(sorted(UNITS))})")
        unit = str(unit)  # YAML reads `unit: 1` as the integer 1
        allowed = _SECTION_DIMENSIONS[where]
        if UNITS[unit][0] not in allowed:
            reason = f"'{unit}' is a {UNITS[unit][0]} unit; {where} takes {' or '.join(allowed)}"
            raise _fail(path, f"{key}.unit", reason)
        table[name] = Constant(float(value), unit, " ".join(entry["source"].split()), entry["kind"])
    return table
