"""sealed survey answers under a pseudonym, in their own table (issue #14)

Answering no longer writes the person's ``survey_recipient`` row (whose versions, dead tuples and
WAL frames told who had answered): answers go to ``survey_sealed``, keyed by HMAC(run key, user
id). ``survey_recipient.answered`` and ``.sealed`` go. Answers sealed on recipient rows of runs
still open are dropped: let open runs close before upgrading.

Revision ID: 0006p
Revises: 0005
Create Date: 2026-12-01 00:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006p'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'survey_sealed',
        sa.Column('slot', sa.String(length=64), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('sealed', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['survey_run.id']),
        sa.PrimaryKeyConstraint('slot'),
    )
    with op.batch_alter_table('survey_sealed', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_sealed_run_id'), ['run_id'], unique=False)
    with op.batch_alter_table('survey_recipient', schema=None) as batch_op:
        batch_op.drop_column('sealed')
        batch_op.drop_column('answered')


def downgrade() -> None:
    with op.batch_alter_table('survey_recipient', schema=None) as batch_op:
        batch_op.add_column(sa.Column('answered', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('sealed', sa.Text(), nullable=True))
    with op.batch_alter_table('survey_sealed', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_sealed_run_id'))
    op.drop_table('survey_sealed')
