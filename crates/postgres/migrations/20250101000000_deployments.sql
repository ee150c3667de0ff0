-- The reference `deployments` table (DESIGN.md section 2) and the indexes the store's queries use.
-- sqlx runs this file in one transaction: a failure leaves nothing half-applied.
--
-- A host platform that already has a `deployments` table applies sql/host-integration.sql first
-- (docs/host-integration.md); this migration then accepts its table as it is. A pre-existing table
-- that lacks what the store needs stops the migration with an error naming what is missing, rather
-- than the bare "relation already exists" or a confusing failure on the first query.

CREATE TABLE IF NOT EXISTS deployments (
    id                     uuid        PRIMARY KEY,
    provider_id            text        NOT NULL,
    status                 text        NOT NULL,
    always_on              boolean     NOT NULL DEFAULT false,
    expires_at             timestamptz NULL,
    last_activity_at       timestamptz NOT NULL,
    sleep_state            text        NOT NULL DEFAULT 'awake'
        CONSTRAINT deployments_sleep_state_check
        CHECK (sleep_state IN ('awake', 'sleeping', 'asleep')),
    sleep_state_changed_at timestamptz NOT NULL DEFAULT now(),
    replicas_before_sleep  integer     NULL
        CONSTRAINT deployments_replicas_before_sleep_check
        CHECK (replicas_before_sleep > 0)
);

DO $$
DECLARE
    problems text[] := '{}';
    col record;
    got record;
BEGIN
    FOR col IN
        SELECT * FROM (VALUES
            ('id', 'uuid', true),
            ('provider_id', 'text', true),
            ('status', 'text', true),
            ('always_on', 'boolean', true),
            ('expires_at', 'timestamp with time zone', false),
            ('last_activity_at', 'timestamp with time zone', true),
            ('sleep_state', 'text', true),
            ('sleep_state_changed_at', 'timestamp with time zone', true),
            ('replicas_before_sleep', 'integer', false)
        ) AS t(name, type, not_null)
    LOOP
        SELECT format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null
          INTO got
          FROM pg_attribute a
         WHERE a.attrelid = 'deployments'::regclass
           AND a.attname = col.name
           AND a.attnum > 0
           AND NOT a.attisdropped;
        IF NOT FOUND THEN
            problems := problems || format('column %s is missing (want %s%s)',
                col.name, col.type, CASE WHEN col.not_null THEN ' NOT NULL' ELSE '' END);
        ELSIF got.type <> col.type THEN
            problems := problems || format('column %s is %s (want %s)', col.name, got.type, col.type);
        ELSIF col.not_null AND NOT got.not_null THEN
            problems := problems || format('column %s is nullable (want NOT NULL)', col.name);
        END IF;
    END LOOP;

    IF NOT EXISTS (
        SELECT 1 FROM pg_index i
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
         WHERE i.indrelid = 'deployments'::regclass AND (i.indisprimary OR i.indisunique)
           AND i.indnatts = 1 AND a.attname = 'id'
    ) THEN
        problems := problems || 'column id is not the primary key (or unique)'::text;
    END IF;

    IF cardinality(problems) > 0 THEN
        RAISE EXCEPTION 'existing deployments table is incompatible with idle-scaler: %',
            array_to_string(problems, '; ')
            USING ERRCODE = 'invalid_table_definition',
                  HINT = 'apply crates/postgres/sql/host-integration.sql to it (see docs/host-integration.md)';
    END IF;
END
$$;

-- Serves the candidate query: only sleepable rows are indexed (a small fraction of the table),
-- in the order the tick takes them (oldest activity first, id as a stable tie-break).
CREATE INDEX IF NOT EXISTS deployments_sleep_candidates_idx
    ON deployments (last_activity_at, id)
    WHERE status = 'healthy' AND sleep_state = 'awake' AND NOT always_on;

-- Serves stale `sleeping` intents, the asleep count (the gauge) and the status listing, which
-- only look at rows out of `awake`: also small, however large the table.
CREATE INDEX IF NOT EXISTS deployments_sleep_state_idx
    ON deployments (sleep_state, sleep_state_changed_at)
    WHERE sleep_state <> 'awake';
