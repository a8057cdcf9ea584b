"""outbox line: the client whose messages an ordered route sends one at a time

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('line', sa.String(length=128), nullable=True))
        batch_op.create_index('ix_outbox_line', ['partner_id', 'line', 'created_at'], unique=False)
    # Which routes are ordered is configuration, which a migration cannot see: every message
    # pending at the upgrade keeps its client's order (on an unordered route that only delays it
    # behind the client's older ones, until the backlog of the upgrade has gone).
    op.execute("UPDATE outbox SET line = (SELECT subject FROM exchanges WHERE exchanges.id = outbox.exchange_id)")


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_line')
        batch_op.drop_column('line')
