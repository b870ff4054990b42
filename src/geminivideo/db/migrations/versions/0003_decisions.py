"""fatigue reports, pending ad changes, platform calls (decisions domain)

Revision ID: 0003_decisions
Revises: 0002_webhooks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_decisions"
down_revision = "0002_webhooks"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
# Rows a person or the executor still has to act on: at most one of them per ad.
OPEN_CHANGE_WHERE = sa.text("status IN ('pending_approval', 'approved', 'executing')")


def upgrade() -> None:
    _fatigue_tables()
    _approval_tables()


def _fatigue_tables() -> None:
    op.create_table(
        "fatigue_scans",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=True),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ads_scanned", sa.Integer, nullable=False),
        sa.Column("by_status", sa.JSON, nullable=False),
        sa.Column("critical", sa.Integer, nullable=False),
        sa.Column("proposals_created", sa.Integer, nullable=False),
        sa.Column("task_id", sa.String(64), nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fatigue_scans")),
    )
    op.create_index(op.f("ix_fatigue_scans_tenant_id"), "fatigue_scans", ["tenant_id"])
    op.create_index(op.f("ix_fatigue_scans_started_at"), "fatigue_scans", ["started_at"])
    op.create_table(
        "fatigue_reports",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("scan_id", sa.Integer, nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("ad_id", sa.String(128), nullable=False),
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("days_until_critical", sa.Float, nullable=True),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fatigue_reports")),
        sa.ForeignKeyConstraint(["scan_id"], ["fatigue_scans.id"], ondelete="CASCADE",
                                name=op.f("fk_fatigue_reports_scan_id_fatigue_scans")),
    )
    op.create_index(op.f("ix_fatigue_reports_scan_id"), "fatigue_reports", ["scan_id"])
    op.create_index("ix_fatigue_reports_ad_id_id", "fatigue_reports", ["ad_id", "id"])
    op.create_table(
        "fatigue_settings",
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("thresholds", sa.JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_fatigue_settings")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name=op.f("fk_fatigue_settings_tenant_id_tenants")),
    )


def _approval_tables() -> None:
    op.create_table(
        "pending_ad_changes",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("ad_id", sa.String(128), nullable=False),
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("change_type", sa.String(16), nullable=False),
        sa.Column("current_value", sa.JSON, nullable=True),
        sa.Column("requested_value", sa.JSON, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("decision_note", sa.Text, nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("executed_at", TS, nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_ad_changes")),
        sa.ForeignKeyConstraint(["ad_id"], ["ads.id"], ondelete="CASCADE",
                                name=op.f("fk_pending_ad_changes_ad_id_ads")),
    )
    op.create_index(op.f("ix_pending_ad_changes_tenant_id"), "pending_ad_changes", ["tenant_id"])
    op.create_index(op.f("ix_pending_ad_changes_ad_id"), "pending_ad_changes", ["ad_id"])
    op.create_index(op.f("ix_pending_ad_changes_status"), "pending_ad_changes", ["status"])
    op.create_index(op.f("ix_pending_ad_changes_created_at"), "pending_ad_changes", ["created_at"])
    op.create_index("ix_pending_ad_changes_campaign_id_executed_at", "pending_ad_changes",
                    ["campaign_id", "executed_at"])
    op.create_index("uq_pending_ad_changes_open_ad", "pending_ad_changes", ["ad_id"], unique=True,
                    sqlite_where=OPEN_CHANGE_WHERE, postgresql_where=OPEN_CHANGE_WHERE)
    op.create_table(
        "ad_platform_calls",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("change_id", sa.Integer, nullable=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("ad_id", sa.String(128), nullable=False),
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_platform_calls")),
        sa.ForeignKeyConstraint(["change_id"], ["pending_ad_changes.id"], ondelete="SET NULL",
                                name=op.f("fk_ad_platform_calls_change_id_pending_ad_changes")),
    )
    op.create_index(op.f("ix_ad_platform_calls_change_id"), "ad_platform_calls", ["change_id"])
    op.create_index(op.f("ix_ad_platform_calls_ad_id"), "ad_platform_calls", ["ad_id"])


def downgrade() -> None:
    op.drop_table("ad_platform_calls")
    op.drop_table("pending_ad_changes")
    op.drop_table("fatigue_settings")
    op.drop_table("fatigue_reports")
    op.drop_table("fatigue_scans")
