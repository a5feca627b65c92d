"""Convert corpus JSONL into spaCy DocBin files.

Entities (OFFICE, PERSON, ROLE) go to ``doc.ents``, MANDATE spans to
``doc.spans["mandates"]`` and relations to ``doc._.relations`` (stored in
``doc.user_data`` so they survive the DocBin round-trip). A span that does
not align with the tokenizer is an error, never dropped.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, List

import typer
from spacy.tokens import Doc, DocBin
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import CorpusError, Problem, Record, blank_nlp, exit_on_problems, load_corpus  # noqa: E402
import vi_ie  # noqa: E402


def record_to_doc(nlp, rec: Record) -> Doc:
    """Build the annotated Doc of one validated record."""
    data = rec.data
    doc = nlp.make_doc(data["text"])
    by_id = {}
    for span in data["spans"]:
        aligned = vi_ie.align_char_span(doc, span["start"], span["end"], label=span["label"])
        if aligned is None:
            raise CorpusError([Problem(rec.path, rec.line, "alignment", f"span does not align with the tokenizer", rec.id, span["id"])])
        by_id[span["id"]] = aligned
    doc.ents = [s for s in by_id.values() if s.label_ in vi_ie.ENTITY_LABELS]
    mandates = sorted((s for s in by_id.values() if s.label_ == vi_ie.MANDATE), key=lambda s: (s.start, s.end))
    doc.spans[vi_ie.MANDATES_KEY] = mandates
    # BIO targets of the mandate_tagger (mandates never overlap: the validator checks)
    for token, tag in zip(doc, vi_ie.mandate_tags(doc, mandates)):
        token.tag_ = tag
    vi_ie.set_relations(doc, [(by_id[r["head"]], by_id[r["child"]], r["label"], 1.0) for r in data["relations"]])
    doc.user_data["doc_id"] = data["id"]
    doc.user_data["meta"] = dict(data["meta"])
    return doc


def records_to_docbin(records: Iterable[Record], nlp=None) -> DocBin:
    nlp = nlp or blank_nlp()
    docbin = DocBin(store_user_data=True)
    for rec in records:
        docbin.add(record_to_doc(nlp, rec))
    return docbin


def main(
    input_path: Path = typer.Argument(..., help="Corpus JSONL file"),
    output_path: Path = typer.Argument(..., help=".spacy file to write"),
    include_generated: bool = typer.Option(True, help="Keep documents whose meta.source is 'generated'"),
    limit: int = typer.Option(0, help="Keep only the first N documents (0: all)"),
) -> None:
    """Validate a corpus file and write it as a DocBin."""
    try:
        records: List[Record] = load_corpus([input_path])
    except CorpusError as err:
        exit_on_problems(err.problems)
    if not include_generated:
        records = [r for r in records if r.data["meta"]["source"] != "generated"]
    if limit:
        records = records[:limit]
    output_path.parent.mkdir(parents=True, exist_ok=True)
    records_to_docbin(records).to_disk(output_path)
    msg.good(f"{len(records)} documents from {input_path} -> {output_path}")


if __name__ == "__main__":
    typer.run(main)
