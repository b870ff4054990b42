"""creative DNA and winner index entries (winners domain)

Revision ID: 0004_winners
Revises: 0003_decisions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_winners"
down_revision = "0003_decisions"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _ad_fk(table: str) -> sa.Column[str]:
    fk = sa.ForeignKey("ads.id", ondelete="CASCADE", name=op.f(f"fk_{table}_ad_id_ads"))
    return sa.Column("ad_id", sa.String(128), fk, nullable=False)


def upgrade() -> None:
    op.create_table(
        "winner_thresholds",
        sa.Column(
            "tenant_id",
            sa.String(128),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name=op.f("fk_winner_thresholds_tenant_id_tenants")),
            nullable=False,
        ),
        sa.Column("min_roas", sa.Float, nullable=False),
        sa.Column("min_spend", sa.Float, nullable=False),
        sa.Column("min_impressions", sa.Integer, nullable=False),
        sa.Column("min_ctr", sa.Float, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_winner_thresholds")),
    )
    op.create_table(
        "creative_dna",
        _ad_fk("creative_dna"),
        sa.Column("dna", sa.JSON, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("format", sa.String(8), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("ad_id", name=op.f("pk_creative_dna")),
    )
    op.create_table(
        "winner_index_entries",
        _ad_fk("winner_index_entries"),
        sa.Column("vector_id", sa.BigInteger, nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("format", sa.String(8), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("impressions", sa.BigInteger, nullable=False),
        sa.Column("clicks", sa.BigInteger, nullable=False),
        sa.Column("spend", sa.Float, nullable=False),
        sa.Column("pipeline_value", sa.Float, nullable=False),
        sa.Column("indexed_at", TS, nullable=False),
        sa.Column("checked_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("ad_id", name=op.f("pk_winner_index_entries")),
        sa.UniqueConstraint("vector_id", name=op.f("uq_winner_index_entries_vector_id")),
    )
    op.create_index(op.f("ix_winner_index_entries_tenant_id"), "winner_index_entries", ["tenant_id"])
    op.create_index(op.f("ix_winner_index_entries_format"), "winner_index_entries", ["format"])


def downgrade() -> None:
    op.drop_index(op.f("ix_winner_index_entries_format"), table_name="winner_index_entries")
    op.drop_index(op.f("ix_winner_index_entries_tenant_id"), table_name="winner_index_entries")
    op.drop_table("winner_index_entries")
    op.drop_table("creative_dna")
    op.drop_table("winner_thresholds")
