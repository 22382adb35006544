"""The package's layers point one way, down: a lower layer never imports a higher one.

    cli, commands          the CLI: options, printing, the error boundary
    tasks                  the exercise's jobs (classifier, autoencoders, pca, latent, maths, the sheet)
    engine                 the loop, members, fused models, graphs, run folders, interrupts, the device
    data, models, plots, drawing, report
    errors, fmt, files     no dependencies inside the package

Every import counts, including those inside functions (the lazy ones that keep start-up fast).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mle6cli"
LAYERS = {
    "cli": 4,
    "commands": 4,
    "__main__": 4,
    "tasks": 3,
    "engine": 2,
    "data": 1,
    "models": 1,
    "plots": 1,
    "drawing": 1,
    "tune_plots": 1,
    "report": 1,
    "errors": 0,
    "fmt": 0,
    "files": 0,
    "__init__": 0,
}


def layer_of(module: str) -> int:
    """mle6cli.engine.loop -> 2; mle6cli.fmt -> 0."""
    parts = module.split(".")
    assert parts[0] == "mle6cli", module
    top = parts[1] if len(parts) > 1 else "__init__"
    assert top in LAYERS, f"{module} is in no layer: add it to LAYERS and to docs/architecture.md"
    return LAYERS[top]


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mle6cli"):
            if node.module == "mle6cli":  # from mle6cli import fmt
                found += [(node.lineno, f"mle6cli.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("mle6cli")]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path):
    module = "mle6cli." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    module = module.removesuffix(".__init__") if module != "mle6cli.__init__" else module
    own = layer_of(module)
    for line, target in imports_of(path):
        if target == "mle6cli.__version__":
            continue
        assert layer_of(target) <= own, f"{path.name}:{line} imports {target} from a higher layer"


def test_the_checker_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from mle6cli.commands._output import Printer\n")
    assert [t for _, t in imports_of(bad)] == ["mle6cli.commands._output"]
    assert layer_of("mle6cli.commands._output") > layer_of("mle6cli.engine.loop")


def test_the_commands_do_not_import_the_cli():
    """cli imports the commands to register them; a command importing cli back would close a circle."""
    for path in sorted((PACKAGE / "commands").glob("*.py")):
        assert "mle6cli.cli" not in [target for _, target in imports_of(path)], f"{path.name} imports mle6cli.cli"
