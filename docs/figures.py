"""The documentation's figures, taken from a real `mle6 run-all` folder: `make docs-figures`.

    python docs/figures.py RUN_DIR [DEST]     (DEST defaults to docs/img)

Each figure is scaled to at most MAX_WIDTH pixels and stored with a 256-colour palette, so the
pages stay light (well under 150 KB a figure); `figures.json` beside them records the run they
come from (its command, data, device and date), which the pages quote.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

MAX_WIDTH = 900
# name in the docs -> where run-all writes it
FIGURES = {
    "gauss_conv.png": "gauss_conv.png",
    "sweep_curves.png": "sweep-lr/sweep_curves.png",
    "ae_losses.png": "train-ae/ae_losses.png",
    "reconstructions.png": "train-ae/reconstructions.png",
    "latent.png": "latent.png",
    "pca_ae_losses.png": "pca-ae/pca_ae_losses.png",
    "pca_ae_reconstructions.png": "pca-ae/pca_ae_reconstructions.png",
    "confusion.png": "confusion.png",
}


def shrink(source: Path, dest: Path) -> None:
    image = Image.open(source).convert("RGB")
    if image.width > MAX_WIDTH:
        image = image.resize((MAX_WIDTH, round(image.height * MAX_WIDTH / image.width)), Image.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)


def main(run: Path, dest: Path) -> None:
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    dest.mkdir(parents=True, exist_ok=True)
    for name, path in FIGURES.items():
        shrink(run / path, dest / name)
        print(f"{dest / name}: {(dest / name).stat().st_size // 1024} KB")
    created = datetime.fromtimestamp((run / "summary.json").stat().st_mtime, timezone.utc)
    record = {
        "command": "mle6 run-all" + (" --quick" if summary.get("quick") else ""),
        "synthetic": summary.get("synthetic"),
        "device": summary.get("device"),
        "cpu_threads": config.get("cpu_threads"),
        "seconds": round(summary.get("seconds", 0), 1),
        "date": created.strftime("%Y-%m-%d"),
        "packages": config.get("packages", {}),
    }
    (dest / "figures.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) == 3 else Path(__file__).parent / "img")
