"""Metric functions of scripts/evaluate.py (and the pure helpers of
scripts/report.py) on small hand-built docs with known answers."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from spacy.tokens import Span

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "code"))

import evaluate as ev  # noqa: E402
import report as rp  # noqa: E402
import vi_ie  # noqa: E402
from corpus import blank_nlp  # noqa: E402

TEXT = "Ông Nguyễn Văn An giữ chức Chủ tịch Ủy ban nhân dân tỉnh Hòa Bình"
# tokens: Ông0 Nguyễn1 Văn2 An3 giữ4 chức5 Chủ6 tịch7 Ủy8 ban9 nhân10 dân11 tỉnh12 Hòa13 Bình14


@pytest.fixture(scope="module")
def nlp():
    return blank_nlp()


def make(nlp, ents=(), mandates=(), relations=(), text=TEXT):
    """A doc of ``text`` with entities/mandates (start, end, label) and
    relations ((head index, child index, label)) over ents + mandates."""
    doc = nlp.make_doc(text)
    doc.ents = [Span(doc, s, e, label=lab) for s, e, lab in ents]
    doc.spans[vi_ie.MANDATES_KEY] = [Span(doc, s, e, label=lab) for s, e, lab in mandates]
    spans = list(doc.ents) + list(doc.spans[vi_ie.MANDATES_KEY])
    vi_ie.set_relations(doc, [(spans[h], spans[c], lab, 1.0) for h, c, lab in relations])
    return doc


def test_tokens_as_documented(nlp):
    assert [t.text for t in nlp.make_doc(TEXT)][13:] == ["Hòa", "Bình"]


def test_entity_wrong_label_halves_precision_and_recall(nlp):
    gold = make(nlp, ents=[(1, 4, "PERSON"), (6, 8, "ROLE"), (8, 15, "OFFICE")])
    pred = make(nlp, ents=[(1, 4, "PERSON"), (6, 8, "OFFICE"), (8, 12, "OFFICE")])
    scores = ev.entity_scores([gold], [pred])
    micro = scores["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (1, 2, 2)
    assert micro["p"] == pytest.approx(1 / 3) and micro["r"] == pytest.approx(1 / 3)
    assert scores["per_label"]["PERSON"]["f"] == 1.0
    assert scores["per_label"]["ROLE"] == {"p": 0.0, "r": 0.0, "f": 0.0, "tp": 0, "fp": 0, "fn": 1}
    assert (scores["per_label"]["OFFICE"]["tp"], scores["per_label"]["OFFICE"]["fp"]) == (0, 2)
    # seqeval strict agrees with exact-span matching
    assert scores["seqeval"]["micro avg"]["f1-score"] == pytest.approx(1 / 3)
    assert scores["seqeval"]["ROLE"]["support"] == 1
    assert "OFFICE" in scores["seqeval_report"]


def test_iob2_tags_keep_whitespace_tokens_as_o(nlp):
    doc = nlp.make_doc("Chủ tịch\nỦy ban")
    assert len(doc) == 5 and not doc[2].text.strip()
    doc.ents = [Span(doc, 0, 2, label="ROLE"), Span(doc, 3, 5, label="OFFICE")]
    assert ev.iob2_tags(doc) == ["B-ROLE", "I-ROLE", "O", "B-OFFICE", "I-OFFICE"]


def test_overlap_ratio_boundary():
    assert ev.overlap_ratio((0, 4), (0, 2)) == 0.5
    assert ev.overlap_ratio((0, 5), (0, 2)) == 0.4
    assert ev.overlap_ratio((0, 2), (2, 4)) == 0.0


@pytest.mark.parametrize("gold_end,matched", [(10, True), (11, False)])
def test_mandate_half_overlap_is_enough_less_is_not(nlp, gold_end, matched):
    # predicted [6, 8) inside gold [6, gold_end): 2 of 4 tokens (0.5) or 2 of 5 (0.4)
    gold = make(nlp, mandates=[(6, gold_end, "MANDATE")])
    pred = make(nlp, mandates=[(6, 8, "MANDATE")])
    scores = ev.mandate_scores([gold], [pred])
    assert scores["exact"]["tp"] == 0 and scores["exact"]["f"] == 0.0
    assert scores["overlap"]["tp"] == (1 if matched else 0)
    assert scores["overlap"]["f"] == (1.0 if matched else 0.0)


def test_overlap_matching_is_one_to_one_and_prefers_exact(nlp):
    gold = [(6, 10, "MANDATE")]
    pred = [(6, 8, "MANDATE"), (6, 10, "MANDATE")]
    assert ev.overlap_matches(gold, pred) == [(0, 1)]
    scores = ev.mandate_scores([make(nlp, mandates=gold)], [make(nlp, mandates=pred)])
    assert (scores["overlap"]["tp"], scores["overlap"]["fp"], scores["overlap"]["fn"]) == (1, 1, 0)
    assert scores["exact"]["p"] == 0.5 and scores["exact"]["r"] == 1.0


def test_overlap_needs_same_label():
    assert ev.overlap_matches([(0, 4, "OFFICE")], [(0, 4, "ROLE")]) == []


def test_relations_strict(nlp):
    ents = [(1, 4, "PERSON"), (6, 8, "ROLE"), (8, 15, "OFFICE")]
    gold = make(nlp, ents=ents, relations=[(0, 1, "HOLDS"), (1, 2, "ROLE_IN")])
    # right HOLDS; ROLE_IN with a shorter child office is wrong, so is an extra relation
    pred = make(nlp, ents=ents[:2] + [(8, 12, "OFFICE")], relations=[(0, 1, "HOLDS"), (1, 2, "ROLE_IN"), (2, 0, "ESTABLISHES")])
    scores = ev.relation_scores([gold], [pred])
    assert scores["rel_micro_p"] == pytest.approx(1 / 3)
    assert scores["rel_micro_r"] == pytest.approx(1 / 2)
    assert scores["rel_per_type"]["HOLDS"]["f"] == 1.0
    assert scores["rel_per_type"]["ROLE_IN"]["r"] == 0.0


def test_entity_confusion(nlp):
    gold = make(nlp, ents=[(1, 4, "PERSON"), (6, 8, "ROLE"), (8, 15, "OFFICE")])
    pred = make(nlp, ents=[(1, 4, "PERSON"), (6, 8, "OFFICE"), (8, 12, "OFFICE")])
    m = ev.entity_confusion([gold], [pred])
    assert m["PERSON"]["PERSON"] == 1
    assert m["ROLE"]["OFFICE"] == 1
    assert m["OFFICE"]["missed"] == 1
    assert m["spurious"]["OFFICE"] == 1
    assert sum(sum(row.values()) for row in m.values()) == 4


def test_mismatched_token_counts_are_refused(nlp):
    gold = make(nlp, ents=[(1, 4, "PERSON")])
    longer = make(nlp, text=TEXT + " mới")
    with pytest.raises(ev.TokenCountMismatch):
        ev.project_onto(longer, gold)
    with pytest.raises(ev.TokenCountMismatch):
        ev.entity_scores([gold], [longer])


def _ruler_nlp():
    nlp = blank_nlp()
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "NORM"})
    ruler.add_patterns([{"label": "OFFICE", "pattern": "Ủy ban nhân dân tỉnh Hòa Bình"}, {"label": "ROLE", "pattern": "Chủ tịch"}])
    return nlp


@pytest.mark.parametrize("variant", ["nfd", "tone"])
def test_variant_predictions_scored_against_clean_gold(variant):
    nlp = _ruler_nlp()
    gold = make(nlp, ents=[(6, 8, "ROLE"), (8, 15, "OFFICE")])
    assert ev.variant_function(variant)(TEXT) != TEXT  # the variant really changes the text
    result = ev.evaluate_file(nlp, [gold], variant)
    assert result["entities"]["micro"]["f"] == 1.0
    assert "spacy" not in result


def test_variant_with_other_token_count_fails_loudly(monkeypatch):
    nlp = _ruler_nlp()
    gold = make(nlp, ents=[(6, 8, "ROLE")])
    monkeypatch.setattr(ev, "variant_function", lambda name, seed=0: lambda text: text.replace("Hòa Bình", "Hòa-Bình"))
    with pytest.raises(ev.TokenCountMismatch):
        ev.evaluate_file(nlp, [gold], "hyphen")


def test_clean_run_carries_spacy_scores():
    nlp = _ruler_nlp()
    gold = make(nlp, ents=[(1, 4, "PERSON"), (6, 8, "ROLE"), (8, 15, "OFFICE")])
    result = ev.evaluate_file(nlp, [gold], "clean")
    assert result["entities"]["micro"]["r"] == pytest.approx(2 / 3)
    assert result["spacy"]["ents_f"] == pytest.approx(result["entities"]["micro"]["f"])


def test_threshold_sweep_counts_uncovered_gold_as_missed():
    gold = {("a", "HOLDS"), ("b", "HOLDS"), ("c", "HOLDS")}  # "c" is no candidate
    scored = [(("a", "HOLDS"), "HOLDS", 0.9), (("b", "HOLDS"), "HOLDS", 0.3), (("x", "HOLDS"), "HOLDS", 0.6)]
    sweep = ev.threshold_sweep(scored, gold, thresholds=(0.25, 0.5, 0.75))
    by_t = {r["threshold"]: r for r in sweep["HOLDS"]}
    assert (by_t[0.25]["tp"], by_t[0.25]["fp"], by_t[0.25]["fn"]) == (2, 1, 1)
    assert (by_t[0.5]["tp"], by_t[0.5]["fp"], by_t[0.5]["fn"]) == (1, 1, 2)
    assert (by_t[0.75]["tp"], by_t[0.75]["fp"], by_t[0.75]["fn"]) == (1, 0, 2)
    assert ev.best_thresholds(sweep)["HOLDS"]["threshold"] == 0.25


def test_candidate_keys_match_gold_relation_keys(nlp):
    gold = make(nlp, ents=[(1, 4, "PERSON"), (6, 8, "ROLE")], relations=[(0, 1, "HOLDS")])
    import numpy

    scored = ev.candidate_keys(gold, [(1, 4, "PERSON", 6, 8, "ROLE")], numpy.array([[0.7, 0.0]]), ["HOLDS", "ROLE_IN"])
    assert [(label, s) for _, label, s in scored] == [("HOLDS", pytest.approx(0.7))]
    assert scored[0][0] == vi_ie.relation_key(gold._.relations[0])


def test_subsets_are_seeded_nested_prefixes():
    small, large = rp.subset_indices(40, 0.1, seed=3), rp.subset_indices(40, 0.5, seed=3)
    assert len(small) == 4 and len(large) == 20 and set(small) <= set(large)
    assert rp.subset_indices(40, 0.1, seed=3) == small
    assert rp.subset_indices(3, 0.1) and len(rp.subset_indices(3, 0.1)) == 1


def test_baseline_ruler_finds_training_strings_by_norm(nlp):
    train = [make(nlp, ents=[(1, 4, "PERSON"), (6, 8, "ROLE"), (8, 15, "OFFICE")])]
    baseline = rp.build_baseline(train)
    doc = baseline("Bổ nhiệm ông Nguyễn Văn An làm chủ tịch " + "Uỷ ban nhân dân tỉnh Hoà Bình")
    assert [(e.text, e.label_) for e in doc.ents] == [
        ("Nguyễn Văn An", "PERSON"), ("chủ tịch", "ROLE"), ("Uỷ ban nhân dân tỉnh Hoà Bình", "OFFICE"),
    ]
