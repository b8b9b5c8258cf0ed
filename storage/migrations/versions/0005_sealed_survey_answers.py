"""survey answers sealed on the recipient row while a run is open; no respondent key

Answers are kept encrypted on ``survey_recipient.sealed`` until the run closes and are written
to ``survey_response`` only then, so ``survey_response.respondent_key`` (and its unique
constraint with ``run_id``) goes. Answers given before the upgrade in a run still open stay as
they were written (in answer order, not shuffled): let open runs close before upgrading.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 20:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('survey_recipient', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sealed', sa.Text(), nullable=True))
    # The unique constraint goes with the column (PostgreSQL drops it; batch mode rebuilds SQLite's table without it).
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.drop_column('respondent_key')


def downgrade() -> None:
    with op.batch_alter_table('survey_response', schema=None) as batch_op:
        batch_op.add_column(sa.Column('respondent_key', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint('survey_response_run_id_respondent_key_key', ['run_id', 'respondent_key'])
    with op.batch_alter_table('survey_recipient', schema=None) as batch_op:
        batch_op.drop_column('sealed')
