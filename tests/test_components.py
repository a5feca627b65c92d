"""Tests of the custom components in code/vi_ie.py on real spaCy objects."""
from __future__ import annotations

import pickle

import numpy
import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example

import vi_ie
from corpus import blank_nlp, read_records
from convert import records_to_docbin


@pytest.fixture(scope="module")
def dev_docs(repo_root):
    records = list(read_records(repo_root / "corpus" / "dev.jsonl"))[:6]
    nlp = blank_nlp()
    return list(records_to_docbin(records, nlp).get_docs(nlp.vocab))


def small_pipeline(repo_root):
    """A fresh, untrained pipeline from the default config with small widths."""
    config = spacy.util.load_config(repo_root / "configs" / "default.cfg", overrides={
        "components.tok2vec.model.encode.width": 32,
        "components.tok2vec.model.encode.depth": 1,
        "components.relation_extractor.model.hidden_width": 16,
    })
    return spacy.util.load_model_from_config(config, auto_fill=True, validate=True)


def test_relation_extractor_initialise_and_update(repo_root, dev_docs):
    nlp = small_pipeline(repo_root)
    examples = [Example(nlp.make_doc(d.text), d) for d in dev_docs]
    optimizer = nlp.initialize(lambda: examples)
    rel = nlp.get_pipe("relation_extractor")
    assert set(rel.labels) == {r.label for d in dev_docs for r in d._.relations}
    losses_seen = []
    for _ in range(8):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses, annotates=["ner", "mandate_tagger", "mandate_spans"])
        losses_seen.append(losses["relation_extractor"])
    assert all(numpy.isfinite(losses_seen))
    assert losses_seen[-1] < losses_seen[0]


def test_relation_extractor_learns_gold_arguments(repo_root, dev_docs):
    """Given gold entities and mandates, a few updates fit the relations of
    one document better than chance."""
    nlp = small_pipeline(repo_root)
    doc = dev_docs[0]
    examples = [Example(nlp.make_doc(doc.text), doc)]
    optimizer = nlp.initialize(lambda: examples)
    rel = nlp.get_pipe("relation_extractor")
    for _ in range(30):
        pred = nlp.make_doc(doc.text)
        pred.ents = [pred.char_span(e.start_char, e.end_char, label=e.label_) for e in doc.ents]
        pred.spans["mandates"] = [pred.char_span(s.start_char, s.end_char, label=s.label_) for s in doc.spans["mandates"]]
        eg = Example(pred, doc)
        nlp.get_pipe("tok2vec").update([eg], sgd=optimizer)
        rel.update([eg], sgd=optimizer)
    pred = nlp.make_doc(doc.text)
    pred.ents = [pred.char_span(e.start_char, e.end_char, label=e.label_) for e in doc.ents]
    pred.spans["mandates"] = [pred.char_span(s.start_char, s.end_char, label=s.label_) for s in doc.spans["mandates"]]
    pred = rel(nlp.get_pipe("tok2vec")(pred))
    scores = vi_ie.score_relations([Example(pred, doc)])
    assert scores["rel_micro_f"] > 0.5


def test_empty_and_whitespace_docs(trained_nlp):
    for text in ("", "   ", "\n\n"):
        doc = trained_nlp(text)
        assert doc.text == text
        assert doc._.relations == []
        assert list(doc.spans.get("mandates", [])) == []


def test_to_disk_and_back_keeps_predictions_and_thresholds(trained_nlp, dev_docs, tmp_path):
    rel = trained_nlp.get_pipe("relation_extractor")
    rel.set_thresholds({label: 0.35 for label in rel.labels})
    trained_nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    loaded_thresholds = loaded.get_pipe("relation_extractor").cfg["thresholds"]
    assert set(loaded_thresholds) == set(rel.labels)
    assert loaded_thresholds == pytest.approx(rel.cfg["thresholds"])
    for gold in dev_docs[:3]:
        a, b = trained_nlp(gold.text), loaded(gold.text)
        assert [(e.start, e.end, e.label_) for e in a.ents] == [(e.start, e.end, e.label_) for e in b.ents]
        assert [r.as_tuple() for r in a._.relations] == [r.as_tuple() for r in b._.relations]
        assert [r.score for r in a._.relations] == pytest.approx([r.score for r in b._.relations], abs=1e-6)


def test_mandate_settings_are_saved(trained_nlp, tmp_path):
    pipe = trained_nlp.get_pipe("mandate_spans")
    old = pipe.min_tagged
    pipe.min_tagged = old + 4
    try:
        trained_nlp.to_disk(tmp_path / "model")
        assert spacy.load(tmp_path / "model").get_pipe("mandate_spans").min_tagged == old + 4
        assert pickle.loads(pickle.dumps(trained_nlp)).get_pipe("mandate_spans").min_tagged == old + 4
    finally:
        pipe.min_tagged = old


def test_pickle_doc_and_pipeline(trained_nlp, dev_docs):
    doc = trained_nlp(dev_docs[0].text)
    again = pickle.loads(pickle.dumps(doc))
    assert [r.as_tuple() for r in again._.relations] == [r.as_tuple() for r in doc._.relations]
    nlp2 = pickle.loads(pickle.dumps(trained_nlp))
    doc2 = nlp2(dev_docs[0].text)
    assert [(e.start, e.end, e.label_) for e in doc2.ents] == [(e.start, e.end, e.label_) for e in doc.ents]


