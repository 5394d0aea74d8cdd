"""`undertone taxonomy ...`: tools for taxonomy owners (validate, upload, activate, reports).

Versions live in the database; the workers pick up the active one within a few seconds, no
restart. The reports (evaluate, diff, suggest) load the encoder in this process: the CLI is
a composition root and imports `workers.taxonomy` lazily.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from service.cli.common import load_settings, session_factory
from service.errors import UndertoneError

if TYPE_CHECKING:
    from workers.taxonomy import TaxonomyTools

taxonomy_app = typer.Typer(
    help="Case-type taxonomies: versions and owners' reports.", no_args_is_help=True
)

_FILE = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="Taxonomy YAML.")
_JSON = typer.Option(False, "--json", help="Print the full report as JSON.")


def _run(action: Any) -> Any:
    """Run an action, turning a service error into its message and exit code 1 (2 if invalid)."""
    try:
        return action()
    except UndertoneError as e:
        typer.echo(f"error: {e.message}", err=True)
        for detail in e.details if isinstance(e.details, list) else []:
            if isinstance(detail, dict) and "line" in detail:
                where = (
                    f"{detail['source']}:{detail['line']}" if detail["line"] else detail["source"]
                )
                field = f" {detail['field']}:" if detail["field"] else ""
                typer.echo(f"  {where}:{field} {detail['message']}", err=True)
        raise typer.Exit(2 if e.status_code == 422 else 1) from e


def _tools(with_encoder: bool = False) -> Any:
    """A context manager yielding `TaxonomyTools` on the configured database."""
    from contextlib import contextmanager

    @contextmanager
    def tools() -> Any:
        from workers.taxonomy import TaxonomyTools

        settings = load_settings()
        encoder = None
        if with_encoder:
            from workers.pipeline import build_text_analyzer

            def encoder() -> Any:
                return build_text_analyzer(settings).encoder

        with session_factory(settings) as factory:
            yield TaxonomyTools(factory, encoder)

    return tools()


@taxonomy_app.command("validate")
def validate(path: Path = _FILE) -> None:
    """Check a taxonomy file; problems name the file, line and field."""
    from workers.taxonomy import summary, validate_text

    taxonomy = _run(lambda: validate_text(path.read_text("utf-8"), source=str(path)))
    info = summary(taxonomy)
    typer.echo(
        f"{path}: valid: {info['name']} {info['version']}, {len(info['case_types'])} case types"
    )


@taxonomy_app.command("upload")
def upload(
    path: Path = _FILE,
    activate: bool = typer.Option(False, "--activate", help="Make it the active version too."),
) -> None:
    """Store a new version (versions are immutable: a changed file needs a new version)."""
    with _tools() as tools:
        result = _run(lambda: tools.upload(path.read_text("utf-8"), activate=activate))
    state = "stored" if result["created"] else "already stored (same content)"
    active = ", active" if activate else ""
    typer.echo(f"{result['name']} {result['version']}: {state}{active}")


@taxonomy_app.command("list")
def list_versions() -> None:
    """Stored versions, newest first; * marks the active one."""
    from workers.taxonomy import iter_version_rows

    settings = load_settings()
    with session_factory(settings) as factory:
        for row in iter_version_rows(factory):
            mark = "*" if row["active"] else " "
            typer.echo(
                f"{mark} {row['name']} {row['version']}  {row['case_types']} case types  "
                f"{row['created_at']}"
            )


@taxonomy_app.command("show")
def show(
    name: str | None = typer.Argument(None, help="Taxonomy name (default: the active one)."),
    version: str | None = typer.Argument(None, help="Version."),
) -> None:
    """Print a stored version's YAML (the active one by default)."""
    from service.db.repositories import taxonomies

    settings = load_settings()
    with session_factory(settings) as factory, factory() as session:
        row = (
            _run(lambda: taxonomies.require(session, name, version))
            if name and version
            else taxonomies.active(session)
        )
        if row is None:
            typer.echo("error: no taxonomy is active", err=True)
            raise typer.Exit(1)
        typer.echo(row.content, nl=False)


@taxonomy_app.command("activate")
def activate(name: str = typer.Argument(...), version: str = typer.Argument(...)) -> None:
    """Make a stored version the active one (workers switch within seconds)."""
    with _tools() as tools:
        result = _run(lambda: tools.activate(name, version))
    typer.echo(f"{result['name']} {result['version']} is active")


@taxonomy_app.command("rollback")
def rollback() -> None:
    """Re-activate the version that was active before the current one."""
    with _tools() as tools:
        result = _run(tools.rollback)
    typer.echo(f"rolled back: {result['name']} {result['version']} is active")


def _load(tools: TaxonomyTools, path: Path | None) -> Any:
    from workers.taxonomy import validate_text

    if path is None:
        return _run(lambda: tools.stored(None, None))
    return _run(lambda: validate_text(path.read_text("utf-8"), source=str(path)))


