"""fatigue reports, pending ad changes, platform calls (decisions domain)

Revision ID: 0003_decisions
Revises: 0002_webhooks
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0003_decisions"
down_revision = "0002_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
