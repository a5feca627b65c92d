"""Robust input (issue "Robust input").

Real notices arrive decomposed (NFD), with either tone-mark convention, with
no-break and zero-width spaces, CRLF, "Ð" for "Đ" and HTML remnants. The
loaded pipeline must predict the same entities, mandates and relations for
such a variant as for the clean text (compared by token index, since the
tokenizer gives both the same tokens and the features come from the
canonical form), and every span must index the caller's own string. Odd input
(empty, whitespace, 1 MB, English, no diacritics) must not crash. Bad
annotations must be reported with file, line, document id and rule.

The pipeline is the tiny one trained by the ``trained_nlp`` fixture: it
predicts little, but the invariance asserted here holds for any weights.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import unicodedata
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.pipeline import SpanFinder, Tagger
from spacy.tokens import Doc, Span

import vi_ie
import variants
from corpus import CorpusError, Record, load_corpus, read_records, validate_records
from convert import records_to_docbin

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_RECORDS: List[Record] = list(read_records(REPO_ROOT / "corpus" / "test.jsonl"))
VARIANT_NAMES: Tuple[str, ...] = tuple(variants.variant_functions(0))


# ------------------------------------------------------------------ helpers
def apply_variants(text: str, names: Sequence[str], seed: int = 0) -> str:
    functions = variants.variant_functions(seed)
    for name in names:
        text = functions[name](text)
    return text


def argument_spans_of(doc: Doc) -> List[Span]:
    """Every span the pipeline hands back: entities, mandates, relation arguments."""
    spans = list(doc.ents) + list(doc.spans.get(vi_ie.MANDATES_KEY, []))
    for rel in doc._.relations:
        spans += [rel.head, rel.child]
    return spans


def assert_valid_output(text: str, doc: Doc) -> None:
    """The doc is the caller's string and every prediction is a sensible span of it."""
    assert doc.text == text
    for span in argument_spans_of(doc):
        assert 0 <= span.start_char < span.end_char <= len(text), (span, span.start_char, span.end_char)
        assert text[span.start_char:span.end_char] == span.text
        assert doc.text[span.start_char:span.end_char] == span.text
        assert span.label_ in vi_ie.SPAN_LABELS
    for span in doc.ents:
        assert span.label_ in vi_ie.ENTITY_LABELS
    mandates = sorted((s.start, s.end) for s in doc.spans.get(vi_ie.MANDATES_KEY, []))
    for (_, end), (start, _) in zip(mandates, mandates[1:]):
        assert start >= end, "mandate spans overlap"
    arguments = {(s.start, s.end, s.label_) for s in list(doc.ents) + list(doc.spans.get(vi_ie.MANDATES_KEY, []))}
    for rel in doc._.relations:
        assert (rel.head.start, rel.head.end, rel.head.label_) in arguments
        assert (rel.child.start, rel.child.end, rel.child.label_) in arguments
        assert rel.label in vi_ie.allowed_labels(rel.head.label_, rel.child.label_)
        assert rel.head.sent.start == rel.child.sent.start
        assert 0.0 < rel.score <= 1.0


def predictions(doc: Doc) -> Dict[str, list]:
    """Predictions by token index and label (comparable across spelling variants)."""
    return {
        "ents": [(e.start, e.end, e.label_) for e in doc.ents],
        "mandates": sorted((s.start, s.end, s.label_) for s in doc.spans.get(vi_ie.MANDATES_KEY, [])),
        "relations": sorted(
            (r.head.start, r.head.end, r.head.label_, r.child.start, r.child.end, r.child.label_, r.label)
            for r in doc._.relations
        ),
    }


def relation_scores(doc: Doc) -> Dict[tuple, float]:
    return {
        (r.head.start, r.head.end, r.head.label_, r.child.start, r.child.end, r.child.label_, r.label): r.score
        for r in doc._.relations
    }


