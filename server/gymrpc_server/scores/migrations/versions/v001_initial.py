"""Episodes, evaluation counters and the server secret.

Revision ID: 001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the three tables."""
    op.create_table(
        "episodes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("episode_id", sa.String(32), nullable=False),
        sa.Column("user_name", sa.Text(), nullable=False),
        sa.Column("env_id", sa.Text(), nullable=False),
        sa.Column(
            "env_options",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("evaluation", sa.Boolean(), nullable=False),
        sa.Column("k", sa.BigInteger(), nullable=True),
        sa.Column("episode_return", sa.Double(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("ending", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("failure", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_episodes"),
        sa.UniqueConstraint("episode_id", name="uq_episodes_episode_id"),
        sa.UniqueConstraint("user_name", "env_id", "k", name="uq_episodes_user_name_env_id_k"),
        sa.CheckConstraint(
            "ending IN ('terminated', 'truncated', 'abandoned')", name="ck_episodes_ending"
        ),
        sa.CheckConstraint(
            "(evaluation AND k IS NOT NULL AND k >= 0) OR (NOT evaluation AND k IS NULL)",
            name="ck_episodes_evaluation_k",
        ),
    )
    op.create_index(
        "ix_episodes_env_id_evaluation_user_name_ended_at_k",
        "episodes",
        ["env_id", "evaluation", "user_name", "ended_at", "k"],
    )
    op.create_index(
        "ix_episodes_user_name_ended_at_id", "episodes", ["user_name", "ended_at", "id"]
    )
    op.create_table(
        "evaluation_counters",
        sa.Column("user_name", sa.Text(), nullable=False),
        sa.Column("env_id", sa.Text(), nullable=False),
        sa.Column("next_k", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_name", "env_id", name="pk_evaluation_counters"),
    )
    op.create_table(
        "server_secret",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_server_secret"),
        sa.CheckConstraint("id = 1", name="ck_server_secret_single_row"),
    )


def downgrade() -> None:
    """Drop the three tables (and every score with them)."""
    op.drop_table("server_secret")
    op.drop_table("evaluation_counters")
    op.drop_index("ix_episodes_user_name_ended_at_id", table_name="episodes")
    op.drop_index("ix_episodes_env_id_evaluation_user_name_ended_at_k", table_name="episodes")
    op.drop_table("episodes")
