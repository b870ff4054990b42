"""core tables: tenants, ads, daily metrics, sampler state, video jobs

Revision ID: 0001_core
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
    )
    op.create_table(
        "ads",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("tenant_id", sa.String(128), sa.ForeignKey("tenants.id", name=op.f("fk_ads_tenant_id_tenants"))),
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("daily_budget", sa.Float, nullable=False),
        sa.Column("launched_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ads")),
    )
    op.create_index(op.f("ix_ads_tenant_id"), "ads", ["tenant_id"])
    op.create_index(op.f("ix_ads_campaign_id"), "ads", ["campaign_id"])
    op.create_index(op.f("ix_ads_status"), "ads", ["status"])
    op.create_table(
        "ad_daily_metrics",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column(
            "ad_id",
            sa.String(128),
            sa.ForeignKey("ads.id", ondelete="CASCADE", name=op.f("fk_ad_daily_metrics_ad_id_ads")),
            nullable=False,
        ),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("impressions", sa.Integer, nullable=False),
        sa.Column("reach", sa.Integer, nullable=True),
        sa.Column("frequency", sa.Float, nullable=True),
        sa.Column("clicks", sa.Integer, nullable=False),
        sa.Column("spend", sa.Float, nullable=False),
        sa.Column("conversions", sa.Integer, nullable=False),
        sa.Column("budget", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_daily_metrics")),
        sa.UniqueConstraint("ad_id", "day", name=op.f("uq_ad_daily_metrics_ad_id")),
    )
    op.create_index(op.f("ix_ad_daily_metrics_ad_id"), "ad_daily_metrics", ["ad_id"])
    op.create_table(
        "ad_sampler_state",
        sa.Column(
            "ad_id",
            sa.String(128),
            sa.ForeignKey("ads.id", ondelete="CASCADE", name=op.f("fk_ad_sampler_state_ad_id_ads")),
            nullable=False,
        ),
        sa.Column("pipeline_value", sa.Float, nullable=False),
        sa.Column("cash_revenue", sa.Float, nullable=False),
        sa.Column("conversions", sa.Integer, nullable=False),
        sa.Column("feedback_count", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("ad_id", name=op.f("pk_ad_sampler_state")),
    )
    op.create_table(
        "video_jobs",
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_video_jobs")),
    )
    op.create_index(op.f("ix_video_jobs_kind"), "video_jobs", ["kind"])
    op.create_index(op.f("ix_video_jobs_status"), "video_jobs", ["status"])
    op.create_index(op.f("ix_video_jobs_created_at"), "video_jobs", ["created_at"])


def downgrade() -> None:
    op.drop_table("video_jobs")
    op.drop_table("ad_sampler_state")
    op.drop_table("ad_daily_metrics")
    op.drop_table("ads")
    op.drop_table("tenants")
