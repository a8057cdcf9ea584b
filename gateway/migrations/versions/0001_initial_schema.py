"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import gateway.core.models


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('partner_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', gateway.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', gateway.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', gateway.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_table('audit_log',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('action_code', sa.String(length=1), nullable=False),
    sa.Column('occurred_at', gateway.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=200), nullable=True),
    sa.Column('role', sa.String(length=32), nullable=True),
    sa.Column('on_behalf_of', sa.String(length=200), nullable=True),
    sa.Column('purpose_of_use', sa.String(length=100), nullable=True),
    sa.Column('access_point', sa.String(length=200), nullable=True),
    sa.Column('client', sa.String(length=128), nullable=True),
    sa.Column('exchange_id', sa.String(length=36), nullable=True),
    sa.Column('message_type', sa.String(length=100), nullable=True),
    sa.Column('partner_message_id', sa.String(length=200), nullable=True),
    sa.Column('partner_id', sa.String(length=64), nullable=True),
    sa.Column('legal_basis', sa.String(length=64), nullable=True),
    sa.Column('consent_id', sa.String(length=64), nullable=True),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('payload_digest', sa.String(length=80), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_client'), ['client'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_exchange_id'), ['exchange_id'], unique=False)

    op.create_table('connector_states',
    sa.Column('connector_type', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('changed_at', gateway.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('changed_by', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('connector_type')
    )
    op.create_table('exchanges',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('correlation_id', sa.String(length=64), nullable=False),
    sa.Column('route_id', sa.String(length=100), nullable=False),
    sa.Column('message_type', sa.String(length=100), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('connector_type', sa.String(length=64), nullable=False),
    sa.Column('partner_id', sa.String(length=64), nullable=True),
    sa.Column('subject', sa.String(length=128), nullable=True),
    sa.Column('purpose', sa.String(length=100), nullable=False),
    sa.Column('legal_basis', sa.String(length=64), nullable=True),
    sa.Column('consent_id', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('state_reason', sa.Text(), nullable=True),
    sa.Column('partner_message_id', sa.String(length=200), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('payload_encrypted', sa.LargeBinary(), nullable=True),
    sa.Column('payload_digest', sa.String(length=80), nullable=False),
    sa.Column('fields_out', sa.JSON(), nullable=False),
    sa.Column('retry_policy', sa.String(length=64), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('receipt', sa.JSON(), nullable=True),
    sa.Column('replays', sa.Integer(), nullable=False),
    sa.Column('retry_started_at', gateway.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', gateway.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', gateway.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('exchanges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exchanges_connector_type'), ['connector_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_exchanges_correlation_id'), ['correlation_id'], unique=False)
        batch_op.create_index('ix_exchanges_partner_delivered', ['partner_id', 'delivered_at'], unique=False)
        batch_op.create_index('ix_exchanges_partner_state', ['partner_id', 'state', 'updated_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_exchanges_route_id'), ['route_id'], unique=False)
        batch_op.create_index('ix_exchanges_state_created', ['state', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_exchanges_subject'), ['subject'], unique=False)

    op.create_table('inbound_requests',
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=80), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('locked_until', gateway.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('response_status', sa.Integer(), nullable=True),
    sa.Column('response_body', sa.JSON(), nullable=True),
    sa.Column('response_media_type', sa.String(length=100), nullable=True),
    sa.Column('exchange_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', gateway.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('source', 'key')
    )
    op.create_table('partners',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('connector_type', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('identifiers', sa.JSON(), nullable=False),
    sa.Column('endpoint', sa.String(length=500), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('credentials_encrypted', sa.LargeBinary(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('state_reason', sa.Text(), nullable=True),
    sa.Column('state_changed_at', gateway.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('state_changed_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', gateway.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('partners', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_partners_connector_type'), ['connector_type'], unique=False)

    op.create_table('exchange_transitions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('exchange_id', sa.String(length=36), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=True),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('at', gateway.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['exchange_id'], ['exchanges.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('exchange_transitions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exchange_transitions_exchange_id'), ['exchange_id'], unique=False)

    op.create_table('outbox',
    sa.Column('exchange_id', sa.String(length=36), nullable=False),
    sa.Column('partner_id', sa.String(length=64), nullable=False),
    sa.Column('connector_type', sa.String(length=64), nullable=False),
    sa.Column('due_at', gateway.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('held', sa.Boolean(), nullable=False),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_until', gateway.core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', gateway.core.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['exchange_id'], ['exchanges.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('exchange_id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_due', ['held', 'due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_partner_id'), ['partner_id'], unique=False)

    op.create_table('partner_routing',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('connector_type', sa.String(length=64), nullable=False),
    sa.Column('attribute', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('partner_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('connector_type', 'attribute', 'value', name='uq_partner_routing_key')
    )
    with op.batch_alter_table('partner_routing', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_partner_routing_partner_id'), ['partner_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('partner_routing', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_partner_routing_partner_id'))

    op.drop_table('partner_routing')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_partner_id'))
        batch_op.drop_index('ix_outbox_due')

    op.drop_table('outbox')
    with op.batch_alter_table('exchange_transitions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exchange_transitions_exchange_id'))

    op.drop_table('exchange_transitions')
    with op.batch_alter_table('partners', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_partners_connector_type'))

    op.drop_table('partners')
    op.drop_table('inbound_requests')
    with op.batch_alter_table('exchanges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exchanges_subject'))
        batch_op.drop_index('ix_exchanges_state_created')
        batch_op.drop_index(batch_op.f('ix_exchanges_route_id'))
        batch_op.drop_index('ix_exchanges_partner_state')
        batch_op.drop_index('ix_exchanges_partner_delivered')
        batch_op.drop_index(batch_op.f('ix_exchanges_correlation_id'))
        batch_op.drop_index(batch_op.f('ix_exchanges_connector_type'))

    op.drop_table('exchanges')
    op.drop_table('connector_states')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_exchange_id'))
        batch_op.drop_index(batch_op.f('ix_audit_log_client'))

    op.drop_table('audit_log')
    op.drop_table('api_tokens')
