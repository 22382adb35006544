"""The options every command shares, defined once (Typer `Annotated` style).

A command declares e.g. `device: DeviceOpt = "auto"`; the help text lives here only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DeviceOpt = Annotated[
    str, typer.Option("--device", help="Where to compute: auto, cpu, cuda, cuda:N or mps.", show_default=True)
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same metrics on CPU.")]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Run folder to create (default: runs/<command>/<timestamp>). Must be new or empty."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but the result (and errors).")]
SyntheticOpt = Annotated[
    bool, typer.Option("--synthetic", help="Use the built-in synthetic data instead of a dataset on disk.")
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Allow writing into a non-empty folder.")]
