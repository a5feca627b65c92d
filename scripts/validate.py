"""Validate corpus JSONL files against the annotation guideline.

Checks: unique document and span ids; required fields and meta values;
offsets inside the text; span text neither starting nor ending with
whitespace or stray punctuation, nor with words the guideline leaves out;
labels from the schema; OFFICE/PERSON/ROLE never overlapping; relation
arguments existing, allowed by the head/child label table and in one
sentence; every span aligned with the pipeline's tokenizer. Every problem
names the file, line, document id, span id and rule. Exit 1 on any problem.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List

import typer
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import CorpusError, Record, exit_on_problems, read_records, validate_records  # noqa: E402


def main(paths: List[Path] = typer.Argument(..., help="Corpus JSONL files")) -> None:
    """Validate the files together (document ids must be unique across them)."""
    records: List[Record] = []
    problems = []
    for path in paths:
        try:
            records.extend(read_records(path))
        except CorpusError as err:
            problems.extend(err.problems)
    problems.extend(validate_records(records))
    exit_on_problems(problems, len(records))
    spans = sum(len(r.data["spans"]) for r in records)
    msg.good(f"{len(records)} documents, {spans} spans, 0 misaligned, 0 problems")


if __name__ == "__main__":
    typer.run(main)
