"""Copy the wheel that `spacy package --build wheel` made into packages/."""
from __future__ import annotations

import shutil
from pathlib import Path

import typer
from wasabi import msg


def main(dist_dir: Path, output_dir: Path) -> None:
    """Copy the single .whl in DIST_DIR to OUTPUT_DIR (exit 1 if none or several)."""
    wheels = sorted(dist_dir.glob("*.whl"))
    if len(wheels) != 1:
        msg.fail(f"expected one wheel in {dist_dir}, found {len(wheels)}", exits=1)
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / wheels[0].name
    shutil.copy2(wheels[0], target)
    msg.good(f"{target} ({target.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    typer.run(main)
