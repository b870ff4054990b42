"""webhook pipeline tables (owned by the webhooks domain)

Revision ID: 0002_webhooks
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_webhooks"
down_revision = "0001_core"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column[int]:
    return sa.Column("id", BIG_ID, autoincrement=True, nullable=False)


def upgrade() -> None:
    _webhook_events()
    _deal_states()
    _conversions()
    _click_events()
    _attribution_attempts()
    _tenant_pipelines()
    _sampler_feedback()


def _webhook_events() -> None:
    op.create_table(
        "webhook_events",
        _id(),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("portal_id", sa.BigInteger, nullable=True),
        sa.Column("object_id", sa.String(128), nullable=True),
        sa.Column("occurred_at", TS, nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("deal_payload", sa.JSON, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("enqueued_at", TS, nullable=True),
        sa.Column("processed_at", TS, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_webhook_events_idempotency_key")),
    )
    op.create_index(op.f("ix_webhook_events_object_id"), "webhook_events", ["object_id"])
    op.create_index("ix_webhook_events_status_received_at", "webhook_events", ["status", "received_at"])


def _deal_states() -> None:
    op.create_table(
        "deal_states",
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("deal_id", sa.String(128), nullable=False),
        sa.Column("stage", sa.String(128), nullable=False),
        sa.Column("amount", sa.Float, nullable=True),
        sa.Column("expected_value", sa.Float, nullable=False),
        sa.Column("opening_value", sa.Float, nullable=False),
        sa.Column("credited_value", sa.Float, nullable=False),
        sa.Column("ad_id", sa.String(128), nullable=True),
        sa.Column("ad_credited_value", sa.Float, nullable=False),
        sa.Column("ad_cash_credited", sa.Float, nullable=False),
        sa.Column("ad_won", sa.Boolean, nullable=False),
        sa.Column("won", sa.Boolean, nullable=False),
        sa.Column("cash_credited", sa.Float, nullable=False),
        sa.Column("last_occurred_at", TS, nullable=True),
        sa.Column("last_event_key", sa.String(64), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "deal_id", name=op.f("pk_deal_states")),
    )
    op.create_index(op.f("ix_deal_states_ad_id"), "deal_states", ["ad_id"])


def _conversions() -> None:
    op.create_table(
        "conversions",
        _id(),
        sa.Column("event_key", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("deal_id", sa.String(128), nullable=False),
        sa.Column("ad_id", sa.String(128), nullable=True),
        sa.Column("stage_from", sa.String(128), nullable=True),
        sa.Column("stage_to", sa.String(128), nullable=False),
        sa.Column("amount", sa.Float, nullable=True),
        sa.Column("amount_source", sa.String(32), nullable=False),
        sa.Column("synthetic_value", sa.Float, nullable=False),
        sa.Column("credit", sa.Float, nullable=False),
        sa.Column("ad_credit", sa.Float, nullable=False),
        sa.Column("cash_credit", sa.Float, nullable=False),
        sa.Column("attributed_spend", sa.Float, nullable=True),
        sa.Column("attribution_layer", sa.String(32), nullable=True),
        sa.Column("attribution_confidence", sa.Float, nullable=True),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversions")),
        sa.UniqueConstraint("event_key", name=op.f("uq_conversions_event_key")),
    )
    op.create_index(op.f("ix_conversions_deal_id"), "conversions", ["deal_id"])
    op.create_index(op.f("ix_conversions_ad_id"), "conversions", ["ad_id"])


def _click_events() -> None:
    op.create_table(
        "click_events",
        _id(),
        sa.Column("ad_id", sa.String(128), nullable=False),
        sa.Column("campaign_id", sa.String(128), nullable=True),
        sa.Column("tenant_id", sa.String(128), nullable=True),
        sa.Column("click_id", sa.String(512), nullable=True),
        sa.Column("fbclid", sa.String(512), nullable=True),
        sa.Column("gclid", sa.String(512), nullable=True),
        sa.Column("fingerprint_hash", sa.String(128), nullable=True),
        sa.Column("ip_address", sa.String(64), nullable=True),
        sa.Column("ip_network", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(1024), nullable=True),
        sa.Column("utm", sa.JSON, nullable=True),
        sa.Column("clicked_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_click_events")),
    )
    for column in ("ad_id", "click_id", "fbclid", "gclid", "clicked_at"):
        op.create_index(op.f(f"ix_click_events_{column}"), "click_events", [column])
    op.create_index("ix_click_events_fingerprint_clicked_at", "click_events", ["fingerprint_hash", "clicked_at"])
    op.create_index("ix_click_events_ip_network_clicked_at", "click_events", ["ip_network", "clicked_at"])


def _attribution_attempts() -> None:
    op.create_table(
        "attribution_attempts",
        _id(),
        sa.Column("event_key", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("deal_id", sa.String(128), nullable=False),
        sa.Column("layers", sa.JSON, nullable=False),
        sa.Column("layer", sa.String(32), nullable=True),
        sa.Column("ad_id", sa.String(128), nullable=True),
        sa.Column("click_event_id", sa.BigInteger, nullable=True),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("conversion_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attribution_attempts")),
    )
    op.create_index(op.f("ix_attribution_attempts_event_key"), "attribution_attempts", ["event_key"])
    op.create_index(op.f("ix_attribution_attempts_deal_id"), "attribution_attempts", ["deal_id"])


def _tenant_pipelines() -> None:
    op.create_table(
        "tenant_pipelines",
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("portal_id", sa.BigInteger, nullable=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_pipelines")),
        sa.UniqueConstraint("portal_id", name=op.f("uq_tenant_pipelines_portal_id")),
    )


def _sampler_feedback() -> None:
    op.create_table(
        "sampler_feedback",
        _id(),
        sa.Column("feedback_id", sa.String(128), nullable=False),
        sa.Column("ad_id", sa.String(128), nullable=False),
        sa.Column("pipeline_value", sa.Float, nullable=False),
        sa.Column("cash_revenue", sa.Float, nullable=False),
        sa.Column("conversions", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sampler_feedback")),
        sa.UniqueConstraint("feedback_id", name=op.f("uq_sampler_feedback_feedback_id")),
    )
    op.create_index(op.f("ix_sampler_feedback_ad_id"), "sampler_feedback", ["ad_id"])


def downgrade() -> None:
    for table in (
        "sampler_feedback",
        "tenant_pipelines",
        "attribution_attempts",
        "click_events",
        "conversions",
        "deal_states",
        "webhook_events",
    ):
        op.drop_table(table)
