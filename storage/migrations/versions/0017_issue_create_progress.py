"""issue_intent, link_start, progress_notice, progress_update: creating a report's issue from its
card exactly once, and telling reporters when work starts and how it goes (issue #28)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 00:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'issue_intent',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('friction_point_id', sa.Integer(), nullable=False),
        sa.Column('tracker', sa.String(length=16), nullable=False),
        sa.Column('project', sa.String(length=255), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('actor', sa.String(length=32), nullable=False),
        sa.Column('title', sa.String(length=255), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('labels', sa.Text(), nullable=False),
        sa.Column('issue_type', sa.String(length=64), nullable=True),
        sa.Column('marker', sa.String(length=64), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=True),
        sa.Column('url', sa.String(length=3000), nullable=True),
        sa.Column('issue_id', sa.String(length=64), nullable=True),
        sa.Column('project_id', sa.String(length=64), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['friction_point_id'], ['friction_point.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('friction_point_id', 'tracker', 'project'),
    )
    op.create_index(op.f('ix_issue_intent_friction_point_id'), 'issue_intent', ['friction_point_id'], unique=False)
    op.create_table(
        'link_start',
        sa.Column('link_id', sa.Integer(), nullable=False),
        sa.Column('friction_point_id', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['link_id'], ['tracker_link.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('link_id'),
    )
    op.create_index(op.f('ix_link_start_friction_point_id'), 'link_start', ['friction_point_id'], unique=False)
    op.create_table(
        'progress_notice',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('friction_point_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('tracker', sa.String(length=16), nullable=False),
        sa.Column('issue', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['friction_point_id'], ['friction_point.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id', 'tracker', 'issue'),
    )
    op.create_index(op.f('ix_progress_notice_friction_point_id'), 'progress_notice', ['friction_point_id'], unique=False)
    op.create_index(op.f('ix_progress_notice_user_id'), 'progress_notice', ['user_id'], unique=False)
    op.create_table(
        'progress_update',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('friction_point_id', sa.Integer(), nullable=False),
        sa.Column('origin', sa.String(length=255), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['friction_point_id'], ['friction_point.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('origin'),
    )
    op.create_index(op.f('ix_progress_update_friction_point_id'), 'progress_update', ['friction_point_id'], unique=False)
    op.create_index(op.f('ix_progress_update_sent_at'), 'progress_update', ['sent_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_progress_update_sent_at'), table_name='progress_update')
    op.drop_index(op.f('ix_progress_update_friction_point_id'), table_name='progress_update')
    op.drop_table('progress_update')
    op.drop_index(op.f('ix_progress_notice_user_id'), table_name='progress_notice')
    op.drop_index(op.f('ix_progress_notice_friction_point_id'), table_name='progress_notice')
    op.drop_table('progress_notice')
    op.drop_index(op.f('ix_link_start_friction_point_id'), table_name='link_start')
    op.drop_table('link_start')
    op.drop_index(op.f('ix_issue_intent_friction_point_id'), table_name='issue_intent')
    op.drop_table('issue_intent')
