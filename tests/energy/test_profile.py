"""Chip profiles: the shipped files load, carry provenance, hold the brief's numbers, and a broken
file fails with one ChipError naming the file and the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from spikestack.energy import ChipProfile, Constant, list_profiles, load_profile
from spikestack.energy.profile import CONSTANT_KINDS, PROFILE_DIR
from spikestack.errors import ChipError

SHIPPED = ["ann-45nm-fp32", "ann-45nm-int8", "loihi", "loihi2", "speck", "spinnaker2", "truenorth",
           "xylo-audio2"]


def _constants(profile: ChipProfile):
    for section in ("energy", "latency", "cycles"):
        for name, constant in getattr(profile, section).items():
            yield f"{section}.{name}", constant


def test_every_chip_is_shipped():
    assert list_profiles() == sorted(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads_under_its_file_name(name):
    profile = load_profile(name)
    assert profile.name == name
    assert Path(profile.path) == PROFILE_DIR / f"{name}.yaml"
    assert profile.kind in ("snn", "ann")
    assert profile.energy or profile.latency or profile.cycles, "a profile with no cost at all is useless"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_number_has_a_source_and_a_kind(name):
    profile = load_profile(name)
    for key, constant in _constants(profile):
        assert isinstance(constant, Constant)
        assert constant.source.strip(), key
        assert constant.kind in CONSTANT_KINDS, key
        assert constant.si >= 0, key
    assert set(profile.limit_sources) == set(profile.limits)
    for key, (source, kind) in profile.limit_sources.items():
        assert source.strip(), key
        assert kind in CONSTANT_KINDS, key
    # a source names what a reader can open (a paper, a page, a file): never the project's own notes
    sources = [c.source for _, c in _constants(profile)] + [s for s, _ in profile.limit_sources.values()]
    assert not [s for s in sources if "BRIEF" in s], name


@pytest.mark.parametrize("name", SHIPPED)
def test_estimated_profiles_are_those_with_an_assumed_figure(name):
    # `estimated` flags a profile that holds any figure of kind `assumed` (no source that measured or
    # published it): SpiNNaker2's two energies and Loihi 2's per-operation costs (issue 21).
    profile = load_profile(name)
    kinds = {c.kind for _, c in _constants(profile)} | {kind for _, kind in profile.limit_sources.values()}
    assert profile.estimated == ("assumed" in kinds), kinds
    assert profile.estimated == (name in ("loihi2", "spinnaker2"))


# Davies et al., IEEE Micro 2018, Table 2, typed here as literals in SI units (BRIEF §5).
LOIHI_ENERGY = {
    "e_syn_op": 23.6e-12,
    "e_neuron_active": 81e-12,
    "e_neuron_inactive": 52e-12,
    "e_spike_local": 1.7e-12,
    "e_hop_ew": 3.0e-12,
    "e_hop_ns": 4.0e-12,
}
LOIHI_LATENCY = {
    "t_syn_op": 3.5e-9,
    "t_neuron_active": 8.4e-9,
    "t_neuron_inactive": 5.3e-9,
    "t_spike_local": 2.1e-9,
    "t_hop_ew": 4.1e-9,
    "t_hop_ns": 6.5e-9,
    "t_barrier_min": 113e-9,
    "t_barrier_max": 465e-9,
}


def test_loihi_constants_are_davies_2018():
    profile = load_profile("loihi")
    assert {k: c.si for k, c in profile.energy.items()} == LOIHI_ENERGY
    assert {k: c.si for k, c in profile.latency.items()} == LOIHI_LATENCY
    for _, constant in _constants(profile):
        assert "Davies" in constant.source and constant.kind == "published"
    assert profile.energy["e_syn_op"].unit == "pJ" and profile.latency["t_syn_op"].unit == "ns"


def test_loihi_limits():
    limits = load_profile("loihi").limits
    assert limits["neurons_per_core"] == 1024
    assert limits["cores"] == 128
    assert limits["synapse_memory_bits_per_core"] == 128 * 1024 * 8
    assert limits["input_axons_per_core"] == limits["output_axons_per_core"] == 4096


def test_other_chips_hold_the_brief_numbers():
    speck = load_profile("speck").limits
    assert speck["cores"] == 9
    assert speck["kernel_memory_entries_per_core"] == [k * 1024 for k in (16, 16, 16, 32, 32, 64, 64, 16, 16)]
    assert speck["neuron_memory_entries_per_core"] == [k * 1024 for k in (64, 64, 64, 32, 32, 16, 16, 16, 16)]
    assert (speck["weight_bits"], speck["state_bits"]) == (8, 16)
    assert load_profile("speck").latency["t_event_9_layers"].si == 3.36e-6
    xylo = load_profile("xylo-audio2")
    power = xylo.energy["p_dynamic_inference"]
    assert power.si == 291e-6 and power.dimension == "power"
    assert xylo.energy["e_inference_kws"].si == 6.6e-6
    cycles = {k: c.si for k, c in xylo.cycles.items()}
    assert cycles == {"input_event_loop": 3.5, "hidden_syn_update": 7, "output_syn_update": 8,
                      "hidden_neuron": 19, "output_neuron": 12, "clock_margin": 0.2}
    fp32 = load_profile("ann-45nm-fp32").energy
    assert (fp32["e_mac"].si, fp32["e_ac"].si) == (4.6e-12, 0.9e-12)
    assert load_profile("truenorth").energy["e_syn_op"].si == 26e-12
    spinnaker = load_profile("spinnaker2").energy
    assert (spinnaker["e_syn_op"].si, spinnaker["e_neuron_active"].si) == (450e-12, 2.19e-9)


@pytest.mark.parametrize("unit, si", [("pJ", 2.5e-12), ("nJ", 2.5e-9), ("uJ", 2.5e-6), ("\u00b5J", 2.5e-6),
                                      ("\u03bcW", 2.5e-6), ("mW", 2.5e-3), ("ns", 2.5e-9), ("us", 2.5e-6),
                                      ("s", 2.5), ("cycles", 2.5), ("1", 2.5)])
def test_si_conversion(unit, si):
    assert Constant(2.5, unit, "test", "assumed").si == si


def test_missing_constant_is_named():
    with pytest.raises(ChipError, match=r"speck.*no energy constant 'e_syn_op'"):
        load_profile("speck").constant("energy", "e_syn_op")
    assert load_profile("loihi").constant("latency", "t_syn_op").value == 3.5


# --- user files and malformed files ------------------------------------------------------------

def _write(tmp_path: Path, data, name="mychip.yaml") -> Path:
    path = tmp_path / name
    text = data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def base() -> dict:
    return yaml.safe_load((PROFILE_DIR / "loihi.yaml").read_text(encoding="utf-8"))


def test_user_profile_path_loads(tmp_path, base):
    base["name"] = "mychip"
    base["energy"]["e_syn_op"]["value"] = 12.5
    base["energy"]["p_static"] = {"value": 30, "unit": "mW", "source": "my lab bench", "kind": "measured"}
    path = _write(tmp_path, base)
    for ref in (str(path), path):
        profile = load_profile(ref)
        assert profile.name == "mychip" and profile.path == str(path)
        assert profile.energy["e_syn_op"].si == 12.5e-12
        assert profile.energy["p_static"].si == 30e-3


def _mutations():
    """(id, change to the valid Loihi profile, key the message must name)."""
    def set_(dotted, value):
        def apply(d):
            *head, last = dotted.split(".")
            for k in head:
                d = d[k]
            d[last] = value
        return apply

    def drop(dotted):
        def apply(d):
            *head, last = dotted.split(".")
            for k in head:
                d = d[k]
            del d[last]
        return apply

    yield "unknown top-level key", set_("power", 3), "power"
    yield "missing required key", drop("latency"), "latency"
    for field in ("value", "unit", "source", "kind"):
        yield f"constant missing {field}", drop(f"energy.e_syn_op.{field}"), f"energy.e_syn_op.{field}"
    yield "empty source", set_("energy.e_syn_op.source", "  "), "energy.e_syn_op.source"
    yield "non-numeric value", set_("latency.t_syn_op.value", "fast"), "latency.t_syn_op.value"
    yield "negative value", set_("energy.e_hop_ew.value", -3.0), "energy.e_hop_ew.value"
    yield "unknown unit", set_("energy.e_syn_op.unit", "kcal"), "energy.e_syn_op.unit"
    yield "unit of the wrong dimension", set_("latency.t_hop_ns.unit", "pJ"), "latency.t_hop_ns.unit"
    yield "constant kind", set_("energy.e_syn_op.kind", "guessed"), "energy.e_syn_op.kind"
    yield "profile kind", set_("kind", "cnn"), "kind"
    yield "estimated not a bool", set_("estimated", "maybe"), "estimated"
    yield "limit negative", set_("limits.cores.value", -1), "limits.cores.value"
    yield "limit without source", drop("limits.cores.source"), "limits.cores.source"
    yield "per-core list too short", set_("limits.weight_bits.value", [8, 8]), "limits.weight_bits.value"
    yield "unknown constant key", set_("energy.e_syn_op.note", "x"), "energy.e_syn_op.note"


@pytest.mark.parametrize("change, key", [m[1:] for m in _mutations()], ids=[m[0] for m in _mutations()])
def test_malformed_profile_names_file_and_key(tmp_path, base, change, key):
    data = copy.deepcopy(base)
    change(data)
    path = _write(tmp_path, data, "broken-chip.yaml")
    with pytest.raises(ChipError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert "broken-chip.yaml" in message and key in message, message
    assert "\n" not in message


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = _write(tmp_path, "name: x\nenergy: {e_syn_op: [1, 2\nlatency: {}\n", "bad-syntax.yaml")
    with pytest.raises(ChipError, match=r"bad-syntax\.yaml: YAML syntax error at line \d+"):
        load_profile(str(path))


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(ChipError, match=r"nothere\.yaml: file not found"):
        load_profile(str(tmp_path / "nothere.yaml"))
    with pytest.raises(ChipError, match=r"unknown chip profile 'loihi3' \(shipped: .*loihi2"):
        load_profile("loihi3")


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ChipError, match=r"list\.yaml: <top level>"):
        load_profile(str(_write(tmp_path, "- 1\n- 2\n", "list.yaml")))


def test_pyproject_ships_the_profiles():
    # The YAML files are data, not modules: without this package-data line an installed wheel has none.
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"spikestack.energy" = ["profiles/*.yaml"]' in pyproject
    assert sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")) == sorted(SHIPPED)


def test_loihi2_limits_from_loihi2_sources_and_costs_stated_as_derived():
    """No per-operation cost of Loihi 2 is public: each is Loihi 1's, said to be derived and `assumed`;
    its chip-level limits come from Intel's published figures (issue 21)."""
    loihi2 = load_profile("loihi2")
    for _, c in _constants(loihi2):
        assert c.kind == "assumed" and c.source.startswith("derived from Loihi 1 (Davies et al. 2018 Table 2)")
    for name in ("cores", "neurons_per_chip", "synapses_per_chip"):
        source, kind = loihi2.limit_sources[name]
        assert kind == "published" and "wikichip" in source.lower(), (name, source)
    assert "derived from Loihi 1" in loihi2.description
