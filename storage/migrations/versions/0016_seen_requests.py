"""seen_request: signed Slack requests already applied, to refuse their replays

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 00:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'seen_request',
        sa.Column('signature', sa.String(length=80), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('signature'),
    )
    op.create_index(op.f('ix_seen_request_expires_at'), 'seen_request', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_seen_request_expires_at'), table_name='seen_request')
    op.drop_table('seen_request')
