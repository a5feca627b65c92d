"""Corpus records: reading JSONL with located errors, and the validation rules.

Every problem names the file, the line, the document id, the span id (or the
relation) and the rule, so that a researcher can go straight to the bad
annotation. Nothing is skipped silently: a reader that meets a bad line
raises, and the validator lists every problem it finds.
"""
from __future__ import annotations

import json
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "code"))

import spacy  # noqa: E402
import vi_ie  # noqa: E402

META_VALUES = {
    "source": ("written", "generated"),
    "genre": ("news", "decision", "announcement"),
}
#: Words that must not open a span of a label (quantifiers, honorifics,
#: MANDATE introducers), from the guideline.
BAD_OPENERS = {
    vi_ie.OFFICE: ("các ", "những ", "một số ", "toàn bộ ", "cơ quan ", "đơn vị "),
    vi_ie.ROLE: ("các ", "những ", "một số ", "ông ", "bà ", "đồng chí "),
    vi_ie.PERSON: ("ông ", "bà ", "đồng chí ", "anh ", "chị "),
    vi_ie.MANDATE: ("có nhiệm vụ", "có trách nhiệm", "nhiệm vụ:", "là ", "với mục đích",
                    "đồng thời ", "còn có nhiệm vụ", "bên cạnh việc"),
}
PUNCT_NO_START = set(",;:.)]}-–—•|/\"“”'")
PUNCT_NO_END = set(",;:([{-–—•|/\"“”'")
ALLOWED_FINAL_DOT = tuple(abbr + "." for abbr in vi_ie.SENTENCE_ABBREVIATIONS)


@dataclass(frozen=True)
class Problem:
    """One violated rule, located."""

    path: str
    line: int
    rule: str
    message: str
    doc_id: str = ""
    span_id: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        if self.doc_id:
            where += f" doc={self.doc_id}"
        if self.span_id:
            where += f" span={self.span_id}"
        return f"{where} [{self.rule}] {self.message}"


