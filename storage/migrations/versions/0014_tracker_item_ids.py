"""tracker links: a GitLab merge request's id is ``mr:<id>`` (issue and MR ids are separate
sequences), and a GitHub pull request keeps no id from its webhooks (``pull_request.id`` is not the
id the issues API gives it); both are learned again from the next delivery or poll.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 12:00:00
"""
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE tracker_link SET issue_id = 'mr:' || issue_id "
               "WHERE tracker = 'gitlab' AND key LIKE '%!%' AND issue_id IS NOT NULL AND issue_id NOT LIKE 'mr:%'")
    op.execute("UPDATE tracker_link SET issue_id = NULL WHERE tracker = 'github' AND url LIKE '%/pull/%'")


def downgrade() -> None:
    op.execute("UPDATE tracker_link SET issue_id = substr(issue_id, 4) WHERE tracker = 'gitlab' AND issue_id LIKE 'mr:%'")
