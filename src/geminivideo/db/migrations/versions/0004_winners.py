"""creative DNA and winner index entries (winners domain)

Revision ID: 0004_winners
Revises: 0003_decisions
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0004_winners"
down_revision = "0003_decisions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
