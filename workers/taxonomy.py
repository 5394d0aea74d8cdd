"""Taxonomy wiring: the mapping stage of the analyzer, the active version, and owners' reports.

- `TaxonomyStage` maps every analysed text onto the current taxonomy from the vectors the
  analyzer already pooled (no second encoder pass) and names the version in the result.
- `DatabaseTaxonomy` answers "which taxonomy now?" from the database's active version with a
  cheap query cached for a few seconds, so activating a version needs no restart; a mapper is
  built once per content (the store's content-hash cache).
- `TaxonomyTools` holds what the CLI and the API offer to taxonomy owners (validate, upload,
  activate, roll back, evaluate, diff, suggest, from-examples).
"""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import structlog
import yaml

from service.db.repositories import taxonomies as repo
from service.errors import ServiceUnavailable, ValidationFailed

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from nlp.analyzer import Analysis
    from nlp.encoder import Encoder
    from nlp.taxonomy import CaseTypeMapper, Taxonomy, TaxonomyStore
    from nlp.taxonomy.reports import EncodedText

log = structlog.get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TAXONOMY = REPO_ROOT / "taxonomies" / "service_recovery.yaml"
ACTIVE_CHECK_SECONDS = 5.0


class TaxonomySource(Protocol):
    """Which taxonomy the analyses use right now."""

    def current(self) -> Taxonomy: ...


class FileTaxonomy:
    """A taxonomy file, re-read when it changes (`undertone analyze --taxonomy FILE`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cached: tuple[int, int, Taxonomy] | None = None

    def current(self) -> Taxonomy:
        from nlp.taxonomy import load_taxonomy

        stat = self.path.stat()
        if self._cached is None or self._cached[:2] != (stat.st_mtime_ns, stat.st_size):
            self._cached = (stat.st_mtime_ns, stat.st_size, load_taxonomy(self.path))
        return self._cached[2]


class DatabaseTaxonomy:
    """The active version in the database, checked at most every `check_seconds`.

    With no active version yet (an installed wheel, a database migrated before 0003 seeded
    it) the default file is stored and activated. When the database cannot be read the last
    known version keeps serving (logged), so a database hiccup does not fail analyses.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        default_file: Path = DEFAULT_TAXONOMY,
        check_seconds: float = ACTIVE_CHECK_SECONDS,
    ) -> None:
        self._session_factory = session_factory
        self._default = default_file
        self._check = check_seconds
        self._lock = threading.Lock()
        self._checked_at = -float("inf")
        self._hash: str | None = None
        self._taxonomy: Taxonomy | None = None

    def current(self) -> Taxonomy:
        with self._lock:
            if self._taxonomy is not None and time.monotonic() - self._checked_at < self._check:
                return self._taxonomy
            try:
                self._refresh()
            except Exception as error:
                if self._taxonomy is None:
                    log.warning("taxonomy_db_unreadable_using_default", error=repr(error))
                    self._taxonomy = FileTaxonomy(self._default).current()
                else:
                    log.warning("taxonomy_db_unreadable_keeping_last", error=repr(error))
            self._checked_at = time.monotonic()
            assert self._taxonomy is not None
            return self._taxonomy

    def _refresh(self) -> None:
        from nlp.taxonomy import loads_taxonomy

        with self._session_factory() as session:
            ref = repo.active_ref(session)
            if ref is None:
                content = self._default.read_text(encoding="utf-8")
                taxonomy = loads_taxonomy(content, source=str(self._default))
                repo.ensure_active(
                    session, taxonomy.name, taxonomy.version, content, len(taxonomy.case_types)
                )
                ref = repo.active_ref(session)
                assert ref is not None
            if ref.content_hash == self._hash:
                return
            row = repo.require(session, ref.name, ref.version)
            content = row.content
            session.commit()
        self._taxonomy = loads_taxonomy(content, source=f"{ref.name}@{ref.version}")
        self._hash = ref.content_hash
        log.info("taxonomy_active", name=ref.name, version=ref.version)


def encoder_embed(encoder: Encoder) -> Callable[[list[str]], np.ndarray]:
    """texts -> L2-normalised text vectors of the shared encoder (for examples only)."""

    def embed(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, encoder.dim), dtype=np.float32)
        return np.stack([e.text_unit for e in encoder.encode(texts, None)])

    return embed


