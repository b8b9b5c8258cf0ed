"""the quarter's focus: periods and their items with baselines

Generated with alembic autogenerate against a database at 0003, then reviewed.

Revision ID: 0011
Revises: 0003
Create Date: 2026-11-30 20:12:44.994158
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0011'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('focus_period',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('published_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('post_channel', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('post_ts', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_table('focus_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period_id', sa.Integer(), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('picked_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('picked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('baseline', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['period_id'], ['focus_period.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('period_id', 'subject')
    )
    with op.batch_alter_table('focus_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_focus_item_period_id'), ['period_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('focus_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_focus_item_period_id'))

    op.drop_table('focus_item')
    op.drop_table('focus_period')
