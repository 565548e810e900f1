"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 00:09:18.344742

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('raw_events',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('engine', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('workflow_id', sa.String(length=64), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=128), nullable=True),
    sa.Column('body', sa.JSON(none_as_null=True), nullable=True),
    sa.PrimaryKeyConstraint('pk', name=op.f('pk_raw_events')),
    sa.UniqueConstraint('workflow_id', 'dedupe_key', name='uq_raw_events_dedupe')
    )
    with op.batch_alter_table('raw_events', schema=None) as batch_op:
        batch_op.create_index('ix_raw_events_workflow_id', ['workflow_id', 'pk'], unique=False)

    op.create_table('workflows',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('engine', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('name_locked', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('progress_done', sa.Integer(), nullable=True),
    sa.Column('progress_total', sa.Integer(), nullable=True),
    sa.Column('n_pending', sa.Integer(), nullable=False),
    sa.Column('n_submitted', sa.Integer(), nullable=False),
    sa.Column('n_running', sa.Integer(), nullable=False),
    sa.Column('n_done', sa.Integer(), nullable=False),
    sa.Column('n_error', sa.Integer(), nullable=False),
    sa.Column('n_cached', sa.Integer(), nullable=False),
    sa.Column('n_aborted', sa.Integer(), nullable=False),
    sa.Column('user', sa.String(length=255), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('command_line', sa.Text(), nullable=True),
    sa.Column('work_dir', sa.Text(), nullable=True),
    sa.Column('project', sa.Text(), nullable=True),
    sa.Column('revision', sa.String(length=255), nullable=True),
    sa.Column('engine_version', sa.String(length=64), nullable=True),
    sa.Column('session_id', sa.String(length=64), nullable=True),
    sa.Column('params', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('config', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('dag', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('error_report', sa.Text(), nullable=True),
    sa.Column('exit_status', sa.Integer(), nullable=True),
    sa.Column('stats', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('metrics', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('progress_detail', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('extra', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('last_job_key', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('pk', name=op.f('pk_workflows')),
    sa.UniqueConstraint('id', name=op.f('uq_workflows_id'))
    )
    with op.batch_alter_table('workflows', schema=None) as batch_op:
        batch_op.create_index('ix_workflows_created_pk', ['created_at', 'pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_workflows_name'), ['name'], unique=False)
        batch_op.create_index('ix_workflows_status_updated', ['status', 'updated_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_workflows_updated_at'), ['updated_at'], unique=False)

    op.create_table('jobs',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('workflow_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('job_key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('tag', sa.Text(), nullable=True),
    sa.Column('wildcards', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('command', sa.Text(), nullable=True),
    sa.Column('inputs', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('outputs', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('log', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('work_dir', sa.Text(), nullable=True),
    sa.Column('cpus', sa.Integer(), nullable=True),
    sa.Column('memory_bytes', sa.BigInteger(), nullable=True),
    sa.Column('time_ms', sa.BigInteger(), nullable=True),
    sa.Column('realtime_ms', sa.BigInteger(), nullable=True),
    sa.Column('pcpu', sa.Float(), nullable=True),
    sa.Column('peak_rss', sa.BigInteger(), nullable=True),
    sa.Column('read_bytes', sa.BigInteger(), nullable=True),
    sa.Column('write_bytes', sa.BigInteger(), nullable=True),
    sa.Column('resources', sa.JSON(none_as_null=True), nullable=True),
    sa.Column('extra', sa.JSON(none_as_null=True), nullable=True),
    sa.ForeignKeyConstraint(['workflow_pk'], ['workflows.pk'], name=op.f('fk_jobs_workflow_pk_workflows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk', name=op.f('pk_jobs')),
    sa.UniqueConstraint('workflow_pk', 'job_key', name='uq_jobs_workflow_key')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_workflow_name', ['workflow_pk', 'name'], unique=False)
        batch_op.create_index('ix_jobs_workflow_status', ['workflow_pk', 'status'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_workflow_status')
        batch_op.drop_index('ix_jobs_workflow_name')

    op.drop_table('jobs')
    with op.batch_alter_table('workflows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workflows_updated_at'))
        batch_op.drop_index('ix_workflows_status_updated')
        batch_op.drop_index(batch_op.f('ix_workflows_name'))
        batch_op.drop_index('ix_workflows_created_pk')

    op.drop_table('workflows')
    with op.batch_alter_table('raw_events', schema=None) as batch_op:
        batch_op.drop_index('ix_raw_events_workflow_id')

    op.drop_table('raw_events')
    