@taxonomy_app.command("evaluate")
def evaluate(
    labelled: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV or JSONL."),
    taxonomy: Path | None = typer.Option(None, "--taxonomy", help="Default: the active one."),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("label", "--label-column"),
    as_json: bool = _JSON,
) -> None:
    """Precision, recall and F1 per case type on a labelled file; confused pairs; overlaps."""
    from workers.taxonomy import read_labelled

    with _tools(with_encoder=True) as tools:
        target = _load(tools, taxonomy)
        rows = _run(lambda: read_labelled(labelled, text_column, label_column))
        report = _run(lambda: tools.evaluate(target, rows, text_column, label_column))
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    typer.echo(
        f"{report['n']} texts, accuracy {report['accuracy']:.3f}, macro F1 {report['macro_f1']:.3f}"
    )
    typer.echo(f"{'case type':32} {'prec':>6} {'rec':>6} {'F1':>6} {'n':>5}")
    for type_id, m in sorted(report["per_case_type"].items(), key=lambda kv: kv[1]["f1"]):
        typer.echo(
            f"{type_id[:32]:32} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} "
            f"{m['support']:5d}"
        )
    if report["confused_pairs"]:
        typer.echo("most confused (gold -> predicted):")
        for pair in report["confused_pairs"]:
            example = pair["examples"][0]
            typer.echo(f" {pair['gold']} -> {pair['predicted']}: {pair['count']}, e.g. {example!r}")
    if report["unknown_labels"]:
        typer.echo(f"labels that are no case type: {', '.join(report['unknown_labels'])}")
    for warning in report["warnings"]:
        typer.echo(f"warning: {warning['message']}")


@taxonomy_app.command("diff")
def diff(
    draft: Path = _FILE,
    days: float = typer.Option(30.0, "--days", help="Re-score feedback of the last N days."),
    limit: int = typer.Option(2000, "--limit", help="At most this many items."),
    as_json: bool = _JSON,
) -> None:
    """Re-score recent stored feedback with a draft beside the active version."""
    with _tools(with_encoder=True) as tools:
        target = _load(tools, draft)
        report = _run(lambda: tools.diff(target, days, limit))
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    a, d = report["active"], report["draft"]
    typer.echo(
        f"{report['n']} items: {report['moved']} change their main case type, "
        f"{report['changed']} their set of case types ({a['version']} -> {d['version']})"
    )
    for move in report["moves"]:
        typer.echo(f"  {move['from']} -> {move['to']}: {move['count']}")
        for example in move["examples"]:
            typer.echo(f"      {example['text'][:100]!r}")


@taxonomy_app.command("suggest")
def suggest(
    days: float = typer.Option(28.0, "--days", help="Look at feedback of the last N days."),
    window: float = typer.Option(7.0, "--window", help="Growth: last N days vs the N before."),
    min_size: int = typer.Option(3, "--min-size", help="Smallest cluster to propose."),
    as_json: bool = _JSON,
) -> None:
    """Propose new case types from negative feedback that fits no case type."""
    with _tools(with_encoder=True) as tools:
        report = _run(lambda: tools.suggest(days, window, min_size=min_size))
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False, default=str))
        return
    typer.echo(
        f"{report['negative']} negative items, {report['fits_no_case_type']} fit no case type; "
        f"{len(report['suggestions'])} proposals"
    )
    for s in report["suggestions"]:
        growth = "new" if s["growth"] is None else f"{s['growth']:+.0%}"
        typer.echo(
            f"- {s['name']} (id {s['suggested_id']}): {s['size']} items, "
            f"last window {s['last_window']} vs {s['previous_window']} ({growth}); "
            f"key phrases: {', '.join(s['key_phrases'])}"
        )
        for example in s["examples"]:
            typer.echo(f"      {example[:100]!r}")


@taxonomy_app.command("from-examples")
def from_examples(
    labelled: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV or JSONL."),
    text_column: str = typer.Option(..., "--text-column"),
    label_column: str = typer.Option(..., "--label-column"),
    shots: int | None = typer.Option(None, "--shots", min=1, help="Examples per label (all)."),
    output: Path = typer.Option(..., "--output", "-o", dir_okay=False),
    name: str = typer.Option("from_examples", "--name"),
    version: str = typer.Option("0.1.0", "--version"),
) -> None:
    """Write a starting taxonomy from a labelled file: one case type per label value."""
    from workers.taxonomy import from_examples_yaml, read_labelled

    rows = _run(lambda: read_labelled(labelled, text_column, label_column))
    content = _run(
        lambda: from_examples_yaml(rows, text_column, label_column, shots, name, version)
    )
    import yaml

    output.write_text(content, encoding="utf-8")
    count = len(yaml.safe_load(content)["case_types"])
    typer.echo(f"{output}: {count} case types written (valid)")


def register(root: typer.Typer) -> None:
    """Add the `taxonomy` command group."""
    root.add_typer(taxonomy_app, name="taxonomy")
