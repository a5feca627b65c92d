"""Speed, load time and memory of a trained pipeline, on one CPU core.

Why: the pipeline is meant to run over large crawls of notices on ordinary
CPUs, so we need to know how many words per second it handles, where that
time goes (tokenizer or which component), how long it takes to load and how
much memory it needs, and how far the tokenizer alone is from the whole
pipeline (the upper bound of any pipeline built on it).

Every measurement runs in a fresh Python subprocess, pinned to one thread
(OMP/MKL/OpenBLAS variables and ``torch.set_num_threads(1)``), so that
measurements don't disturb each other (caches, lazily built tables, memory
peaks). Each is repeated ``--repeat`` times and the median is reported.
"Words" are whitespace-separated tokens of the input text, the unit of
spaCy's speed table; tokens/s counts the project tokenizer's tokens.

MODEL is a pipeline directory (then ``--code`` is imported before loading)
or an installed package name (the package brings its own code, so ``--code``
is not imported).
"""
from __future__ import annotations

import datetime
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import typer
from wasabi import msg

ROOT = Path(__file__).resolve().parent.parent
TARGET_WORDS_PER_SECOND = 15_000
WORKER_FLAG = "__benchmark_worker__"
#: Packages worth naming when spacy.load pulls them in (load time, memory).
HEAVY_MODULES = ("spacy_transformers", "transformers", "torch", "tensorflow", "jax")
PINNED_THREADS = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


# ----------------------------------------------------------------- inputs
def read_texts(path: Path) -> List[str]:
    """The "text" field of every line of a corpus JSONL file."""
    texts = []
    with Path(path).open(encoding="utf8") as handle:
        for line in handle:
            if line.strip():
                texts.append(json.loads(line)["text"])
    return texts


def count_words(texts: List[str]) -> int:
    """Whitespace-separated tokens, the "words" of spaCy's speed table."""
    return sum(len(text.split()) for text in texts)


def repeat_to_min_words(texts: List[str], min_words: int) -> List[str]:
    """The texts, cycled until they hold at least ``min_words`` words."""
    if not texts or count_words(texts) == 0:
        raise ValueError("no words in the input texts")
    out: List[str] = []
    words = 0
    while words < min_words:
        for text in texts:
            out.append(text)
            words += len(text.split())
            if words >= min_words:
                break
    return out


# ----------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> Dict[str, object]:
    import spacy

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "python": platform.python_version(),
        "spacy": spacy.__version__,
        "platform": platform.platform(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def wheel_size_mib(pattern: Optional[str]) -> Optional[Dict[str, object]]:
    """Size of the (newest) wheel matching ``pattern``."""
    if not pattern:
        return None
    paths = sorted(glob.glob(pattern), key=os.path.getmtime)
    if not paths:
        msg.warn(f"No wheel matches {pattern}")
        return None
    return {"path": paths[-1], "mib": round(os.path.getsize(paths[-1]) / 2**20, 2)}


# ----------------------------------------------------------------- workers
def _pin_threads() -> None:
    """One thread for numpy/BLAS (environment) and torch (if loaded)."""
    for key, value in PINNED_THREADS.items():
        os.environ[key] = value
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _peak_rss_mib(children: bool = False) -> float:
    import resource

    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)  # KiB on Linux


def _load(task: dict):
    """Import spaCy (and the code module for a directory), then time spacy.load."""
    import time

    import spacy

    _pin_threads()
    if task.get("code") and Path(task["model"]).exists():
        spacy.util.import_file("vi_ie", task["code"])
    before = _top_level_modules()
    start = time.perf_counter()
    nlp = spacy.load(task["model"])
    load_seconds = time.perf_counter() - start
    _pin_threads()
    task["imported_during_load"] = sorted(_top_level_modules() - before)
    return nlp, load_seconds


def _top_level_modules() -> set:
    return {name.split(".")[0] for name in sys.modules if not name.startswith("_")}