class TaxonomyStage:
    """An analyzer stage: case types, the taxonomy version and "fits no case type" per text."""

    def __init__(self, store: TaxonomyStore, source: TaxonomySource) -> None:
        self.store = store
        self.source = source

    def __call__(self, analyses: Sequence[Analysis]) -> None:
        from nlp.taxonomy import MapInput

        if not analyses:
            return
        mapper = self.store.mapper_for(self.source.current())
        mapped = mapper.map_batch(
            [
                MapInput(
                    a.text,
                    a.encoding.text_unit,
                    list(a.spans),
                    a.encoding.span_units if len(a.spans) else None,
                )
                for a in analyses
            ]
        )
        label = f"{mapper.taxonomy.name}@{mapper.taxonomy.version}"
        for analysis, found in zip(analyses, mapped, strict=True):
            analysis.result.update(found)
            analysis.result.setdefault("model_versions", {})["taxonomy"] = label


def build_stage(
    encoder: Encoder, source: TaxonomySource, store: TaxonomyStore | None = None
) -> TaxonomyStage:
    """The mapping stage over `encoder`'s vectors."""
    from nlp.taxonomy import TaxonomyStore

    return TaxonomyStage(store or TaxonomyStore(encoder_embed(encoder)), source)


# ------------------------------------------------------------------ owners' tools


def validate_text(content: str, source: str = "upload") -> Taxonomy:
    """A validated taxonomy, or `ValidationFailed` (422) listing file, line and field."""
    from nlp.taxonomy import TaxonomyValidationError, loads_taxonomy

    try:
        return loads_taxonomy(content, source=source)
    except TaxonomyValidationError as e:
        problems = [
            {"source": p.source, "line": p.line, "field": p.field, "message": p.message}
            for p in e.problems
        ]
        raise ValidationFailed(
            f"the taxonomy is not valid: {e.problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            details=problems,
            code="invalid_taxonomy",
        ) from e


def summary(taxonomy: Taxonomy) -> dict[str, Any]:
    """Name, version and the case types' ids and names."""
    return {
        "name": taxonomy.name,
        "version": taxonomy.version,
        "case_types": [{"id": c.id, "name": c.name} for c in taxonomy.case_types],
    }


def read_labelled(
    path: Path, text_column: str = "text", label_column: str = "label"
) -> list[dict[str, Any]]:
    """Rows of a labelled CSV or JSON-lines file (by extension: .jsonl/.json -> JSON lines)."""
    if path.suffix.lower() in {".jsonl", ".json", ".ndjson"}:
        rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    else:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    for number, row in enumerate(rows, start=1):
        if text_column not in row or label_column not in row:
            raise ValidationFailed(
                f"{path}: row {number} has no column {text_column!r} or {label_column!r}",
                code="missing_column",
            )
    return rows


def from_examples_yaml(
    rows: Sequence[dict[str, Any]],
    text_column: str,
    label_column: str,
    shots: int | None,
    name: str = "from_examples",
    version: str = "0.1.0",
) -> str:
    """A validated starting taxonomy as YAML text, one case type per label."""
    from nlp.taxonomy import TaxonomyError, from_examples

    try:
        data = from_examples(rows, text_column, label_column, shots, name=name, version=version)
    except TaxonomyError as e:
        raise ValidationFailed(str(e), code="invalid_examples") from e
    content = str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
    validate_text(content, source="from-examples")
    return content


