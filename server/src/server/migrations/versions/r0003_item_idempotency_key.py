"""An optional Idempotency-Key per item, unique per owner, so a resent POST stores once.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("itens", sa.Column("idempotency_key", sa.String(length=64), nullable=True))
    # NULLs never collide, so items created without a key are unaffected.
    op.create_index(
        "uq_itens_owner_idempotency_key", "itens", ["owner", "idempotency_key"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_itens_owner_idempotency_key", table_name="itens")
    with op.batch_alter_table("itens") as batch:
        batch.drop_column("idempotency_key")