def worker_pipeline(task: dict, texts: List[str]) -> dict:
    """Load the pipeline and run nlp.pipe over the texts."""
    import time

    nlp, load_seconds = _load(task)
    nlp("Khởi động.")  # warm-up: lazily built tables are not part of the throughput
    start = time.perf_counter()
    tokens = 0
    for doc in nlp.pipe(texts, batch_size=task["batch_size"], n_process=task["n_process"]):
        tokens += len(doc)
    seconds = time.perf_counter() - start
    return {
        "load_seconds": load_seconds,
        "imported_during_load": task["imported_during_load"],
        "seconds": seconds,
        "tokens": tokens,
        "peak_rss_mib": _peak_rss_mib(),
        "peak_rss_children_mib": _peak_rss_mib(children=True),
    }


def worker_components(task: dict, texts: List[str]) -> dict:
    """Time the tokenizer, then each component on the docs, in pipeline order."""
    import time

    nlp, _ = _load(task)
    nlp("Khởi động.")
    timings = []
    start = time.perf_counter()
    docs = [nlp.make_doc(text) for text in texts]
    timings.append(("tokenizer", time.perf_counter() - start))
    for name, proc in nlp.pipeline:
        start = time.perf_counter()
        if hasattr(proc, "pipe"):
            docs = list(proc.pipe(docs, batch_size=task["batch_size"]))
        else:
            docs = [proc(doc) for doc in docs]
        timings.append((name, time.perf_counter() - start))
    return {"components": timings, "tokens": sum(len(doc) for doc in docs)}


def worker_tokenizer(task: dict, texts: List[str]) -> dict:
    """A tokenizer alone: spaCy's "vi" (pyvi) or the project's syllable tokenizer."""
    import time

    _pin_threads()
    if task["tokenizer"] == "spacy_vi":
        import spacy

        nlp = spacy.blank("vi")
    else:
        sys.path.insert(0, str(ROOT / "scripts"))
        from corpus import blank_nlp

        nlp = blank_nlp()
    _pin_threads()
    nlp.make_doc("Khởi động.")
    start = time.perf_counter()
    tokens = sum(len(nlp.make_doc(text)) for text in texts)
    return {"seconds": time.perf_counter() - start, "tokens": tokens}


WORKERS = {"pipeline": worker_pipeline, "components": worker_components, "tokenizer": worker_tokenizer}


def _worker_main(task_path: str, result_path: str) -> None:
    task = json.loads(Path(task_path).read_text(encoding="utf8"))
    texts = json.loads(Path(task["texts_path"]).read_text(encoding="utf8"))
    result = WORKERS[task["kind"]](task, texts)
    Path(result_path).write_text(json.dumps(result), encoding="utf8")


def run_in_subprocess(task: dict, workdir: Path) -> dict:
    """Run one measurement in a fresh interpreter with pinned threads."""
    task_path = workdir / "task.json"
    result_path = workdir / "result.json"
    task_path.write_text(json.dumps(task), encoding="utf8")
    if result_path.exists():
        result_path.unlink()
    env = dict(os.environ, **PINNED_THREADS)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), WORKER_FLAG, str(task_path), str(result_path)],
        env=env, cwd=str(ROOT), capture_output=True, text=True,
    )
    if proc.returncode != 0 or not result_path.exists():
        msg.fail(f"Measurement {task['kind']} failed (exit {proc.returncode})", proc.stderr[-3000:], exits=1)
    return json.loads(result_path.read_text(encoding="utf8"))


# ----------------------------------------------------------------- summary
def median(values: List[float]) -> float:
    return float(statistics.median(values))


def summarise_components(runs: List[dict], words: int) -> List[dict]:
    """Median seconds per component over runs, share of the total, words/s."""
    names = [name for name, _ in runs[0]["components"]]
    seconds = {name: median([dict(run["components"])[name] for run in runs]) for name in names}
    total = sum(seconds.values()) or 1.0
    return [
        {
            "component": name,
            "seconds": round(seconds[name], 4),
            "share": round(seconds[name] / total, 4),
            "words_per_second": round(words / seconds[name]) if seconds[name] else None,
        }
        for name in names
    ]


