"""Drop ix_ad_daily_metrics_ad_id: the unique (ad_id, day) index already serves every lookup by ad_id

Every import writes each row into both indexes; the single-column one answered nothing the unique index's
leading column does not (by-ad reads, the ON DELETE CASCADE from ads), so it was pure write cost.

Revision ID: 0007_drop_metrics_ad_id_index
Revises: 0006_ads_tenant_required
"""

from __future__ import annotations

from alembic import op

revision = "0007_drop_metrics_ad_id_index"
down_revision = "0006_ads_tenant_required"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index(op.f("ix_ad_daily_metrics_ad_id"), table_name="ad_daily_metrics")


def downgrade() -> None:
    op.create_index(op.f("ix_ad_daily_metrics_ad_id"), "ad_daily_metrics", ["ad_id"])
