"""A version number per item, for ETags and conditional writes.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "itens", sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1"))
    )


def downgrade() -> None:
    with op.batch_alter_table("itens") as batch:
        batch.drop_column("version")
