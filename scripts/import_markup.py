"""Import documents written in the project's inline markup into corpus JSONL.

The markup is the quickest way to write a new annotated notice by hand:

    === id: a001 | genre: news | province: Long An
    [UBND tỉnh Long An]{O1} ban hành Quyết định thành lập [Ban Chỉ đạo]{O2} ...
    [Ban Chỉ đạo]{O3} có nhiệm vụ [tham mưu cho [UBND tỉnh]{O4} về ...]{M1}.
    --- relations
    O1 ESTABLISHES O2
    O3 HAS_MANDATE M1

``[surface]{ID}`` marks a span; the first letter of ID gives the label
(O=OFFICE, P=PERSON, R=ROLE, M=MANDATE). Spans may nest (a MANDATE holding
entities). ``<nbsp>`` writes a no-break space. Lines after ``--- relations``
are ``HEAD LABEL CHILD``. Errors name the file and line.
"""
from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path
from typing import Dict, List, Tuple

import typer
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import CorpusError, Problem, Record, exit_on_problems, validate_records, write_jsonl  # noqa: E402

LABEL_CODES = {"O": "OFFICE", "P": "PERSON", "R": "ROLE", "M": "MANDATE"}
HEADER = re.compile(r"^===\s*(.*)$")
SPAN_CLOSE = re.compile(r"\]\{([OPRM][A-Za-z0-9_]*)\}")


def parse_header(path: str, line: int, body: str) -> Dict[str, str]:
    fields = {}
    for part in body.split("|"):
        if ":" not in part:
            raise CorpusError([Problem(path, line, "markup", f"header field {part.strip()!r} is not 'key: value'")])
        key, value = part.split(":", 1)
        fields[key.strip()] = value.strip()
    for key in ("id", "genre", "province"):
        if not fields.get(key):
            raise CorpusError([Problem(path, line, "markup", f"header lacks field '{key}'")])
    return fields


def parse_text(path: str, first_line: int, lines: List[str]) -> Tuple[str, List[dict]]:
    """Strip the markup from ``lines``; return the text and its spans."""
    out: List[str] = []
    spans: List[dict] = []
    stack: List[Tuple[int, int]] = []  # (char offset in output, source line)
    pos = 0
    for offset, raw in enumerate(lines):
        line_no = first_line + offset
        raw = raw.replace("<nbsp>", "\u00a0")
        i = 0
        while i < len(raw):
            char = raw[i]
            if char == "[":
                stack.append((pos, line_no))
                i += 1
                continue
            if char == "]":
                match = SPAN_CLOSE.match(raw, i)
                if not match:
                    raise CorpusError([Problem(path, line_no, "markup", f"']' at column {i + 1} is not followed by '{{ID}}' with ID starting O, P, R or M")])
                if not stack:
                    raise CorpusError([Problem(path, line_no, "markup", f"']' at column {i + 1} closes no '['")])
                start, _ = stack.pop()
                sid = match.group(1)
                spans.append({"id": sid, "start": start, "end": pos, "label": LABEL_CODES[sid[0]]})
                i = match.end()
                continue
            if char in "{}":
                raise CorpusError([Problem(path, line_no, "markup", f"stray {char!r} at column {i + 1}")])
            out.append(char)
            pos += 1
            i += 1
        if offset < len(lines) - 1:
            out.append("\n")
            pos += 1
    if stack:
        raise CorpusError([Problem(path, stack[-1][1], "markup", "'[' is never closed")])
    spans.sort(key=lambda s: (s["start"], -s["end"]))
    return "".join(out), spans


def parse_markup(path: Path, source: str = "written") -> List[Record]:
    """Parse one markup file into corpus records (not yet validated)."""
    records: List[Record] = []
    lines = Path(path).read_text(encoding="utf8").splitlines()
    i = 0
    while i < len(lines):
        header = HEADER.match(lines[i])
        if not header:
            if lines[i].strip():
                raise CorpusError([Problem(str(path), i + 1, "markup", "text outside a document; documents start with '=== id: ...'")])
            i += 1
            continue
        fields = parse_header(str(path), i + 1, header.group(1))
        start_line = i + 1
        j = i + 1
        while j < len(lines) and not HEADER.match(lines[j]) and lines[j].strip() != "--- relations":
            j += 1
        body = lines[i + 1:j]
        while body and not body[-1].strip():
            body.pop()
        text, spans = parse_text(str(path), i + 2, body)
        text = unicodedata.normalize("NFC", text)
        relations = []
        if j < len(lines) and lines[j].strip() == "--- relations":
            j += 1
            while j < len(lines) and not HEADER.match(lines[j]):
                parts = lines[j].split()
                if parts:
                    if len(parts) != 3:
                        raise CorpusError([Problem(str(path), j + 1, "markup", f"relation line {lines[j]!r} is not 'HEAD LABEL CHILD'")])
                    relations.append({"head": parts[0], "child": parts[2], "label": parts[1]})
                j += 1
        data = {
            "id": f"doc-{fields['id']}",
            "text": text,
            "meta": {"source": fields.get("source", source), "genre": fields["genre"], "province": fields["province"]},
            "spans": spans,
            "relations": relations,
        }
        records.append(Record(str(path), start_line, data))
        i = j
    return records


def main(
    inputs: List[Path] = typer.Argument(..., help="Markup files"),
    output: Path = typer.Option(None, "--output", "-o", help="JSONL file to write"),
) -> None:
    """Convert markup files to corpus JSONL; validate; exit 1 on any problem."""
    records: List[Record] = []
    try:
        for path in inputs:
            records.extend(parse_markup(path))
    except CorpusError as err:
        exit_on_problems(err.problems)
    exit_on_problems(validate_records(records), len(records))
    n_spans = sum(len(r.data["spans"]) for r in records)
    n_rels = sum(len(r.data["relations"]) for r in records)
    msg.good(f"{len(records)} documents, {n_spans} spans, {n_rels} relations: valid")
    if output:
        write_jsonl(output, (r.data for r in records))
        msg.good(f"wrote {output}")


if __name__ == "__main__":
    typer.run(main)
