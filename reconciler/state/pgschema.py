"""The PostgreSQL schema: the same versions as the SQLite one (:data:`.store.MIGRATIONS`),
step for step, so a database of either kind at version N has the same tables and columns.

Column for column as in SQLite: ids are ``BIGSERIAL`` (a copied event keeps its id), times are
the same ISO text (queries compare and order them the same way in both), real numbers are
``DOUBLE PRECISION``. Text compared in order (times) uses the ``"C"`` collation: the
database's own locale may order punctuation differently from SQLite's byte order. Append only.
"""

from __future__ import annotations

POSTGRES_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE group_state (
        group_name  TEXT PRIMARY KEY,
        state       TEXT NOT NULL,
        updated_at  TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE events (
        id          BIGSERIAL PRIMARY KEY,
        at          TEXT COLLATE "C" NOT NULL,
        group_name  TEXT NOT NULL,
        rollout     INTEGER,
        kind        TEXT NOT NULL,
        host        TEXT,
        commit_id   TEXT,
        wave        INTEGER,
        code        TEXT NOT NULL,
        message     TEXT NOT NULL,
        revision    TEXT
    );
    CREATE INDEX events_by_group ON events (group_name, id);
    """,
    """
    CREATE TABLE host_reports (
        host         TEXT PRIMARY KEY,
        received_at  TEXT COLLATE "C" NOT NULL,
        body         TEXT NOT NULL
    );
    CREATE TABLE report_history (
        id           BIGSERIAL PRIMARY KEY,
        host         TEXT NOT NULL,
        received_at  TEXT COLLATE "C" NOT NULL,
        body         TEXT NOT NULL
    );
    CREATE INDEX report_history_by_host ON report_history (host, id);
    """,
    """
    CREATE TABLE fleet_revisions (
        id          BIGSERIAL PRIMARY KEY,
        revision    TEXT NOT NULL,
        seen_at     TEXT COLLATE "C" NOT NULL,
        accepted    INTEGER NOT NULL,
        code        TEXT NOT NULL,
        message     TEXT NOT NULL
    );
    """,
    """
    CREATE INDEX events_by_kind ON events (kind, group_name, code);
    """,
    """
    CREATE TABLE publication_cursors (
        name        TEXT PRIMARY KEY,
        event_id    BIGINT NOT NULL
    );
    CREATE TABLE promotions (
        id             BIGSERIAL PRIMARY KEY,
        stream         TEXT NOT NULL,
        source_stream  TEXT NOT NULL,
        commit_id      TEXT NOT NULL,
        at             TEXT COLLATE "C" NOT NULL,
        outcome        TEXT NOT NULL,
        revision       TEXT,
        branch         TEXT,
        message        TEXT NOT NULL
    );
    CREATE INDEX promotions_by_stream ON promotions (stream, commit_id);
    """,
    """
    CREATE TABLE observation_basis (
        host         TEXT PRIMARY KEY,
        received_at  TEXT COLLATE "C" NOT NULL,
        observation  TEXT NOT NULL
    );
    """,
    """
    ALTER TABLE host_reports ADD COLUMN observation TEXT;
    """,
    """
    CREATE TABLE gate_samples (
        id          BIGSERIAL PRIMARY KEY,
        scope       TEXT NOT NULL,
        check_name  TEXT NOT NULL,
        at          TEXT COLLATE "C" NOT NULL,
        outcome     TEXT NOT NULL,
        value       DOUBLE PRECISION,
        detail      TEXT NOT NULL
    );
    CREATE INDEX gate_samples_by_time ON gate_samples (at);
    """,
)
