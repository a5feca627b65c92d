"""Build a tiny, randomly initialised BERT-style transformer with a WordPiece
tokenizer trained on corpus text, and save it to a folder.

Nothing is downloaded: it exercises the transformer config's code path
(spacy-transformers, listeners, the relation extractor on transformer
features) offline, on a CPU, in seconds. It is not a useful encoder.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, List

import typer
from wasabi import msg


def build_tiny_transformer(texts: Iterable[str], output_dir: Path, vocab_size: int = 800, hidden_size: int = 32) -> Path:
    """Train a WordPiece tokenizer on ``texts`` and save it with a random
    2-layer BERT; return ``output_dir`` (usable as a model name)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(list(texts), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special))
    fast = BertTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                             cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", do_lower_case=False)
    output_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(output_dir)
    config = BertConfig(vocab_size=len(fast), hidden_size=hidden_size, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=2 * hidden_size, max_position_embeddings=256)
    BertModel(config).save_pretrained(output_dir)
    return output_dir


def main(
    corpus: Path = typer.Argument(..., help="Corpus JSONL with texts for the tokenizer"),
    output_dir: Path = typer.Argument(..., help="Folder to write the model to"),
) -> None:
    """Write a tiny random transformer trained-tokenizer pair to OUTPUT_DIR."""
    texts: List[str] = [json.loads(line)["text"] for line in corpus.open(encoding="utf8") if line.strip()]
    build_tiny_transformer(texts, output_dir)
    msg.good(f"Tiny transformer saved to {output_dir}; use --components.transformer.model.name {output_dir}")


if __name__ == "__main__":
    typer.run(main)
