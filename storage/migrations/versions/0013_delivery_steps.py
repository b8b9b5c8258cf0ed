"""tracker deliveries owe steps (close, notify, announce, reopen), each its own transaction

A delivery used to change its reports and write its notices in one transaction and then queue the
DMs (``notices``: [[notice id, event index], ...], ``queued`` of them queued). Now it records the
steps its events owe (``work``) and how many have run (``done``). A delivery caught between the
two at upgrade keeps what it still owes as ``queue`` steps (its notices exist; their DMs do not).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 03:30:00
"""
import json

from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tracker_delivery', schema=None) as batch_op:
        batch_op.alter_column('notices', new_column_name='work')
        batch_op.alter_column('queued', new_column_name='done')
    bind = op.get_bind()
    pending = bind.execute(sa.text("SELECT id, work, done FROM tracker_delivery "
                                   "WHERE applied_at IS NULL AND work IS NOT NULL")).all()
    for delivery_id, owed, queued in pending:
        by_event: dict[int, list[int]] = {}
        for notice_id, index in json.loads(owed)[queued:]:
            by_event.setdefault(index, []).append(notice_id)
        steps = [dict(do="queue", event=index, notices=ids[i:i + 200])
                 for index, ids in by_event.items() for i in range(0, len(ids), 200)]
        bind.execute(sa.text("UPDATE tracker_delivery SET work = :work, done = 0 WHERE id = :id"),
                     dict(work=json.dumps(steps), id=delivery_id))


def downgrade() -> None:
    # Steps cannot be turned back into notice lists: finish pending deliveries before downgrading.
    with op.batch_alter_table('tracker_delivery', schema=None) as batch_op:
        batch_op.alter_column('work', new_column_name='notices')
        batch_op.alter_column('done', new_column_name='queued')