def gold_token_spans(nlp, record: Record) -> List[Tuple[int, int, str]]:
    """The record's gold spans as token indices of the clean text."""
    doc = nlp.make_doc(record.data["text"])
    out = []
    for span in record.data["spans"]:
        aligned = vi_ie.align_char_span(doc, span["start"], span["end"], span["label"])
        assert aligned is not None, span
        out.append((aligned.start, aligned.end, span["label"]))
    return out


def scores_on(nlp, doc: Doc, token_spans: Sequence[Tuple[int, int, str]]):
    """Raw relation scores (all labels, below threshold too) for candidate pairs
    of the given argument spans on an annotated ``doc``: a much finer probe of
    invariance than the few relations a tiny model keeps."""
    rel = nlp.get_pipe("relation_extractor")
    spans = [Span(doc, start, end, label=label) for start, end, label in token_spans]
    cands = rel.candidates(doc, spans)
    if not cands:
        return cands, numpy.zeros((0, len(rel.labels)), dtype="float32")
    logits = rel.model.predict(([doc], [cands]))
    return cands, rel.model.ops.to_numpy(vi_ie._sigmoid(rel.model.ops.xp, logits))


def _as_list(scores) -> list:
    return list(scores) if isinstance(scores, list) else [scores]


_CLEAN: Dict[Tuple[int, str], Doc] = {}


def clean_doc(nlp, record: Record) -> Doc:
    key = (id(nlp), record.id)
    if key not in _CLEAN:
        _CLEAN[key] = nlp(record.data["text"])
    return _CLEAN[key]


def assert_same_predictions(nlp, record: Record, variant_text: str) -> Doc:
    clean = clean_doc(nlp, record)
    doc = nlp(variant_text)
    assert_valid_output(variant_text, doc)
    # Precondition (tokenizer + lexical features): same tokens, same norms, same sentences.
    assert len(doc) == len(clean)
    assert [t.norm_ for t in doc] == [t.norm_ for t in clean]
    assert [t.is_sent_start for t in doc] == [t.is_sent_start for t in clean]
    assert predictions(doc) == predictions(clean)
    clean_scores, variant_scores = relation_scores(clean), relation_scores(doc)
    for key, score in clean_scores.items():
        assert variant_scores[key] == pytest.approx(score, abs=1e-5)
    # Finer than the few spans a tiny model keeps: the shared token vectors,
    # the MANDATE boundary scores, and relation scores of every candidate
    # pair (below threshold too) among the predicted and the gold arguments.
    numpy.testing.assert_allclose(doc.tensor, clean.tensor, atol=1e-5, rtol=0)
    assert [t.tag_ for t in doc] == [t.tag_ for t in clean]
    for name, proc in nlp.pipeline:
        if isinstance(proc, (Tagger, SpanFinder)):  # the MANDATE boundary model
            for got, want in zip(_as_list(proc.model.predict([doc])), _as_list(proc.model.predict([clean]))):
                numpy.testing.assert_allclose(got, want, atol=1e-5, rtol=0, err_msg=name)
    rel = nlp.get_pipe("relation_extractor")
    (clean_cands,), clean_raw = rel.predict([clean])
    (cands,), raw = rel.predict([doc])
    assert cands == clean_cands
    numpy.testing.assert_allclose(raw, clean_raw, atol=1e-5, rtol=0)
    gold = gold_token_spans(nlp, record)
    clean_cands, clean_raw = scores_on(nlp, clean, gold)
    cands, raw = scores_on(nlp, doc, gold)
    assert cands == clean_cands
    numpy.testing.assert_allclose(raw, clean_raw, atol=1e-5, rtol=0)
    return doc


# ------------------------------------------------------- spelling variants
@st.composite
def variant_cases(draw):
    record = draw(st.sampled_from(TEST_RECORDS))
    names = draw(st.lists(st.sampled_from(VARIANT_NAMES), min_size=1, max_size=len(VARIANT_NAMES), unique=True))
    seed = draw(st.integers(min_value=0, max_value=2**16))
    return record, names, seed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=variant_cases())
def test_variant_combinations_give_same_predictions(trained_nlp, case):
    record, names, seed = case
    variant = apply_variants(record.data["text"], names, seed)
    assert_same_predictions(trained_nlp, record, variant)