def markdown_report(result: dict) -> str:
    m = result["machine"]
    p1, p2 = result["one_process"], result["two_processes"]
    tok = result["tokenizers"]
    lines = [
        f"# Benchmark: {result['model']}",
        "",
        f"{m['date_utc']}; {m['cpu_model']}, {m['cpus_usable']} usable of {m['cpu_count']} CPUs "
        f"(load average {m['load_average_before'][0]} before, {m['load_average_1_5_15'][0]} after); "
        f"Python {m['python']}, spaCy {m['spacy']}. Input: {result['texts']} cycled to "
        f"{result['docs']} docs, {result['words']:,} words ({result['tokens']:,} project tokens); "
        f"batch size {result['batch_size']}; median of {result['repeat']} fresh processes, "
        "each pinned to one thread.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| load time (spacy.load) | {result['load_seconds']:.2f} s |",
        f"| full pipeline, 1 process | {p1['words_per_second']:,} words/s ({p1['tokens_per_second']:,} tokens/s) |",
        f"| full pipeline, n_process=2 | {p2['words_per_second']:,} words/s ({p2['tokens_per_second']:,} tokens/s) |",
        f"| peak memory, 1 process (ru_maxrss) | {p1['peak_rss_mib']:.0f} MiB |",
    ]
    if result.get("wheel"):
        lines.append(f"| wheel size ({Path(result['wheel']['path']).name}) | {result['wheel']['mib']:.2f} MiB |")
    lines += [
        f"| upper bound: spaCy `vi` tokenizer (pyvi) alone | {tok['spacy_vi']['words_per_second']:,} words/s |",
        f"| upper bound: project syllable tokenizer alone | {tok['project']['words_per_second']:,} words/s ({tok['project']['tokens_per_second']:,} tokens/s) |",
        f"| target: ≥ {TARGET_WORDS_PER_SECOND:,} words/s on one core | {'met' if result['target_met'] else 'NOT met'} |",
        "",
        "## Where the time goes",
        "",
        "| step | seconds | share | words/s |",
        "|---|---|---|---|",
    ]
    for row in result["components"]:
        lines.append(f"| {row['component']} | {row['seconds']:.3f} | {row['share']:.1%} | {row['words_per_second']:,} |")
    top = result["largest_component"]
    lines += ["", f"The largest share is **{top['component']}** ({top['share']:.1%} of the step-by-step time)."]
    heavy = [name for name in result["imported_during_load"] if name in HEAVY_MODULES]
    if heavy:
        lines.append(
            f"spacy.load imported {', '.join(heavy)} (registry entry points of installed packages), "
            "which adds to the load time and the memory peak; an environment without those packages does not pay it."
        )
    if m["load_average_before"][0] > m["cpus_usable"] - 0.5:
        lines.append(
            f"The machine was busy (load average {m['load_average_before'][0]} on {m['cpus_usable']} CPUs): "
            "absolute speeds are lower bounds, and n_process=2 cannot gain where no second core is free."
        )
    if p2["words_per_second"] and p1["words_per_second"]:
        lines.append(
            f"Two processes give {p2['words_per_second'] / p1['words_per_second']:.2f}× the one-process "
            "throughput (bounded by the cores the machine really has free)."
        )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- CLI