@dataclass
class TaxonomyTools:
    """What taxonomy owners can do; the CLI and (in embedded mode) the API use it.

    Args:
        session_factory: the database with the versions and the stored feedback.
        encoder: returns the shared encoder (loaded lazily); None where no model may load
            (a scaled-out API process): evaluate, diff and suggest then answer 503.
    """

    session_factory: sessionmaker[Session]
    encoder: Callable[[], Encoder] | None = None
    _store: TaxonomyStore | None = None

    # -- versions (no model needed)

    def validate(self, content: str, source: str = "upload") -> Taxonomy:
        """A validated taxonomy, or `ValidationFailed` (422) with file, line and field."""
        return validate_text(content, source)

    def summary(self, taxonomy: Taxonomy) -> dict[str, Any]:
        """Name, version and case types."""
        return summary(taxonomy)

    def upload(self, content: str, activate: bool = False) -> dict[str, Any]:
        """Validate and store a version (409 if the same version differs); optionally activate."""
        taxonomy = validate_text(content)
        with self.session_factory() as session:
            row, created = repo.add_version(
                session, taxonomy.name, taxonomy.version, content, len(taxonomy.case_types)
            )
            if activate:
                repo.activate(session, row)
            session.commit()
        return {**summary(taxonomy), "created": created, "active": activate or None}

    def activate(self, name: str, version: str) -> dict[str, Any]:
        """Make a stored version the active one."""
        with self.session_factory() as session:
            row = repo.require(session, name, version)
            repo.activate(session, row)
            session.commit()
            return {"name": row.name, "version": row.version, "active": True}

    def rollback(self) -> dict[str, Any]:
        """Re-activate the previously active version."""
        with self.session_factory() as session:
            row = repo.rollback(session)
            session.commit()
            return {"name": row.name, "version": row.version, "active": True}

    def stored(self, name: str | None, version: str | None) -> Taxonomy:
        """A stored version (the active one when name/version are None)."""
        with self.session_factory() as session:
            row = repo.require(session, name, version) if name and version else repo.active(session)
            if row is None:
                raise ServiceUnavailable("no taxonomy is active", code="no_active_taxonomy")
            content, label = row.content, f"{row.name}@{row.version}"
            session.commit()
        return validate_text(content, source=label)

    # -- reports (need the encoder)

    def _mapper(self, taxonomy: Taxonomy) -> CaseTypeMapper:
        from nlp.taxonomy import TaxonomyStore

        if self._store is None:
            self._store = TaxonomyStore(encoder_embed(self._encoder()))
        return self._store.mapper_for(taxonomy)

    def _encoder(self) -> Encoder:
        if self.encoder is None:
            raise ServiceUnavailable(
                "evaluate, diff and suggest run where the models are loaded: use the embedded "
                "mode or `undertone taxonomy evaluate|diff|suggest` on a worker host",
                code="models_not_here",
            )
        return self.encoder()

    def _encode(
        self, texts: Sequence[str], sentences: Sequence[Sequence[tuple[int, int]]] | None = None
    ) -> list[EncodedText]:
        from nlp.taxonomy.reports import EncodedText

        spans = [list(s) for s in sentences] if sentences is not None else [[] for _ in texts]
        encodings = self._encoder().encode(list(texts), spans)
        return [
            EncodedText(t, e.text_unit, s, e.span_units if len(s) > 1 else None)
            for t, e, s in zip(texts, encodings, spans, strict=True)
        ]

    def evaluate(
        self,
        taxonomy: Taxonomy,
        rows: Sequence[dict[str, Any]],
        text_column: str = "text",
        label_column: str = "label",
    ) -> dict[str, Any]:
        """Per case type precision, recall, F1, confused pairs and overlap warnings."""
        from nlp.taxonomy.reports import evaluate

        texts = [str(r[text_column]) for r in rows]
        gold = [str(r[label_column] or "") for r in rows]
        report = evaluate(self._mapper(taxonomy), self._encode(texts), gold)
        return {"taxonomy": {"name": taxonomy.name, "version": taxonomy.version}, **report}

    def diff(self, draft: Taxonomy, days: float = 30.0, limit: int = 2000) -> dict[str, Any]:
        """Re-score recent stored feedback with `draft` beside the active version."""
        from nlp.taxonomy.reports import diff

        active = self.stored(None, None)
        items = self._recent(days, limit)
        encoded = self._encode([i.text for i in items], [_sentences(i) for i in items])
        report = diff(self._mapper(active), self._mapper(draft), encoded, [i.id for i in items])
        return {
            "active": {"name": active.name, "version": active.version},
            "draft": {"name": draft.name, "version": draft.version},
            **report,
        }

    def suggest(
        self, days: float = 28.0, window_days: float = 7.0, limit: int = 5000, min_size: int = 3
    ) -> dict[str, Any]:
        """Cluster recent negative feedback that fits no active case type into proposals."""
        from nlp.taxonomy.reports import suggest, top_label

        active = self.stored(None, None)
        items = [i for i in self._recent(days, limit) if _negative(i.result)]
        encoded = self._encode([i.text for i in items], [_sentences(i) for i in items])
        mapped = self._mapper(active).map_batch([e.as_input() for e in encoded])
        fits_none = [k for k, m in enumerate(mapped) if top_label(m) == "none"]
        vectors = np.stack([encoded[k].text_vector for k in fits_none]) if fits_none else None
        proposals = (
            suggest(
                [items[k].text for k in fits_none],
                vectors,
                [items[k].created_at for k in fits_none],
                datetime.now(UTC),
                window=timedelta(days=window_days),
                min_size=min_size,
            )
            if vectors is not None
            else []
        )
        return {
            "taxonomy": {"name": active.name, "version": active.version},
            "negative": len(items),
            "fits_no_case_type": len(fits_none),
            "suggestions": proposals,
        }

    def _recent(self, days: float, limit: int) -> list[repo.StoredFeedback]:
        since = datetime.now(UTC) - timedelta(days=days)
        with self.session_factory() as session:
            items = repo.recent_analysed(session, since, limit)
            session.commit()
        return items


