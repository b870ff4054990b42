"""ads.tenant_id NOT NULL, as the model has always required (0001 created it NULL-able)

Revision ID: 0006_ads_tenant_required
Revises: 0005_api_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_ads_tenant_required"
down_revision = "0005_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    orphans = op.get_bind().execute(sa.text("SELECT count(*) FROM ads WHERE tenant_id IS NULL")).scalar_one()
    if orphans:
        # Which tenant owns an ad is not something a migration can guess; refuse and lose nothing.
        raise RuntimeError(f"{orphans} rows of ads have no tenant_id; assign each ad its tenant "
                           "(UPDATE ads SET tenant_id = ... WHERE tenant_id IS NULL) and run the migration again")
    # On SQLite this rebuilds the table; env.py turns foreign keys off around it so that dropping the old
    # table does not cascade into the metrics, sampler states and winner rows that reference it.
    with op.batch_alter_table("ads") as batch:
        batch.alter_column("tenant_id", existing_type=sa.String(128), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("ads") as batch:
        batch.alter_column("tenant_id", existing_type=sa.String(128), nullable=True)