class CorpusError(ValueError):
    """Raised by readers for input that cannot be used; carries the problems."""

    def __init__(self, problems: List[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class Record:
    """A parsed corpus line with where it came from."""

    path: str
    line: int
    data: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.data.get("id", ""))


def read_records(path: Path) -> Iterator[Record]:
    """Yield the JSON objects of a JSONL file; a malformed line raises
    CorpusError naming the file and line."""
    with Path(path).open(encoding="utf8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as err:
                raise CorpusError([Problem(str(path), number, "json", f"malformed JSON: {err.msg} at column {err.colno}")]) from None
            if not isinstance(data, dict):
                raise CorpusError([Problem(str(path), number, "json", "line is not a JSON object")])
            yield Record(str(path), number, data)


def load_corpus(paths: Iterable[Path]) -> List[Record]:
    """Read and validate documents; raise CorpusError listing every problem."""
    records = [rec for path in paths for rec in read_records(Path(path))]
    problems = validate_records(records)
    if problems:
        raise CorpusError(problems)
    return records


# ---------------------------------------------------------------- validation
def _structure_problems(rec: Record) -> List[Problem]:
    """Fields and types: every later rule relies on these."""
    out: List[Problem] = []
    d = rec.data

    def bad(rule: str, msg: str, span_id: str = "") -> None:
        out.append(Problem(rec.path, rec.line, rule, msg, rec.id, span_id))

    if not isinstance(d.get("id"), str) or not d.get("id"):
        bad("field", "field 'id' is missing or not a non-empty string")
    if not isinstance(d.get("text"), str):
        bad("field", "field 'text' is missing or not a string")
    meta = d.get("meta")
    if not isinstance(meta, dict):
        bad("field", "field 'meta' is missing or not an object")
    else:
        for key, values in META_VALUES.items():
            if meta.get(key) not in values:
                bad("meta", f"field 'meta.{key}' is {meta.get(key)!r}, expected one of {values}")
        if not isinstance(meta.get("province"), str) or not meta.get("province", "").strip():
            bad("meta", "field 'meta.province' is missing or empty")
    for key in ("spans", "relations"):
        if not isinstance(d.get(key), list):
            bad("field", f"field '{key}' is missing or not a list")
    if out:
        return out
    for k, span in enumerate(d["spans"]):
        if not isinstance(span, dict):
            bad("field", f"spans[{k}] is not an object")
            continue
        for key, kind in (("id", str), ("start", int), ("end", int), ("label", str)):
            value = span.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                bad("field", f"field 'spans[{k}].{key}' is missing or not {kind.__name__}", str(span.get("id", "")))
    for k, rel in enumerate(d["relations"]):
        if not isinstance(rel, dict):
            bad("field", f"relations[{k}] is not an object")
            continue
        for key in ("head", "child", "label"):
            if not isinstance(rel.get(key), str):
                bad("field", f"field 'relations[{k}].{key}' is missing or not a string")
    return out


def _span_text_problems(text: str, span: dict) -> List[Tuple[str, str]]:
    surface = text[span["start"]:span["end"]]
    label = span["label"]
    out = []
    if surface != surface.strip() or surface[:1] in vi_ie.ZERO_WIDTH or surface[-1:] in vi_ie.ZERO_WIDTH:
        out.append(("span-whitespace", f"{label} {surface!r} starts or ends with whitespace"))
    if surface[:1] in PUNCT_NO_START or surface[:1] == "(":
        out.append(("span-punct", f"{label} {surface!r} starts with punctuation"))
    if surface[-1:] in PUNCT_NO_END:
        out.append(("span-punct", f"{label} {surface!r} ends with punctuation"))
    if surface.endswith(".") and not surface.endswith(ALLOWED_FINAL_DOT):
        out.append(("span-punct", f"{label} {surface!r} ends with '.' that is not an abbreviation"))
    if surface.endswith(")") and surface.count("(") < surface.count(")"):
        out.append(("span-punct", f"{label} {surface!r} ends with an unmatched ')'"))
    lowered = surface.lower()
    for opener in BAD_OPENERS.get(label, ()):
        if lowered.startswith(opener):
            out.append(("span-opener", f"{label} {surface!r} starts with {opener.strip()!r}, which the guideline leaves out"))
    return out


def validate_record(rec: Record, nlp: "spacy.Language") -> List[Problem]:
    """Every guideline rule for one document (structure first)."""
    problems = _structure_problems(rec)
    if problems:
        return problems
    d = rec.data
    text = d["text"]

    def bad(rule: str, msg: str, span_id: str = "") -> None:
        problems.append(Problem(rec.path, rec.line, rule, msg, rec.id, span_id))

    if unicodedata.normalize("NFC", text) != text:
        bad("nfc", "text is not NFC-normalised")
    doc = nlp.make_doc(text)
    spans: Dict[str, dict] = {}
    token_spans = {}
    for span in d["spans"]:
        sid = span["id"]
        if sid in spans:
            bad("span-id", f"span id {sid!r} is not unique in its document", sid)
            continue
        spans[sid] = span
        if span["label"] not in vi_ie.SPAN_LABELS:
            bad("label", f"field 'label' is {span['label']!r}, expected one of {vi_ie.SPAN_LABELS}", sid)
        if not 0 <= span["start"] < span["end"] <= len(text):
            bad("offsets", f"offsets [{span['start']}, {span['end']}) are outside the text (length {len(text)}) or empty", sid)
            continue
        for rule, msg in _span_text_problems(text, span):
            bad(rule, msg, sid)
        aligned = vi_ie.align_char_span(doc, span["start"], span["end"])
        if aligned is None:
            bad("alignment", f"{span['label']} {text[span['start']:span['end']]!r} does not align with the tokenizer's tokens", sid)
        else:
            token_spans[sid] = aligned
    ents = sorted(
        (s for s in spans.values() if s["label"] in vi_ie.ENTITY_LABELS and 0 <= s["start"] < s["end"] <= len(text)),
        key=lambda s: (s["start"], s["end"]),
    )
    for a, b in zip(ents, ents[1:]):
        if b["start"] < a["end"]:
            bad("overlap", f"{a['label']} {a['id']} {text[a['start']:a['end']]!r} overlaps {b['label']} {b['id']} {text[b['start']:b['end']]!r}", b["id"])
    mandates = sorted((s for s in spans.values() if s["label"] == vi_ie.MANDATE and 0 <= s["start"] < s["end"] <= len(text)), key=lambda s: (s["start"], s["end"]))
    for a, b in zip(mandates, mandates[1:]):
        if b["start"] < a["end"]:
            bad("overlap", f"MANDATE {a['id']} overlaps MANDATE {b['id']}: separate duties are separate spans", b["id"])
    seen_spans = {}
    for s in spans.values():
        key = (s["start"], s["end"], s["label"])
        if key in seen_spans:
            bad("duplicate-span", f"span {s['id']} repeats span {seen_spans[key]}", s["id"])
        seen_spans.setdefault(key, s["id"])
    seen_rels = set()
    for k, rel in enumerate(d["relations"]):
        where = f"relations[{k}] {rel['label']}({rel['head']}, {rel['child']})"
        if rel["label"] not in vi_ie.REL_LABELS:
            bad("relation-label", f"{where}: field 'label' is not one of {vi_ie.REL_LABELS}")
            continue
        missing = [key for key in ("head", "child") if rel[key] not in spans]
        if missing:
            bad("relation-argument", f"{where}: field '{missing[0]}' names no span of this document")
            continue
        head, child = spans[rel["head"]], spans[rel["child"]]
        heads, children = vi_ie.REL_SIGNATURES[rel["label"]]
        if head["label"] not in heads or child["label"] not in children:
            bad("relation-signature", f"{where}: {rel['label']} goes from {sorted(heads)} to {sorted(children)}, not {head['label']} to {child['label']}")
        if rel["head"] == rel["child"]:
            bad("relation-argument", f"{where}: head and child are the same span")
        key = (rel["head"], rel["child"], rel["label"])
        if key in seen_rels:
            bad("duplicate-relation", f"{where}: relation is listed twice")
        seen_rels.add(key)
        h, c = token_spans.get(rel["head"]), token_spans.get(rel["child"])
        if h is not None and c is not None and h.sent.start != c.sent.start:
            bad("relation-sentence", f"{where}: {text[head['start']:head['end']]!r} and {text[child['start']:child['end']]!r} are in different sentences")
    return problems


def validate_records(records: List[Record], nlp: Optional["spacy.Language"] = None) -> List[Problem]:
    """All problems of a corpus, cross-document rules (unique ids) included."""
    nlp = nlp or blank_nlp()
    problems: List[Problem] = []
    first_seen: Dict[str, Record] = {}
    for rec in records:
        problems.extend(validate_record(rec, nlp))
        if rec.id and rec.id in first_seen:
            other = first_seen[rec.id]
            problems.append(Problem(rec.path, rec.line, "doc-id", f"document id {rec.id!r} already used at {other.path}:{other.line}", rec.id))
        first_seen.setdefault(rec.id, rec)
    return problems


def blank_nlp() -> "spacy.Language":
    """A blank Vietnamese pipeline with the project's tokenizer."""
    return spacy.blank("vi", config={"nlp": {"tokenizer": {"@tokenizers": "vi_decision_ie.SyllableTokenizer.v1"}}})


def exit_on_problems(problems: List[Problem], n_documents: Optional[int] = None) -> None:
    """Print every problem and exit 1 (typer) if there is any."""
    if not problems:
        return
    import typer
    from collections import Counter
    from wasabi import msg

    for problem in problems:
        msg.fail(str(problem))
    rules = Counter(p.rule for p in problems)
    where = f" in {n_documents} documents" if n_documents is not None else ""
    msg.fail(f"{len(problems)} problems{where}: " + ", ".join(f"{r}={n}" for r, n in rules.most_common()))
    raise typer.Exit(1)


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """Write rows as JSONL (UTF-8, no ASCII escaping); return the count."""
    count = 0
    with Path(path).open("w", encoding="utf8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count