def _sentences(item: repo.StoredFeedback) -> list[tuple[int, int]]:
    spans = []
    for s in item.result.get("sentences") or []:
        start, end = s.get("start"), s.get("end")
        if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(item.text):
            spans.append((start, end))
    return spans


def _negative(result: dict[str, Any]) -> bool:
    sentiment = result.get("sentiment") or {}
    return sentiment.get("label") == "negative"


def iter_version_rows(session_factory: sessionmaker[Session]) -> Iterator[dict[str, Any]]:
    """Stored versions with whether each is active (for `list`)."""
    with session_factory() as session:
        current = repo.active_ref(session)
        for row in repo.list_versions(session):
            yield {
                "name": row.name,
                "version": row.version,
                "case_types": row.case_type_count,
                "created_at": row.created_at.isoformat(),
                "active": current is not None and current.version_id == row.id,
            }
        session.commit()


def source_for(database_url: str, taxonomy_file: Path | None = None) -> TaxonomySource:
    """The file when one is given, else the database's active version (own small engine)."""
    if taxonomy_file is not None:
        return FileTaxonomy(taxonomy_file)
    if not _database_has_taxonomies(database_url):
        # `undertone analyze` on a machine where the service never ran: no stored versions
        # to choose from, so the shipped default is the active taxonomy by definition.
        log.info("taxonomy_default_file", reason="database not initialised",
                 file=str(DEFAULT_TAXONOMY))
        return FileTaxonomy(DEFAULT_TAXONOMY)
    from service.db.engine import create_db_engine, create_session_factory

    return DatabaseTaxonomy(create_session_factory(create_db_engine(database_url)))


def _database_has_taxonomies(database_url: str) -> bool:
    """Whether the database exists and carries the taxonomy tables (without creating it)."""
    from sqlalchemy.engine import make_url

    from service.db.migrate import current

    url = make_url(database_url)
    is_file_db = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if is_file_db and not Path(str(url.database)).exists():
        return False
    try:
        revision = current(database_url)
    except Exception:  # unreachable server: let DatabaseTaxonomy keep retrying and logging
        return True
    return revision is not None and revision >= "0003"


def problems_of_file(path: Path) -> list[str]:
    """Validation problems of a taxonomy file, one "file:line: field: message" each."""
    from nlp.taxonomy import TaxonomyValidationError, load_taxonomy

    try:
        load_taxonomy(path)
    except TaxonomyValidationError as e:
        return [str(p) for p in e.problems]
    return []


def tools_for_api(settings: Any, session_factory: sessionmaker[Session]) -> TaxonomyTools:
    """The API's tools: reports only in the embedded mode, where the encoder is loaded anyway."""
    if settings.queue.backend != "embedded":
        return TaxonomyTools(session_factory, None)

    def encoder() -> Encoder:
        from workers.pipeline import build_text_analyzer

        # the same cached analyzer the embedded runner uses: no second model load
        return build_text_analyzer(settings).encoder

    return TaxonomyTools(session_factory, encoder)
