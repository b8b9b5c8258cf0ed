"""friction point: its duplicate suggestion kept for the card's redraws

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 00:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: instant on PostgreSQL at any size. Existing reports get theirs computed
    # the first time their card is drawn (``bot.operations.insight.card_duplicate``).
    with op.batch_alter_table('friction_point', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suggested_duplicate_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('suggested_similarity', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('friction_point', schema=None) as batch_op:
        batch_op.drop_column('suggested_similarity')
        batch_op.drop_column('suggested_duplicate_id')