def test_docbin_round_trip_keeps_gold(dev_docs):
    nlp = blank_nlp()
    data = DocBin(store_user_data=True, docs=dev_docs).to_bytes()
    back = list(DocBin().from_bytes(data).get_docs(nlp.vocab))
    for a, b in zip(dev_docs, back):
        assert [(e.start_char, e.end_char, e.label_) for e in a.ents] == [(e.start_char, e.end_char, e.label_) for e in b.ents]
        assert [(s.start, s.end, s.label_) for s in a.spans["mandates"]] == [(s.start, s.end, s.label_) for s in b.spans["mandates"]]
        assert [r.as_tuple() for r in a._.relations] == [r.as_tuple() for r in b._.relations]
        assert a._.relations


def test_pipe_with_two_processes_matches_one(trained_nlp, dev_docs):
    texts = [d.text for d in dev_docs[:4]]
    one = [[r.as_tuple() for r in d._.relations] + [(e.start, e.end, e.label_) for e in d.ents] for d in trained_nlp.pipe(texts)]
    two = [[r.as_tuple() for r in d._.relations] + [(e.start, e.end, e.label_) for e in d.ents] for d in trained_nlp.pipe(texts, n_process=2, batch_size=2)]
    assert one == two


def test_candidates_stay_in_sentence_and_follow_the_schema(dev_docs):
    doc = dev_docs[0]
    spans = vi_ie.argument_spans(doc)
    cands = vi_ie.make_candidates(doc, spans, max_distance=100)
    assert cands
    for hs, he, hl, cs, ce, cl in cands:
        assert doc[hs].sent.start == doc[cs].sent.start
        assert vi_ie.allowed_labels(hl, cl)
    # every gold relation is among the candidates built from the gold spans
    keys = {(c[0], c[1], c[2], c[3], c[4], c[5]) for c in cands}
    for r in doc._.relations:
        assert (r.head.start, r.head.end, r.head.label_, r.child.start, r.child.end, r.child.label_) in keys


def test_focal_loss_gradient_matches_finite_differences():
    rng = numpy.random.default_rng(0)
    logits = rng.normal(size=(5, 3)).astype("float64")
    targets = (rng.random((5, 3)) > 0.7).astype("float64")
    mask = numpy.ones((5, 3))
    mask[0, 1] = 0
    loss, grad = vi_ie.focal_loss_grad(numpy, logits, targets, mask, gamma=2.0, positive_weight=3.0)
    eps = 1e-5
    for i, j in [(0, 0), (1, 2), (3, 1), (0, 1)]:
        up, down = logits.copy(), logits.copy()
        up[i, j] += eps
        down[i, j] -= eps
        numeric = (vi_ie.focal_loss_grad(numpy, up, targets, mask, 2.0, 3.0)[0]
                   - vi_ie.focal_loss_grad(numpy, down, targets, mask, 2.0, 3.0)[0]) / (2 * eps)
        assert grad[i, j] == pytest.approx(numeric, rel=1e-3, abs=1e-6)


def test_mandate_bio_tags_round_trip(dev_docs):
    for doc in dev_docs:
        spans = list(doc.spans["mandates"])
        tags = vi_ie.mandate_tags(doc, spans)
        assert vi_ie.spans_from_tags(tags) == [(s.start, s.end) for s in spans]
    assert vi_ie.spans_from_tags(["O", "I-MANDATE", "I-MANDATE", "B-MANDATE", "O"]) == [(1, 3), (3, 4)]


def test_clause_decoding_runs_a_duty_to_its_clause_end():
    forms = ["có", "nhiệm", "vụ", "tham", "mưu", "cho", "UBND", "tỉnh", "về", "việc", ";", "kiểm", "tra", "x", "y", "z", "."]
    tags = ["O", "O", "O", "B-MANDATE", "I-MANDATE", "O", "I-MANDATE", "I-MANDATE", "O", "O", "O",
            "I-MANDATE", "O", "O", "O", "O", "O"]
    # first duty: from its first tagged token over the hole to ";"; the
    # second clause has one stray tag only and is dropped
    assert vi_ie.spans_from_tags(tags, forms, min_length=5, min_tagged=2) == [(3, 10)]
    assert vi_ie.spans_from_tags(tags, forms, min_length=5, min_tagged=5) == []


def test_mandate_spans_component_reads_tags(dev_docs):
    nlp = blank_nlp()
    nlp.add_pipe("mandate_spans")
    gold = dev_docs[0]
    doc = nlp.make_doc(gold.text)
    for token, tag in zip(doc, vi_ie.mandate_tags(doc, gold.spans["mandates"])):
        token.tag_ = tag
    doc = nlp.get_pipe("mandate_spans")(doc)
    assert [(s.start, s.end, s.label_) for s in doc.spans["mandates"]] == [(s.start, s.end, "MANDATE") for s in gold.spans["mandates"]]


def test_score_relations_counts_missed_gold_as_miss(dev_docs):
    gold = dev_docs[0]
    pred = blank_nlp().make_doc(gold.text)
    kept = gold._.relations[:1]
    vi_ie.set_relations(pred, [(spacy.tokens.Span(pred, r.head.start, r.head.end, label=r.head.label_),
                                spacy.tokens.Span(pred, r.child.start, r.child.end, label=r.child.label_), r.label, 1.0)
                               for r in kept])
    scores = vi_ie.score_relations([Example(pred, gold)])
    assert scores["rel_micro_p"] == 1.0
    assert scores["rel_micro_r"] == pytest.approx(1 / len(gold._.relations))