# Documents exercising every phenomenon: "Đ", oa/oe/uy tone marks, ", ", line breaks.
EXPLICIT_RECORDS = [r for r in TEST_RECORDS if r.id in {"doc-a006", "doc-c020", "doc-h040"}]


def test_explicit_documents_are_in_the_test_split():
    assert sorted(r.id for r in EXPLICIT_RECORDS) == ["doc-a006", "doc-c020", "doc-h040"]


EXPLICIT_CASES = [
    pytest.param(record, name, id=f"{record.id}-{name}")
    for record in EXPLICIT_RECORDS for name in VARIANT_NAMES
    if (record.id, name) != ("doc-c020", "tone")  # no toned oa/oe/uy syllable in doc-c020
]


@pytest.mark.parametrize("record,name", EXPLICIT_CASES)
def test_each_variant_kind(trained_nlp, record, name):
    text = record.data["text"]
    variant = apply_variants(text, [name], seed=1)
    assert variant != text, "the variant must change the text for the test to mean anything"
    doc = assert_same_predictions(trained_nlp, record, variant)
    cands, _ = scores_on(trained_nlp, doc, gold_token_spans(trained_nlp, record))
    assert cands, "gold arguments give relation candidates"


CLEAN_NOTICE = (
    "Chủ tịch Ủy ban nhân dân tỉnh Khánh Hòa Nguyễn Văn Thủy ký quyết định thành lập "
    "Ban Chỉ đạo chuyển đổi số tỉnh, gồm 15 thành viên.\n"
    "Đồng chí Lê Thị Hoa, Phó Giám đốc Sở Nông nghiệp và Phát triển nông thôn, "
    "làm Ủy viên; ông Trần Quốc Khỏe, Chi cục trưởng Chi cục Thủy lợi, làm Thư ký.\n"
    "Ban Chỉ đạo có nhiệm vụ giúp UBND tỉnh chỉ đạo, điều phối việc hòa mạng "
    "và đề xuất giải pháp thúc đẩy chuyển đổi số."
)
HANDWRITTEN_VARIANTS = {
    "nfd": unicodedata.normalize("NFD", CLEAN_NOTICE),
    "tone-oa-uy-oe": CLEAN_NOTICE.replace("Ủy", "Uỷ").replace("Hòa", "Hoà").replace("Thủy", "Thuỷ")
    .replace("hòa", "hoà").replace("Khỏe", "Khoẻ"),
    "nbsp": CLEAN_NOTICE.replace("tỉnh Khánh", "tỉnh\u00a0Khánh").replace("Sở Nông", "Sở\u00a0Nông"),
    "zwsp": CLEAN_NOTICE.replace("Chỉ đạo", "Chỉ\u200b đạo").replace("UBND ", "UBND\u200b\u200c "),
    "bom": "\ufeff" + CLEAN_NOTICE,
    "crlf": CLEAN_NOTICE.replace("\n", "\r\n"),
    "eth": CLEAN_NOTICE.replace("Đ", "\u00d0"),
    "html": "<p>" + CLEAN_NOTICE.replace("\n", "</p>\n<p>").replace(", ", ",&nbsp;") + "</p>",
    "html-br": CLEAN_NOTICE.replace("\n", "<br/>").replace("Sở Nông", "<b>Sở</b> Nông"),
}


@pytest.mark.parametrize("name", sorted(HANDWRITTEN_VARIANTS))
def test_handwritten_variants(trained_nlp, name):
    """Variants written by hand (not by scripts/variants.py): both tone
    conventions for hoà/hòa, thuỷ/thủy, Uỷ/Ủy, khoẻ/khỏe, a BOM, <br/>."""
    variant = HANDWRITTEN_VARIANTS[name]
    assert variant != CLEAN_NOTICE
    clean, doc = trained_nlp(CLEAN_NOTICE), trained_nlp(variant)
    assert_valid_output(variant, doc)
    assert len(doc) == len(clean)
    assert [t.norm_ for t in doc] == [t.norm_ for t in clean]
    assert [t.is_sent_start for t in doc] == [t.is_sent_start for t in clean]
    assert predictions(doc) == predictions(clean)
    numpy.testing.assert_allclose(doc.tensor, clean.tensor, atol=1e-5, rtol=0)


