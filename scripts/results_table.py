"""Render training/metrics/*.json as the Markdown results tables of the README."""
from __future__ import annotations

import json
from pathlib import Path

import typer

LABELS = ("OFFICE", "PERSON", "ROLE")
RELATIONS = ("HOLDS", "ROLE_IN", "SERVES_AS", "HAS_MANDATE", "PART_OF", "ESTABLISHES")


def _f(x: float) -> str:
    return f"{x:.3f}"


def render(metrics_dir: Path) -> str:
    dev = json.loads((metrics_dir / "dev.json").read_text())
    test = json.loads((metrics_dir / "test.json").read_text())
    lines = ["| task | label | dev P | dev R | dev F | test P | test R | test F |", "|---|---|---|---|---|---|---|---|"]

    def row(task, label, d, t):
        lines.append(f"| {task} | {label} | {_f(d['p'])} | {_f(d['r'])} | {_f(d['f'])} | {_f(t['p'])} | {_f(t['r'])} | {_f(t['f'])} |")

    for label in LABELS:
        row("entities (exact)", label, dev["entities"]["per_label"][label], test["entities"]["per_label"][label])
    row("entities (exact)", "**micro**", dev["entities"]["micro"], test["entities"]["micro"])
    sd, st = dev["entities"]["seqeval"]["micro avg"], test["entities"]["seqeval"]["micro avg"]
    lines.append(f"| entities (seqeval, strict IOB2) | micro | {_f(sd['precision'])} | {_f(sd['recall'])} | {_f(sd['f1-score'])} | {_f(st['precision'])} | {_f(st['recall'])} | {_f(st['f1-score'])} |")
    row("MANDATE", "exact", dev["mandates"]["exact"], test["mandates"]["exact"])
    row("MANDATE", "≥50% overlap", dev["mandates"]["overlap"], test["mandates"]["overlap"])
    for label in RELATIONS:
        d = dev["relations"]["rel_per_type"].get(label, {"p": 0, "r": 0, "f": 0})
        t = test["relations"]["rel_per_type"].get(label, {"p": 0, "r": 0, "f": 0})
        row("relations (strict, end to end)", label, d, t)
    rd, rt = dev["relations"], test["relations"]
    lines.append(f"| relations (strict, end to end) | **micro** | {_f(rd['rel_micro_p'])} | {_f(rd['rel_micro_r'])} | {_f(rd['rel_micro_f'])} | {_f(rt['rel_micro_p'])} | {_f(rt['rel_micro_r'])} | {_f(rt['rel_micro_f'])} |")
    lines += ["", "| test split, entity micro-F | clean NFC | NFD | other tone convention |", "|---|---|---|---|"]
    variants = [json.loads((metrics_dir / f"test{suffix}.json").read_text())["entities"]["micro"]["f"]
                for suffix in ("", ".nfd", ".tone")]
    lines.append("| | " + " | ".join(_f(v) for v in variants) + " |")
    return "\n".join(lines)


def main(metrics_dir: Path = typer.Argument(Path("training/metrics"))) -> None:
    """Print the results tables as Markdown."""
    print(render(metrics_dir))


if __name__ == "__main__":
    typer.run(main)
