"""Taxonomies: immutable uploaded versions and their activations; seeds the default taxonomy.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
import yaml
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The repository's default taxonomy; absent in an installed wheel, where the worker seeds
# it at its first start instead (workers.taxonomy).
DEFAULT_TAXONOMY = Path(__file__).resolve().parents[4] / "taxonomies" / "service_recovery.yaml"


def upgrade() -> None:
    versions = op.create_table(
        "taxonomy_versions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("case_type_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_taxonomy_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_taxonomy_versions_name_version")),
    )
    activations = op.create_table(
        "taxonomy_activations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version_id", sa.String(length=36), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["taxonomy_versions.id"],
            name=op.f("fk_taxonomy_activations_version_id_taxonomy_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_taxonomy_activations")),
    )
    _seed_default(versions, activations)


def _seed_default(versions: sa.Table, activations: sa.Table) -> None:
    if not DEFAULT_TAXONOMY.is_file():
        return
    content = DEFAULT_TAXONOMY.read_text(encoding="utf-8")
    data = yaml.safe_load(content)
    # Same hash as service.db.repositories.taxonomies.parsed_hash (copied: migrations stay
    # frozen when application code changes).
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    version_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    op.bulk_insert(
        versions,
        [
            {
                "id": version_id,
                "name": str(data["name"]),
                "version": str(data["version"]),
                "content": content,
                "content_hash": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
                "case_type_count": len(data.get("case_types") or []),
                "created_at": now,
            }
        ],
    )
    op.bulk_insert(
        activations, [{"version_id": version_id, "reason": "default", "created_at": now}]
    )


def downgrade() -> None:
    op.drop_table("taxonomy_activations")
    op.drop_table("taxonomy_versions")
