"""usage events, moment-of-use CSAT windows, asks, sealed answers and answers, the audience (issue #29)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 00:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'usage_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=128), nullable=False),
        sa.Column('capability', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=True),
        sa.Column('pending_email', sa.String(length=254), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('outcome', sa.String(length=8), nullable=False),
        sa.Column('duration_ms', sa.Integer(), nullable=True),
        sa.Column('subject', sa.String(length=100), nullable=True),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('settled', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key'),
    )
    op.create_index(op.f('ix_usage_event_capability'), 'usage_event', ['capability'], unique=False)
    op.create_index(op.f('ix_usage_event_user_id'), 'usage_event', ['user_id'], unique=False)
    op.create_index(op.f('ix_usage_event_at'), 'usage_event', ['at'], unique=False)
    op.create_index(op.f('ix_usage_event_settled'), 'usage_event', ['settled'], unique=False)
    op.create_table(
        'usage_window',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('capability', sa.String(length=32), nullable=False),
        sa.Column('week_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('closes_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('secret', sa.String(length=64), nullable=True),
        sa.Column('answers', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('capability', 'week_start'),
    )
    op.create_index(op.f('ix_usage_window_closes_at'), 'usage_window', ['closes_at'], unique=False)
    op.create_index(op.f('ix_usage_window_status'), 'usage_window', ['status'], unique=False)
    op.create_table(
        'usage_ask',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('window_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('capability', sa.String(length=32), nullable=False),
        sa.Column('asked_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('deliver_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['usage_event.id']),
        sa.ForeignKeyConstraint(['window_id'], ['usage_window.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id'),
    )
    op.create_index(op.f('ix_usage_ask_window_id'), 'usage_ask', ['window_id'], unique=False)
    op.create_index(op.f('ix_usage_ask_user_id'), 'usage_ask', ['user_id'], unique=False)
    op.create_index(op.f('ix_usage_ask_asked_at'), 'usage_ask', ['asked_at'], unique=False)
    op.create_table(
        'usage_sealed',
        sa.Column('slot', sa.String(length=64), nullable=False),
        sa.Column('window_id', sa.Integer(), nullable=False),
        sa.Column('sealed', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['window_id'], ['usage_window.id']),
        sa.PrimaryKeyConstraint('slot'),
    )
    op.create_index(op.f('ix_usage_sealed_window_id'), 'usage_sealed', ['window_id'], unique=False)
    op.create_table(
        'usage_answer',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('window_id', sa.Integer(), nullable=False),
        sa.Column('score', sa.Integer(), nullable=False),
        sa.Column('comment', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['window_id'], ['usage_window.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_usage_answer_window_id'), 'usage_answer', ['window_id'], unique=False)
    op.create_table(
        'usage_audience',
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('user_id'),
    )


def downgrade() -> None:
    op.drop_table('usage_audience')
    op.drop_index(op.f('ix_usage_answer_window_id'), table_name='usage_answer')
    op.drop_table('usage_answer')
    op.drop_index(op.f('ix_usage_sealed_window_id'), table_name='usage_sealed')
    op.drop_table('usage_sealed')
    op.drop_index(op.f('ix_usage_ask_asked_at'), table_name='usage_ask')
    op.drop_index(op.f('ix_usage_ask_user_id'), table_name='usage_ask')
    op.drop_index(op.f('ix_usage_ask_window_id'), table_name='usage_ask')
    op.drop_table('usage_ask')
    op.drop_index(op.f('ix_usage_window_status'), table_name='usage_window')
    op.drop_index(op.f('ix_usage_window_closes_at'), table_name='usage_window')
    op.drop_table('usage_window')
    op.drop_index(op.f('ix_usage_event_settled'), table_name='usage_event')
    op.drop_index(op.f('ix_usage_event_at'), table_name='usage_event')
    op.drop_index(op.f('ix_usage_event_user_id'), table_name='usage_event')
    op.drop_index(op.f('ix_usage_event_capability'), table_name='usage_event')
    op.drop_table('usage_event')