# --------------------------------------------------------------- odd input
@pytest.mark.parametrize("text", ["", " ", "   \t ", "\n", "\r\n\r\n", "\u00a0\u200b", "\ufeff", "<p></p>", "&nbsp;"])
def test_empty_and_blank_input(trained_nlp, text):
    """No crash and nothing found."""
    doc = trained_nlp(text)
    assert_valid_output(text, doc)
    assert len(doc) <= 1
    assert all(not vi_ie.canonical(token.text).strip() for token in doc)
    assert list(doc.ents) == []  # spaCy's NER never starts an entity on whitespace
    assert doc._.relations == []
    assert predictions(doc) == {"ents": [], "mandates": [], "relations": []}


def _decode_mandates(nlp, text: str, tags: Sequence[str]) -> List[Span]:
    """Run the pipeline's tag-to-span MANDATE decoder on given BIO tags."""
    doc = nlp.make_doc(text)
    assert len(doc) == len(tags), [t.text for t in doc]
    for token, tag in zip(doc, tags):
        token.tag_ = tag
    decoder = nlp.get_pipe("mandate_spans")
    return list(decoder(doc).spans[vi_ie.MANDATES_KEY])


def _is_blank(token) -> bool:
    return not vi_ie.canonical_token(token.text).strip()


def test_mandate_decoder_never_returns_blank_or_whitespace_edged_spans(trained_nlp):
    """Model-independent: whatever tags the tagger puts on whitespace tokens
    (the tiny model tags " " as I-MANDATE), no MANDATE is blank or starts or
    ends with whitespace (guideline)."""
    if "mandate_spans" not in trained_nlp.pipe_names:
        pytest.skip("no BIO mandate decoder in this pipeline")
    assert _decode_mandates(trained_nlp, " ", ["I-MANDATE"]) == []
    assert _decode_mandates(trained_nlp, "\n", ["B-MANDATE"]) == []
    text = TEST_RECORDS[0].data["text"]
    n_tokens = len(trained_nlp.make_doc(text))
    rng = random.Random(0)
    found = 0
    for _ in range(30):
        tags = [rng.choice(["B-MANDATE", "I-MANDATE", "I-MANDATE", "I-MANDATE", "O"]) for _ in range(n_tokens)]
        for span in _decode_mandates(trained_nlp, text, tags):
            found += 1
            assert not _is_blank(span[0]) and not _is_blank(span[-1]), repr(span.text)
    assert found, "the decoder must return spans for densely tagged text"


def test_upper_case_headline(trained_nlp):
    text = (
        "UBND TỈNH LONG AN THÀNH LẬP BAN CHỈ ĐẠO CHUYỂN ĐỔI SỐ\n"
        "QUYẾT ĐỊNH VỀ VIỆC KIỆN TOÀN BAN CHỈ ĐẠO XÂY DỰNG CHÍNH QUYỀN ĐIỆN TỬ TỈNH.\n"
        + TEST_RECORDS[0].data["text"]
    )
    doc = trained_nlp(text)
    assert_valid_output(text, doc)
    upper = trained_nlp(text.upper())
    assert_valid_output(text.upper(), upper)


def test_english_text(trained_nlp):
    text = (
        "The Ministry of Finance appointed John Smith as Director of the Budget Department.\n"
        "The committee shall review the plan and report to the Prime Minister by 1 May 2025."
    )
    doc = trained_nlp(text)
    assert_valid_output(text, doc)
    assert len(list(doc.sents)) == 2


def strip_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return bare.replace("đ", "d").replace("Đ", "D")


@pytest.mark.parametrize("record", EXPLICIT_RECORDS, ids=lambda r: r.id)
def test_vietnamese_without_diacritics(trained_nlp, record):
    text = strip_diacritics(record.data["text"])
    assert text != record.data["text"]
    assert not any(unicodedata.combining(c) for c in unicodedata.normalize("NFD", text))
    doc = trained_nlp(text)
    assert_valid_output(text, doc)
    # Stripping marks changes no token boundary.
    assert len(doc) == len(clean_doc(trained_nlp, record))


