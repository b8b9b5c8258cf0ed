"""tracker identity: a link's stable ids and last applied state time; deliveries recorded before
they are answered; keys normalised (GitHub/GitLab lower case, Jira/Linear upper case)

Revision ID: 0004
Revises: 0011
Create Date: 2026-11-30 20:10:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0011'
branch_labels = None
depends_on = None

_NORMALISE = """
UPDATE tracker_link SET key = {fn}(key)
WHERE tracker IN ({trackers}) AND key <> {fn}(key) AND NOT EXISTS (
    SELECT 1 FROM tracker_link other
    WHERE other.friction_point_id = tracker_link.friction_point_id AND other.tracker = tracker_link.tracker
      AND other.key = {fn}(tracker_link.key) AND other.id <> tracker_link.id)
"""


def upgrade() -> None:
    with op.batch_alter_table('tracker_link', schema=None) as batch_op:
        batch_op.add_column(sa.Column('issue_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('project_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('state_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_tracker_link_issue_id'), ['issue_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tracker_link_project_id'), ['project_id'], unique=False)
    op.execute(_NORMALISE.format(fn='lower', trackers="'github', 'gitlab'"))
    op.execute(_NORMALISE.format(fn='upper', trackers="'jira', 'linear'"))
    op.create_table('tracker_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tracker', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('body_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('events', sa.Text(), nullable=False),
    sa.Column('notices', sa.Text(), nullable=True),
    sa.Column('queued', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('body_sha256')
    )
    with op.batch_alter_table('tracker_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tracker_delivery_applied_at'), ['applied_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tracker_delivery_received_at'), ['received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tracker_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracker_delivery_received_at'))
        batch_op.drop_index(batch_op.f('ix_tracker_delivery_applied_at'))
    op.drop_table('tracker_delivery')
    with op.batch_alter_table('tracker_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracker_link_project_id'))
        batch_op.drop_index(batch_op.f('ix_tracker_link_issue_id'))
        batch_op.drop_column('state_at')
        batch_op.drop_column('project_id')
        batch_op.drop_column('issue_id')
