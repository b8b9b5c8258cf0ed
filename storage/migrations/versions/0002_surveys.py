"""pulse surveys: runs, recipients, responses and answers (kept apart), opt-outs, CSAT follow-ups

Generated with alembic autogenerate against a database at 0001, then reviewed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 02:10:07.236538
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('survey_opt_out',
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_id')
    )
    op.create_table('survey_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('survey', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('occurrence', sa.DateTime(timezone=True), nullable=False),
    sa.Column('manual', sa.Boolean(), nullable=False),
    sa.Column('started_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('definition', sa.Text(), nullable=False),
    sa.Column('anonymous', sa.Boolean(), nullable=False),
    sa.Column('deliver_now', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('secret', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('responses', sa.Integer(), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closes_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('survey', 'occurrence')
    )
    with op.batch_alter_table('survey_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_run_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_run_survey'), ['survey'], unique=False)

    op.create_table('survey_recipient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('tz', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('segment', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=True),
    sa.Column('deliver_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered', sa.Boolean(), nullable=False),
    sa.Column('answered', sa.Boolean(), nullable=True),
    sa.Column('reminders', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['survey_run.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'user_id')
    )
    with op.batch_alter_table('survey_recipient', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_recipient_run_id'), ['run_id'], unique=False)

    op.create_table('survey_response',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('respondent_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('segment', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['survey_run.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'respondent_key')
    )
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_response_run_id'), ['run_id'], unique=False)

    op.create_table('csat_followup',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('friction_point_id', sa.Integer(), nullable=False),
    sa.Column('friction_change_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('asked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['friction_change_id'], ['friction_change.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['friction_point_id'], ['friction_point.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('friction_change_id', 'user_id')
    )
    with op.batch_alter_table('csat_followup', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_csat_followup_asked_at'), ['asked_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_csat_followup_friction_point_id'), ['friction_point_id'], unique=False)

    op.create_table('survey_answer',
    sa.Column('response_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('question', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('choice', sqlmodel.sql.sqltypes.AutoString(length=75), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['response_id'], ['survey_response.id'], ),
    sa.PrimaryKeyConstraint('response_id', 'question')
    )


def downgrade() -> None:
    op.drop_table('survey_answer')
    with op.batch_alter_table('csat_followup', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_csat_followup_friction_point_id'))
        batch_op.drop_index(batch_op.f('ix_csat_followup_asked_at'))

    op.drop_table('csat_followup')
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_response_run_id'))

    op.drop_table('survey_response')
    with op.batch_alter_table('survey_recipient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_recipient_run_id'))

    op.drop_table('survey_recipient')
    with op.batch_alter_table('survey_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_run_survey'))
        batch_op.drop_index(batch_op.f('ix_survey_run_status'))

    op.drop_table('survey_run')
    op.drop_table('survey_opt_out')
