"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 00:52:39.790954
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('friction_point',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('filed_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('minutes_lost', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('channel_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('message_ts', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('permalink', sqlmodel.sql.sqltypes.AutoString(length=3000), nullable=True),
    sa.Column('link_url', sqlmodel.sql.sqltypes.AutoString(length=3000), nullable=True),
    sa.Column('intake_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('duplicate_of_id', sa.Integer(), nullable=True),
    sa.Column('assignee', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('resolution_note', sa.Text(), nullable=True),
    sa.Column('card_channel', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('card_ts', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_response_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['friction_point.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('intake_key')
    )
    with op.batch_alter_table('friction_point', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_friction_point_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_friction_point_duplicate_of_id'), ['duplicate_of_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_friction_point_resolved_at'), ['resolved_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_friction_point_status'), ['status'], unique=False)

    op.create_table('processed_event',
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_table('scheduled_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('occurrence', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('job', 'occurrence')
    )
    op.create_table('closure_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('friction_point_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('tracker', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('closure', sa.Integer(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('feedback', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('feedback_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['friction_point_id'], ['friction_point.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'tracker', 'key', 'closure')
    )
    with op.batch_alter_table('closure_notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_closure_notice_friction_point_id'), ['friction_point_id'], unique=False)

    op.create_table('friction_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('friction_point_id', sa.Integer(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('old', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('new', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['friction_point_id'], ['friction_point.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('friction_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_friction_change_friction_point_id'), ['friction_point_id'], unique=False)

    op.create_table('friction_tag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('friction_point_id', sa.Integer(), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('automatic', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['friction_point_id'], ['friction_point.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('friction_point_id', 'category')
    )
    with op.batch_alter_table('friction_tag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_friction_tag_category'), ['category'], unique=False)
        batch_op.create_index(batch_op.f('ix_friction_tag_friction_point_id'), ['friction_point_id'], unique=False)

    op.create_table('outbox_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dedupe_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('friction_point_id', sa.Integer(), nullable=True),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['friction_point_id'], ['friction_point.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_message_friction_point_id'), ['friction_point_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_message_not_before'), ['not_before'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_message_status'), ['status'], unique=False)

    op.create_table('reporter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('friction_point_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('team_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['friction_point_id'], ['friction_point.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('friction_point_id', 'user_id')
    )
    with op.batch_alter_table('reporter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reporter_friction_point_id'), ['friction_point_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reporter_user_id'), ['user_id'], unique=False)

    op.create_table('tracker_link',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('friction_point_id', sa.Integer(), nullable=False),
    sa.Column('tracker', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=3000), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed', sa.Boolean(), nullable=False),
    sa.Column('closures', sa.Integer(), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('etag', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['friction_point_id'], ['friction_point.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('friction_point_id', 'tracker', 'key')
    )
    with op.batch_alter_table('tracker_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tracker_link_friction_point_id'), ['friction_point_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tracker_link_key'), ['key'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tracker_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracker_link_key'))
        batch_op.drop_index(batch_op.f('ix_tracker_link_friction_point_id'))

    op.drop_table('tracker_link')
    with op.batch_alter_table('reporter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reporter_user_id'))
        batch_op.drop_index(batch_op.f('ix_reporter_friction_point_id'))

    op.drop_table('reporter')
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_message_status'))
        batch_op.drop_index(batch_op.f('ix_outbox_message_not_before'))
        batch_op.drop_index(batch_op.f('ix_outbox_message_friction_point_id'))

    op.drop_table('outbox_message')
    with op.batch_alter_table('friction_tag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_friction_tag_friction_point_id'))
        batch_op.drop_index(batch_op.f('ix_friction_tag_category'))

    op.drop_table('friction_tag')
    with op.batch_alter_table('friction_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_friction_change_friction_point_id'))

    op.drop_table('friction_change')
    with op.batch_alter_table('closure_notice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_closure_notice_friction_point_id'))

    op.drop_table('closure_notice')
    op.drop_table('scheduled_run')
    op.drop_table('processed_event')
    with op.batch_alter_table('friction_point', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_friction_point_status'))
        batch_op.drop_index(batch_op.f('ix_friction_point_resolved_at'))
        batch_op.drop_index(batch_op.f('ix_friction_point_duplicate_of_id'))
        batch_op.drop_index(batch_op.f('ix_friction_point_created_at'))

    op.drop_table('friction_point')