BIG_NOTICE_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, sys.argv[1] + "/code")
    import spacy, vi_ie
    nlp = spacy.load(sys.argv[2])
    texts = []
    for name in ("train", "dev", "test"):
        with open(sys.argv[1] + "/corpus/" + name + ".jsonl", encoding="utf8") as handle:
            texts += [json.loads(line)["text"] for line in handle if line.strip()]
    parts, size, i = [], 0, 0
    while size < 1_000_000:
        parts.append(texts[i % len(texts)])
        size += len(parts[-1]) + 1
        i += 1
    text = "\\n".join(parts)
    # The pipeline's own limit (vi_ie.MAX_LENGTH, above spaCy's 1,000,000)
    # accepts a 1 MB notice as it is: its components are linear in the tokens.
    assert len(text) < nlp.max_length, (len(text), nlp.max_length)
    nlp(texts[0])  # warm up lazily allocated state
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.time()
    doc = nlp(text)
    seconds = time.time() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    spans = list(doc.ents) + list(doc.spans.get(vi_ie.MANDATES_KEY, []))
    for rel in doc._.relations:
        spans += [rel.head, rel.child]
    bad = [
        (s.start_char, s.end_char) for s in spans
        if not (0 <= s.start_char < s.end_char <= len(text)) or text[s.start_char:s.end_char] != s.text
    ]
    print(json.dumps({
        "chars": len(text), "tokens": len(doc), "same_text": doc.text == text,
        "n_spans": len(spans), "bad_spans": bad[:10], "seconds": seconds,
        "rss_growth_kib": after - before,
    }))
    """
)


def test_one_megabyte_notice(trained_model_path, repo_root):
    """Runs in a subprocess so that ru_maxrss measures this document alone."""
    result = subprocess.run(
        [sys.executable, "-c", BIG_NOTICE_SCRIPT, str(repo_root), str(trained_model_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(report)
    assert report["chars"] >= 1_000_000
    assert report["tokens"] > 200_000
    assert report["same_text"]
    assert report["bad_spans"] == []
    assert report["rss_growth_kib"] < 3 * 1024 * 1024, report


# --------------------------------------------------------- bad annotations
BASE_TEXT = (
    "Chủ tịch UBND tỉnh Long An Nguyễn Văn Út ký quyết định thành lập "
    "Ban Chỉ đạo chuyển đổi số tỉnh, gồm 15 thành viên.\n"
    "Ban Chỉ đạo có nhiệm vụ chỉ đạo triển khai chuyển đổi số trên địa bàn tỉnh."
)


def _span(sid: str, label: str, surface: str, after: int = 0) -> dict:
    start = BASE_TEXT.index(surface, after)
    return {"id": sid, "start": start, "end": start + len(surface), "label": label}


def base_record(doc_id: str) -> dict:
    """A small document that passes every rule."""
    second_line = BASE_TEXT.index("\n")
    return {
        "id": doc_id,
        "text": BASE_TEXT,
        "meta": {"source": "written", "genre": "news", "province": "Long An"},
        "spans": [
            _span("r1", "ROLE", "Chủ tịch"),
            _span("o1", "OFFICE", "UBND tỉnh Long An"),
            _span("p1", "PERSON", "Nguyễn Văn Út"),
            _span("o2", "OFFICE", "Ban Chỉ đạo chuyển đổi số tỉnh"),
            _span("o3", "OFFICE", "Ban Chỉ đạo", after=second_line),
            _span("m1", "MANDATE", "chỉ đạo triển khai chuyển đổi số trên địa bàn tỉnh", after=second_line),
        ],
        "relations": [
            {"head": "r1", "child": "o1", "label": "ROLE_IN"},
            {"head": "p1", "child": "r1", "label": "HOLDS"},
            {"head": "p1", "child": "o2", "label": "ESTABLISHES"},
            {"head": "o3", "child": "m1", "label": "HAS_MANDATE"},
        ],
    }


def _spans_by_id(record: dict) -> Dict[str, dict]:
    return {s["id"]: s for s in record["spans"]}


def fault_missing_text(d):
    del d["text"]


def fault_missing_span_end(d):
    del _spans_by_id(d)["p1"]["end"]


def fault_offsets_past_end(d):
    _spans_by_id(d)["m1"]["end"] = len(d["text"]) + 5


def fault_overlap(d):
    _spans_by_id(d)["r1"]["end"] = d["text"].index("UBND") + len("UBND")  # ROLE "Chủ tịch UBND"


def fault_missing_relation_span(d):
    d["relations"][0]["child"] = "o9"


def fault_forbidden_pair(d):
    d["relations"].append({"head": "p1", "child": "o1", "label": "HOLDS"})  # HOLDS needs a ROLE child


def fault_trailing_comma(d):
    _spans_by_id(d)["o2"]["end"] += 1  # "Ban Chỉ đạo chuyển đổi số tỉnh,"


def fault_cross_sentence(d):
    d["relations"].append({"head": "o2", "child": "m1", "label": "HAS_MANDATE"})


def fault_mid_word(d):
    _spans_by_id(d)["m1"]["end"] -= 2  # "... địa bàn tỉ"


# fault -> (rule, text the message must contain, span id named in the problem)
FAULTS = {
    "missing-text": (fault_missing_text, "field", "field 'text'", ""),
    "missing-span-end": (fault_missing_span_end, "field", "'spans[2].end'", "p1"),
    "offsets-past-end": (fault_offsets_past_end, "offsets", "outside the text", "m1"),
    "overlap": (fault_overlap, "overlap", "ROLE r1 'Chủ tịch UBND' overlaps OFFICE o1", "o1"),
    "missing-relation-span": (fault_missing_relation_span, "relation-argument", "field 'child' names no span", ""),
    "forbidden-pair": (fault_forbidden_pair, "relation-signature", "HOLDS(p1, o1)", ""),
    "trailing-comma": (fault_trailing_comma, "span-punct", "ends with punctuation", "o2"),
    "cross-sentence": (fault_cross_sentence, "relation-sentence", "HAS_MANDATE(o2, m1)", ""),
    "mid-word": (fault_mid_word, "alignment", "does not align", "m1"),
}


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf8")
    return path


def faulty_file(tmp_path: Path, fault) -> Path:
    """Line 1: a valid document; line 2: blank; line 3: the faulty document."""
    bad = base_record("doc-bad")
    fault(bad)
    return write_lines(tmp_path / "bad.jsonl", [
        json.dumps(base_record("doc-ok"), ensure_ascii=False), "", json.dumps(bad, ensure_ascii=False),
    ])


def test_base_record_is_valid(tmp_path):
    """The faults below are the only problems of their documents."""
    path = write_lines(tmp_path / "ok.jsonl", [json.dumps(base_record("doc-ok"), ensure_ascii=False)])
    records = load_corpus([path])
    assert len(records) == 1
    docbin = records_to_docbin(records)
    assert len(docbin) == 1


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_bad_annotation_is_located(tmp_path, name):
    fault, rule, fragment, span_id = FAULTS[name]
    path = faulty_file(tmp_path, fault)
    records = list(read_records(path))
    assert [r.line for r in records] == [1, 3]
    problems = validate_records(records)
    assert problems, "the fault must be reported"
    assert {p.rule for p in problems} == {rule}, [str(p) for p in problems]
    assert len(problems) == 1, [str(p) for p in problems]
    problem = problems[0]
    assert (problem.path, problem.line, problem.doc_id, problem.span_id) == (str(path), 3, "doc-bad", span_id)
    assert fragment in problem.message
    message = str(problem)
    assert message.startswith(f"{path}:3 doc=doc-bad")
    assert f"[{rule}]" in message
    with pytest.raises(CorpusError) as err:
        load_corpus([path])
    assert err.value.problems == problems


def test_malformed_json_line_raises_with_location(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", [
        json.dumps(base_record("doc-1"), ensure_ascii=False),
        json.dumps(base_record("doc-2"), ensure_ascii=False),
        '{"id": "doc-3", "text": "Sở Tài chính", ',
        json.dumps(base_record("doc-4"), ensure_ascii=False),
    ])
    reader = read_records(path)
    assert [next(reader).line, next(reader).line] == [1, 2]
    with pytest.raises(CorpusError) as err:
        next(reader)
    (problem,) = err.value.problems
    assert (problem.path, problem.line, problem.rule) == (str(path), 3, "json")
    assert str(problem).startswith(f"{path}:3 [json] malformed JSON")
    with pytest.raises(CorpusError):
        load_corpus([path])


def test_non_object_line_raises(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", ['["not", "an", "object"]'])
    with pytest.raises(CorpusError) as err:
        list(read_records(path))
    assert (err.value.problems[0].line, err.value.problems[0].rule) == (1, "json")


def test_duplicate_document_ids(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_lines(first, [json.dumps(base_record("doc-1"), ensure_ascii=False)])
    write_lines(second, [
        json.dumps(base_record("doc-2"), ensure_ascii=False),
        json.dumps(base_record("doc-1"), ensure_ascii=False),
    ])
    records = list(read_records(first)) + list(read_records(second))
    problems = validate_records(records)
    assert [(p.path, p.line, p.doc_id, p.rule) for p in problems] == [(str(second), 2, "doc-1", "doc-id")]
    assert f"already used at {first}:1" in problems[0].message


def test_every_fault_in_one_file_is_reported(tmp_path):
    """Nothing is skipped: each faulty line gets its own located problem."""
    lines, expected = [], []
    for name in sorted(FAULTS):
        fault, rule, _, _ = FAULTS[name]
        record = base_record(f"doc-{name}")
        fault(record)
        lines.append(json.dumps(record, ensure_ascii=False))
        expected.append((len(lines), f"doc-{name}", rule))
    path = write_lines(tmp_path / "many.jsonl", lines)
    problems = validate_records(list(read_records(path)))
    assert sorted((p.line, p.doc_id, p.rule) for p in problems) == expected


def test_convert_refuses_misaligned_record_without_validation():
    """records_to_docbin never drops a span that does not align."""
    data = base_record("doc-bad")
    fault_mid_word(data)
    with pytest.raises(CorpusError) as err:
        records_to_docbin([Record("mem.jsonl", 7, data)])
    (problem,) = err.value.problems
    assert (problem.path, problem.line, problem.doc_id, problem.span_id, problem.rule) == ("mem.jsonl", 7, "doc-bad", "m1", "alignment")


@pytest.mark.parametrize("script", ["validate.py", "convert.py"])
def test_cli_reports_located_problems_and_exits_1(tmp_path, repo_root, script):
    cli = repo_root / "scripts" / script
    if not cli.exists():
        pytest.skip(f"scripts/{script} is not in this checkout")
    lines = [json.dumps(base_record("doc-ok"), ensure_ascii=False)]
    for name in ("overlap", "mid-word", "cross-sentence"):
        record = base_record(f"doc-{name}")
        FAULTS[name][0](record)
        lines.append(json.dumps(record, ensure_ascii=False))
    path = write_lines(tmp_path / "bad.jsonl", lines)
    args = [str(path)] + ([str(tmp_path / "out.spacy")] if script == "convert.py" else [])
    env = {**os.environ, "ANSI_COLORS_DISABLED": "1"}
    result = subprocess.run([sys.executable, str(cli), *args], capture_output=True, text=True, timeout=300, cwd=repo_root, env=env)
    output = " ".join((result.stdout + result.stderr).split())  # wasabi wraps long messages at 80 columns
    assert result.returncode == 1, output
    assert f"{path}:2 doc=doc-overlap span=o1 [overlap]" in output
    assert f"{path}:3 doc=doc-mid-word span=m1 [alignment]" in output
    assert f"{path}:4 doc=doc-cross-sentence [relation-sentence]" in output
    assert not (tmp_path / "out.spacy").exists()
