"""Prior validation: every rule is triggered by a broken copy of the bundled set,
and the error names the file, the key and the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

import alpnet
from alpnet.errors import PriorsError
from alpnet.priors import bundled_priors_path, load_priors


@pytest.fixture
def copy(tmp_path) -> Path:
    dst = tmp_path / "priors"
    shutil.copytree(bundled_priors_path(), dst)
    return dst


def edit(path: Path, change) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def first_cause(doc):
    return next(iter(doc["causes"].values()))


def first_finding(doc):
    return next(iter(doc["findings"].values()))


def test_bundled_set_is_valid_and_hashes_stably():
    a = load_priors()
    b = load_priors()
    assert a.sha256 == b.sha256 and len(a.sha256) == 64
    assert len(a.parameters) > 200


def test_probability_outside_0_1(copy):
    edit(copy / "causes.yaml", lambda d: first_cause(d)["baseline"][0].update(value=1.5, range=[0, 2]))
    with pytest.raises(PriorsError, match=r"priors/causes.yaml: causes\.\w+\.baseline\[0\]: probability 1.5 is outside \[0, 1\]"):
        load_priors(copy)


def test_range_must_contain_value(copy):
    def change(d):
        row = first_cause(d)["baseline"][0]
        row["range"] = [row["value"] + 0.1, row["value"] + 0.2] if row["value"] < 0.8 else [0.0, 0.01]
    edit(copy / "causes.yaml", change)
    with pytest.raises(PriorsError, match=r"priors/causes.yaml: causes\.\w+\.baseline\[0\]\.range: range .* does not contain the value"):
        load_priors(copy)


def test_distribution_must_sum_to_one(copy):
    path = next((copy / "findings").glob("*.yaml"))

    def change(d):
        leak = first_finding(d)["leak"]
        if "p" in leak:
            k = next(iter(leak["p"]))
            leak["p"][k] = leak["p"][k] + 0.2 if leak["p"][k] <= 0.8 else leak["p"][k] - 0.2
            leak["range"][k] = [0, 1]
        else:  # binary given as P(true): break it as a distribution instead
            first_finding(d)["leak"] = {"p": {"false": 0.5, "true": 0.6}, "range": {"false": [0, 1], "true": [0, 1]},
                                        "source": "expert-judgment", "note": "broken"}
    edit(path, change)
    with pytest.raises(PriorsError, match=r"findings\.\w+\.leak\.p: values sum to .*, not 1"):
        load_priors(copy)


def test_unknown_parent_and_unknown_state(copy):
    edit(copy / "causes.yaml", lambda d: first_cause(d)["baseline"][0].update(when={"shoe_size": 44}))
    with pytest.raises(PriorsError, match=r"priors/causes.yaml: causes\.\w+\.baseline\[0\]\.when\.shoe_size: unknown parent variable"):
        load_priors(copy)


def test_unknown_state_in_when(copy, tmp_path):
    edit(copy / "causes.yaml", lambda d: first_cause(d)["baseline"][0].update(when={"sex": "other"}))
    with pytest.raises(PriorsError, match=r"when\.sex: unknown state 'other'; accepted: female, male"):
        load_priors(copy)


def test_unknown_source_id(copy):
    edit(copy / "causes.yaml", lambda d: first_cause(d)["baseline"][0].update(source="nobody2099"))
    with pytest.raises(PriorsError, match=r"priors/causes.yaml: causes\.\w+\.baseline\[0\]: source 'nobody2099' is not in priors/sources"):
        load_priors(copy)


def test_unused_source(copy):
    path = next((copy / "sources").glob("*.yaml"))
    edit(path, lambda d: d["sources"].update(unused2020={"citation": "Nobody. Nothing. 2020.", "url": "https://example.org"}))
    with pytest.raises(PriorsError, match=r"sources\.unused2020: is not used by any parameter"):
        load_priors(copy)


def test_cycle_is_refused(copy):
    def change(d):
        causes = d["causes"]
        # osteomalacia depends on vitamin_d_deficiency; make vitamin_d_deficiency depend on osteomalacia
        causes["vitamin_d_deficiency"].setdefault("links", []).append(
            {"when": {"osteomalacia": "present"}, "value": 0.1, "range": [0, 0.2], "source": "expert-judgment", "note": "x"})
    edit(copy / "causes.yaml", change)
    with pytest.raises(PriorsError, match=r"the graph has a cycle: .*osteomalacia.*vitamin_d_deficiency|the graph has a cycle: .*vitamin_d_deficiency.*osteomalacia"):
        load_priors(copy)


def test_rows_must_cover_every_parent_combination(copy):
    def change(d):
        cause = first_cause(d)
        cause["baseline"] = [{**cause["baseline"][0], "when": {"sex": "female"}}]
    edit(copy / "causes.yaml", change)
    with pytest.raises(PriorsError, match=r"baseline: no row matches sex=male"):
        load_priors(copy)


def test_missing_note_and_broken_yaml(copy):
    edit(copy / "causes.yaml", lambda d: first_cause(d)["baseline"][0].pop("note"))
    with pytest.raises(PriorsError, match=r"baseline\[0\]: needs a `note`"):
        load_priors(copy)
    (copy / "causes.yaml").write_text("causes: [unclosed\n")
    with pytest.raises(PriorsError, match=r"priors/causes.yaml: \(file\): is not valid YAML"):
        load_priors(copy)


def test_reference_lln_below_uln(copy):
    def change(d):
        row = d["labs"]["calcium"]["reference"][-1]
        row["lln"], row["uln"] = 3.0, 2.0
    edit(copy / "reference.yaml", change)
    with pytest.raises(PriorsError, match=r"priors/reference.yaml: labs.calcium.reference\[\d+\]: lln 3.0 must be below uln 2.0"):
        load_priors(copy)


def test_priors_error_is_a_value_error_and_cli_exit_2(copy, capsys):
    (copy / "model.yaml").unlink()
    with pytest.raises(ValueError):
        load_priors(copy)
    from alpnet.cli import main

    assert main(["priors", "validate", "--priors", str(copy)]) == 2
    assert "no model.yaml" in capsys.readouterr().err


def test_every_source_entry_has_citation_and_locator():
    pset = load_priors()
    for sid, entry in pset.sources.items():
        assert entry.get("citation"), sid
        assert any(entry.get(k) for k in ("url", "pmid", "doi")), sid


def test_expert_judgment_is_visible_and_explained():
    pset = load_priors()
    ej = [p for p in pset.parameters.values() if p.source == "expert-judgment"]
    assert all(len(p.note.strip()) > 15 for p in ej)
    literature = [p for p in pset.parameters.values() if p.literature]
    assert len(literature) > len(ej)


def test_overrides_keep_columns_normalised():
    model = alpnet.load_model()
    pset = model.priors
    pid = next(i for i, p in pset.parameters.items() if i in pset.columns and 0.05 < p.value < 0.9)
    new = pset.with_overrides({pid: 0.5})
    column = [pid] + [q for q in pset.columns[pid] if q != pid]
    assert sum(new.parameters[q].value for q in column) == pytest.approx(1.0)
    assert new.parameters[pid].value == 0.5
    assert pset.parameters[pid].value != 0.5  # the original set is untouched
