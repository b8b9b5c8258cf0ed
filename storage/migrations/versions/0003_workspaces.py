"""several workspaces: slack-sdk's installation and OAuth state tables, and which workspace an
outbox message and a reporter belong to

The three slack_* tables are slack-sdk's SQLAlchemy installation and state stores' own tables
(SQLAlchemyInstallationStore.build_installations_table / build_bots_table,
SQLAlchemyOAuthStateStore.build_oauth_states_table as of slack-sdk 3.47), written out so this
migration stays what it was; tests/test_workspaces.py fails if slack-sdk's tables grow a column.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 03:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _app_columns() -> list[sa.Column]:
    """The first columns of slack_installations and slack_bots, in slack-sdk's order."""
    return [
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('client_id', sa.String(32), nullable=False),
        sa.Column('app_id', sa.String(32), nullable=False),
        sa.Column('enterprise_id', sa.String(32)),
        sa.Column('enterprise_name', sa.String(200)),
    ]


def _bot_columns() -> list[sa.Column]:
    """The workspace and its bot token: the same in both tables."""
    return [
        sa.Column('team_id', sa.String(32)),
        sa.Column('team_name', sa.String(200)),
        sa.Column('bot_token', sa.String(200)),
        sa.Column('bot_id', sa.String(32)),
        sa.Column('bot_user_id', sa.String(32)),
        sa.Column('bot_scopes', sa.String(1000)),
        sa.Column('bot_refresh_token', sa.String(200)),
        sa.Column('bot_token_expires_at', sa.DateTime()),
    ]


def upgrade() -> None:
    op.create_table(
        'slack_installations',
        *_app_columns(),
        sa.Column('enterprise_url', sa.String(200)),
        *_bot_columns(),
        sa.Column('user_id', sa.String(32), nullable=False),
        sa.Column('user_token', sa.String(200)),
        sa.Column('user_scopes', sa.String(1000)),
        sa.Column('user_refresh_token', sa.String(200)),
        sa.Column('user_token_expires_at', sa.DateTime()),
        sa.Column('incoming_webhook_url', sa.String(200)),
        sa.Column('incoming_webhook_channel', sa.String(200)),
        sa.Column('incoming_webhook_channel_id', sa.String(200)),
        sa.Column('incoming_webhook_configuration_url', sa.String(200)),
        sa.Column('is_enterprise_install', sa.Boolean(), nullable=False),
        sa.Column('token_type', sa.String(32)),
        sa.Column('installed_at', sa.DateTime(), nullable=False),
    )
    op.create_index('slack_installations_idx', 'slack_installations',
                    ['client_id', 'enterprise_id', 'team_id', 'user_id', 'installed_at'])
    op.create_table(
        'slack_bots',
        *_app_columns(),
        *_bot_columns(),
        sa.Column('is_enterprise_install', sa.Boolean(), nullable=False),
        sa.Column('installed_at', sa.DateTime(), nullable=False),
    )
    op.create_index('slack_bots_idx', 'slack_bots', ['client_id', 'enterprise_id', 'team_id', 'installed_at'])
    op.create_table(
        'slack_oauth_states',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('state', sa.String(200), nullable=False),
        sa.Column('expire_at', sa.DateTime(), nullable=False),
    )
    with op.batch_alter_table('outbox_message') as batch_op:
        batch_op.add_column(sa.Column('team_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('enterprise_id', sa.String(length=32), nullable=True))
    with op.batch_alter_table('reporter') as batch_op:
        batch_op.add_column(sa.Column('enterprise_id', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reporter') as batch_op:
        batch_op.drop_column('enterprise_id')
    with op.batch_alter_table('outbox_message') as batch_op:
        batch_op.drop_column('enterprise_id')
        batch_op.drop_column('team_id')
    op.drop_table('slack_oauth_states')
    op.drop_index('slack_bots_idx', table_name='slack_bots')
    op.drop_table('slack_bots')
    op.drop_index('slack_installations_idx', table_name='slack_installations')
    op.drop_table('slack_installations')
