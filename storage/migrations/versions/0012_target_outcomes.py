"""response targets: one outcome per report, clock and resolution cycle

Revision ID: 0012
Revises: 0006p
Create Date: 2026-12-01 00:30:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0012'
down_revision = '0006p'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('target_outcome',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('friction_point_id', sa.Integer(), nullable=False),
    sa.Column('clock', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('target_minutes', sa.Integer(), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('breached_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('used_minutes', sa.Integer(), nullable=True),
    sa.Column('met', sa.Boolean(), nullable=True),
    sa.Column('stop_change_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['friction_point_id'], ['friction_point.id'], ),
    sa.ForeignKeyConstraint(['stop_change_id'], ['friction_change.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('friction_point_id', 'clock', 'cycle')
    )
    with op.batch_alter_table('target_outcome', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_target_outcome_breached_at'), ['breached_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_target_outcome_friction_point_id'), ['friction_point_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_target_outcome_stop_change_id'), ['stop_change_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_target_outcome_stopped_at'), ['stopped_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('target_outcome', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_target_outcome_stopped_at'))
        batch_op.drop_index(batch_op.f('ix_target_outcome_stop_change_id'))
        batch_op.drop_index(batch_op.f('ix_target_outcome_friction_point_id'))
        batch_op.drop_index(batch_op.f('ix_target_outcome_breached_at'))

    op.drop_table('target_outcome')
