"""--config FILE and --print-config: a training command's options from a TOML or JSON file.

Keys are the option names (`batch_size` or `batch-size`); options given on the command line win
over the file. A run folder's own config.json is a valid --config: its `options` are used, so
`mle6 train-cnn --config runs/train-cnn/X/config.json --out again` reproduces the run. An unknown
key, a wrong type or an out-of-range value is a usage error naming the key and the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mle6cli.commands._options import NOT_RECORDED, Option, switch


def _read(path: Path) -> tuple[dict, str]:
    """The options a file holds, and its format ("toml" or "json")."""
    if not path.is_file():
        raise typer.BadParameter(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    text_format = "toml" if path.suffix.lower() == ".toml" else "json"
    try:
        if text_format == "toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            document = tomllib.loads(path.read_text())
        else:
            document = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:  # tomllib.TOMLDecodeError and JSONDecodeError are ValueErrors
        raise typer.BadParameter(f"{path} is not valid {text_format.upper()}: {exc}") from None
    if not isinstance(document, dict):
        raise typer.BadParameter(f"{path} must hold a table of options, not a {type(document).__name__}")
    if isinstance(document.get("options"), dict) and "command" in document:  # a run folder's config.json
        document = document["options"]
    return document, text_format


def _as_parameter(key: str, value, param):
    """A config value in the form the parameter's own parser takes: lists (--lrs, --seeds,
    --latent-dims) as the comma-separated text they are typed as; a repeatable option's (--space) as its uses."""
    if isinstance(value, list) and getattr(param, "multiple", False):
        return [str(v) for v in value]
    if isinstance(value, list):
        return ",".join(repr(v) if isinstance(v, float) else str(v) for v in value)
    return value


def load_config(options: list[Option], ctx: typer.Context, param, value: Path | None) -> Path | None:
    """Eager callback: every key of the file, checked and converted by its option's own rules, becomes a
    default the command line can still override (click's default_map). `options`: the command's; a
    file may set those a run records (by parameter name or config.json key)."""
    if value is None or ctx.resilient_parsing:
        return value
    document, text_format = _read(value)
    params = {p.name: p for p in ctx.command.params}
    recorded = {option.name for option in options if option.key is not NOT_RECORDED}
    by_key: dict[str, Option] = {}
    for option in options:  # a key set by several options (--seed, --seeds): the first says how
        if option.key is not NOT_RECORDED:
            by_key.setdefault(option.key, option)
    defaults = {}
    for raw_key, raw in document.items():
        key = str(raw_key).replace("-", "_")
        name, raw = by_key[key].from_config(raw) if key in by_key else (key, raw)
        if name not in recorded:
            raise typer.BadParameter(f"{value}: unknown key {raw_key!r} for mle6 {ctx.info_name}")
        if raw is None:
            continue  # e.g. data_dir of a synthetic run
        target = params[name]
        converted = _as_parameter(key, raw, target)
        try:
            target.process_value(ctx, converted)
        except (typer.BadParameter, TypeError, ValueError) as exc:
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            raise typer.BadParameter(f"{value}: key {raw_key!r}: {message}") from None
        defaults[name] = converted
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta["config_format"] = text_format
    return value


def config_option(options: list[Option]) -> Option:
    """--config of a command with these options."""
    return Option(
        "config",
        Path | None,
        None,
        "Read options from a TOML or JSON file (keys: the option names; a run's config.json works); "
        "options on the command line win.",
        key=NOT_RECORDED,
        typer={"is_eager": True, "callback": lambda ctx, param, value: load_config(options, ctx, param, value)},
    )


PRINT_CONFIG = switch(
    "print_config", "Print the resolved options (every one, defaults included) and exit.", key=NOT_RECORDED
)


def print_options(ctx: typer.Context, options: dict) -> None:
    """The resolved options, in the --config file's format (TOML or JSON; JSON without one)."""
    from mle6cli.files import dumps

    if ctx.meta.get("config_format") == "toml":
        typer.echo(to_toml(options), nl=False)
    else:
        typer.echo(dumps(options))


def recorded_options(options: list[Option], params: dict, ctx: typer.Context) -> dict:
    """config.json's `options` from the parsed parameters: one entry per key, in the command's order."""
    recorded = {}
    for option in options:
        if option.key is not NOT_RECORDED and option.key not in recorded:
            recorded[option.key] = option.config_value(params, ctx)
    return recorded


def to_toml(options: dict) -> str:
    """Flat TOML: strings, numbers, booleans and lists of them; None (no value) is left out."""
    lines = []
    for key, value in options.items():
        if value is None:
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is JSON's string syntax
