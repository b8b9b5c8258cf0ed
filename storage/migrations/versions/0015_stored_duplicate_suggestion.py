"""friction point: its duplicate suggestion kept for the card's redraws

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 00:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: instant on PostgreSQL at any size. Existing reports get theirs computed
    # the first time their card is drawn (``bot.operations.insight.card_duplicate``).
    op.add_column('friction_point', sa.Column('suggested_duplicate_id', sa.Integer(), nullable=True))
    op.add_column('friction_point', sa.Column('suggested_similarity', sa.Float(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ has it): a batch operation would copy
    # friction_point into a new table, which the foreign keys pointing at it refuse on SQLite.
    op.drop_column('friction_point', 'suggested_similarity')
    op.drop_column('friction_point', 'suggested_duplicate_id')
