"""Each plot draws the bars and labels a reader expects (Agg backend, nothing shown)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import alpnet  # noqa: E402
from alpnet import plots  # noqa: E402
from alpnet.explain import explain  # noqa: E402
from alpnet.whatif import compare_scenarios, what_if  # noqa: E402

from .conftest import EXAMPLES  # noqa: E402


@pytest.fixture(scope="module")
def case():
    return alpnet.read_case(EXAMPLES / "paget_vs_metastases_metastases.yaml")


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def bars(ax):
    return [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]


def ytick_texts(ax):
    return [t.get_text() for t in ax.get_yticklabels()]


def test_posterior_bars_in_peoples_words_with_the_prior_marked(model, case):
    table = model.diagnose(case)
    ax = plots.plot_posterior(table, top=6)
    assert isinstance(ax, matplotlib.axes.Axes)
    assert len(bars(ax)) == 6
    labels = ytick_texts(ax)
    assert labels[-1] == "Bone metastases"  # the leading cause at the top
    assert "bone_metastases" not in labels
    widths = sorted((b.get_width() for b in bars(ax)), reverse=True)
    assert widths == pytest.approx(list(table["posterior"].head(6)))
    priors = [line for line in ax.get_lines() if line.get_label() == "prior"]
    assert len(priors) == 1
    assert sorted(priors[0].get_xdata()) == pytest.approx(sorted(table["prior"].head(6)))


def test_posterior_draws_on_a_given_axes(model, case):
    fig, (a, b) = plt.subplots(1, 2)
    assert plots.plot_posterior(model.diagnose(case), ax=b) is b
    assert not a.patches


def test_next_test_bars_are_the_expected_information_gains(model, case):
    ranking = model.rank_tests(case)
    ax = plots.plot_next_test(ranking, top=5)
    top5 = ranking.sort_values("expected_information_gain_bits", ascending=False).head(5)
    assert len(bars(ax)) == 5
    assert sorted(b.get_width() for b in bars(ax)) == pytest.approx(sorted(top5["expected_information_gain_bits"]))
    assert ytick_texts(ax)[-1].startswith(plots.short_label(top5["label"].iloc[0]))
    assert "bits" in ax.get_xlabel()


def test_what_if_draws_before_and_after_for_each_cause(model, case):
    df = what_if(model, case, set={"tests.bone_scan": "paget_pattern"}, next_test=False)
    ax = plots.plot_what_if(df, top=4)
    assert len(bars(ax)) == 8
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["before", "after"]
    assert "Paget disease of bone" in ytick_texts(ax) and "Bone metastases" in ytick_texts(ax)
    assert "tests.bone_scan = paget_pattern" in ax.get_title()
    heights = {round(b.get_width(), 12) for b in bars(ax)}
    paget = df.set_index("cause").loc["paget"]
    assert round(paget["before"], 12) in heights and round(paget["after"], 12) in heights


def test_scenarios_draw_one_bar_per_scenario_and_cause(model, case):
    df = compare_scenarios(model, case, [{"name": "scan", "set": {"tests.bone_scan": "paget_pattern"}},
                                         {"name": "no PSA", "unset": ["labs.psa"]}], next_test=False)
    ax = plots.plot_what_if(df, top=3)
    assert len(bars(ax)) == 9
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["before", "scan", "no PSA"]


def test_waterfall_steps_from_prior_to_posterior(model, case):
    ex = explain(model, case, cause="bone_metastases")
    ax = plots.plot_waterfall(ex)
    rows = ex.for_cause("bone_metastases")
    rects = bars(ax)
    assert len(rects) == len(rows) + 2
    labels = ytick_texts(ax)
    assert labels[0].startswith("prior") and labels[-1].startswith("posterior")
    assert "Prostate-specific antigen: high" in labels
    s = ex.summary.iloc[0]
    # the last finding's bar ends where the posterior bar ends: the contributions add up
    last = rects[-2]
    assert last.get_x() + last.get_width() == pytest.approx(s["posterior_log_odds_bits"], abs=1e-9)
    assert rects[0].get_width() == pytest.approx(s["prior_log_odds_bits"])
    assert "Bone metastases" in ax.get_title()


def test_network_shades_causes_and_labels_them_in_peoples_words(model, case):
    evidence, _ = model.evidence_of(case)
    post = model.engine.posterior(evidence)
    ax = plots.plot_network(model, evidence)
    texts = [t.get_text() for t in ax.texts]
    for cause in model.causes:
        assert any(t.startswith(plots.short_label(model.label(cause), 26)) for t in texts), cause
    assert any(t.startswith("Prostate-specific antigen") and t.endswith("high") for t in texts)
    nodes = ax.collections[-1]
    n_nodes = len(model.priors.hidden) + len(evidence)
    assert len(nodes.get_offsets()) == n_nodes
    colours = nodes.get_facecolors()
    hidden = list(model.priors.hidden)
    ctx = [v for v in model.priors.context if v in evidence]
    shade = {h: colours[len(ctx) + i] for i, h in enumerate(hidden)}
    # the most probable cause is drawn darkest
    darkest = min(hidden, key=lambda h: shade[h][:3].sum())
    assert darkest == max(hidden, key=lambda h: post[h])
    full = plots.plot_network(model, evidence, show="all")
    assert len(full.collections[-1].get_offsets()) == len(model.priors.variables)


def test_figure_bytes_are_a_png(model, case):
    data = plots.figure_png(plots.plot_posterior(model.diagnose(case)))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == []


def test_short_label_keeps_peoples_words():
    assert plots.short_label("Cholestatic liver disease (bile-duct obstruction, PBC)") == "Cholestatic liver disease"
    assert len(plots.short_label("x" * 100, 20)) == 20


@pytest.mark.parametrize("argv", [
    ["diagnose", str(EXAMPLES / "paget.yaml")],
    ["diagnose", str(EXAMPLES / "paget.yaml"), "--plot-network"],
    ["next-test", str(EXAMPLES / "paget.yaml"), "--top", "4"],
])
def test_cli_plot_writes_one_image_and_refuses_to_replace_it(capsys, tmp_path, argv):
    from alpnet.cli import main

    target = tmp_path / "out.png"
    assert main(argv + ["--plot", str(target)]) == 0
    assert target.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    capsys.readouterr()
    before = target.read_bytes()
    assert main(argv + ["--plot", str(target)]) == 2  # refused before anything is computed
    assert "already exists; use --force" in capsys.readouterr().err
    assert target.read_bytes() == before


def test_cli_diagnose_plot_takes_one_case(capsys, tmp_path):
    from alpnet.cli import main

    code = main(["diagnose", str(EXAMPLES / "paget.yaml"), str(EXAMPLES / "growth.yaml"),
                 "--plot", str(tmp_path / "x.png")])
    assert code == 2 and "draws one case; got 2 cases" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