def main(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    code: Path = typer.Option(ROOT / "code" / "vi_ie.py", help="Custom code module (imported for a directory MODEL)"),
    texts: Path = typer.Option(ROOT / "corpus" / "test.jsonl", help="Corpus JSONL whose texts are processed"),
    output: Path = typer.Option(ROOT / "training" / "benchmark.json", help="JSON results"),
    markdown: Path = typer.Option(ROOT / "training" / "benchmark.md", help="Markdown report"),
    wheel: Optional[str] = typer.Option(None, help="Glob of the packaged wheel, to report its size"),
    repeat: int = typer.Option(3, min=1, help="Fresh processes per measurement (median reported)"),
    min_words: int = typer.Option(50_000, min=1, help="Cycle the texts until they hold this many words"),
    batch_size: int = typer.Option(64, min=1, help="nlp.pipe batch size"),
) -> None:
    """Measure load time, words/s (1 and 2 processes), per-component time,
    peak memory, wheel size and the tokenizer upper bound; write JSON and
    Markdown, and say whether the one-core target is met."""
    from tqdm import tqdm

    is_dir = Path(model).exists()
    model_ref = str(Path(model).resolve()) if is_dir else model
    corpus = repeat_to_min_words(read_texts(texts), min_words)
    words = count_words(corpus)
    msg.info(f"{len(corpus)} docs, {words:,} words from {texts}; {repeat} repeat(s)")
    load_before = [round(x, 2) for x in os.getloadavg()]
    base = {"model": model_ref, "code": str(code.resolve()) if is_dir else None, "batch_size": batch_size}
    plan = []
    for _ in range(repeat):
        plan += [
            ("one", dict(base, kind="pipeline", n_process=1)),
            ("two", dict(base, kind="pipeline", n_process=2)),
            ("components", dict(base, kind="components")),
            ("spacy_vi", {"kind": "tokenizer", "tokenizer": "spacy_vi"}),
            ("project", {"kind": "tokenizer", "tokenizer": "project"}),
        ]
    runs: Dict[str, List[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        texts_path = workdir / "texts.json"
        texts_path.write_text(json.dumps(corpus, ensure_ascii=False), encoding="utf8")
        for name, task in tqdm(plan, desc="measurements", unit="run"):
            runs.setdefault(name, []).append(run_in_subprocess(dict(task, texts_path=str(texts_path)), workdir))

    def throughput(key: str) -> dict:
        seconds = median([r["seconds"] for r in runs[key]])
        tokens = runs[key][0]["tokens"]
        out = {"seconds": round(seconds, 3), "words_per_second": round(words / seconds), "tokens_per_second": round(tokens / seconds)}
        if "peak_rss_mib" in runs[key][0]:
            out["peak_rss_mib"] = median([r["peak_rss_mib"] for r in runs[key]])
            out["peak_rss_children_mib"] = median([r["peak_rss_children_mib"] for r in runs[key]])
        return out

    components = summarise_components(runs["components"], words)
    one = throughput("one")
    result = {
        "model": model,
        "texts": str(texts),
        "docs": len(corpus),
        "words": words,
        "tokens": runs["project"][0]["tokens"],
        "batch_size": batch_size,
        "repeat": repeat,
        "load_seconds": round(median([r["load_seconds"] for r in runs["one"]]), 3),
        "load_seconds_runs": [round(r["load_seconds"], 3) for r in runs["one"]],
        "imported_during_load": runs["one"][0]["imported_during_load"],
        "one_process": one,
        "two_processes": throughput("two"),
        "components": components,
        "largest_component": max(components, key=lambda row: row["share"]),
        "tokenizers": {"spacy_vi": throughput("spacy_vi"), "project": throughput("project")},
        "wheel": wheel_size_mib(wheel),
        "target_words_per_second": TARGET_WORDS_PER_SECOND,
        "target_met": one["words_per_second"] >= TARGET_WORDS_PER_SECOND,
        "machine": dict(machine_facts(), load_average_before=load_before),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf8")
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(markdown_report(result), encoding="utf8")
    msg.table(
        [(row["component"], f"{row['seconds']:.3f}", f"{row['share']:.1%}", f"{row['words_per_second']:,}") for row in components],
        header=("step", "seconds", "share", "words/s"), divider=True,
    )
    msg.info(
        f"load {result['load_seconds']:.2f} s; 1 process {one['words_per_second']:,} words/s; "
        f"n_process=2 {result['two_processes']['words_per_second']:,} words/s; peak {one['peak_rss_mib']:.0f} MiB; "
        f"tokenizers alone: pyvi {result['tokenizers']['spacy_vi']['words_per_second']:,}, "
        f"syllable {result['tokenizers']['project']['words_per_second']:,} words/s"
    )
    top = result["largest_component"]
    msg.info(f"Largest share: {top['component']} ({top['share']:.1%})")
    if result["target_met"]:
        msg.good(f"Target met: {one['words_per_second']:,} ≥ {TARGET_WORDS_PER_SECOND:,} words/s on one core")
    else:
        msg.warn(f"Target NOT met: {one['words_per_second']:,} < {TARGET_WORDS_PER_SECOND:,} words/s on one core")
    msg.good(f"Wrote {output} and {markdown}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == WORKER_FLAG:
        _worker_main(sys.argv[2], sys.argv[3])
    else:
        typer.run(main)
