-- The adaptive policy (`policy = adaptive`): per-row keeps and pre-warms beside the sleep
-- protocol's columns, whether a row may sleep at the floor, and each app's rhythm in a table of
-- the library's own. Additive: every column has a neutral default (no keep, no pre-warm, the
-- fixed window), so a host table that already ran sql/host-integration.sql (which adds the same
-- columns and indexes) is accepted as it is. sqlx runs this file in one transaction.

ALTER TABLE deployments
    -- A keep: no candidate before `sleep_keep_until`, unless `last_activity_at` moves past
    -- `sleep_keep_activity_at` (the request it waited for ends it). `sleep_prewarmed_at`: when a
    -- pre-warm woke the app this keep waits for a request of (NULL: a keep-alive).
    ADD COLUMN IF NOT EXISTS sleep_keep_until       timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_keep_activity_at timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_prewarmed_at     timestamptz NULL,
    -- When to pre-warm an `asleep` row (NULL: never).
    ADD COLUMN IF NOT EXISTS sleep_prewarm_at       timestamptz NULL,
    -- The rhythm says the app may sleep at the floor: the early path's index holds only these.
    ADD COLUMN IF NOT EXISTS sleep_early            boolean     NOT NULL DEFAULT false;

-- A host column of one of these names but another type: name it, as the liveness migration does.
DO $$
DECLARE
    problems text[] := '{}';
    col record;
    got record;
BEGIN
    FOR col IN
        SELECT * FROM (VALUES
            ('sleep_keep_until', 'timestamp with time zone', false),
            ('sleep_keep_activity_at', 'timestamp with time zone', false),
            ('sleep_prewarmed_at', 'timestamp with time zone', false),
            ('sleep_prewarm_at', 'timestamp with time zone', false),
            ('sleep_early', 'boolean', true)
        ) AS t(name, type, not_null)
    LOOP
        SELECT format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null
          INTO got
          FROM pg_attribute a
         WHERE a.attrelid = 'deployments'::regclass
           AND a.attname = col.name
           AND a.attnum > 0
           AND NOT a.attisdropped;
        IF got.type <> col.type THEN
            problems := problems || format('column %s is %s (want %s)', col.name, got.type, col.type);
        ELSIF col.not_null AND NOT got.not_null THEN
            problems := problems || format('column %s is nullable (want NOT NULL)', col.name);
        END IF;
    END LOOP;

    IF cardinality(problems) > 0 THEN
        RAISE EXCEPTION 'existing deployments table is incompatible with idle-scaler: %',
            array_to_string(problems, '; ')
            USING ERRCODE = 'invalid_table_definition',
                  HINT = 'see docs/host-integration.md';
    END IF;
END
$$;

-- Each app's rhythm: a bounded summary (48 gaps, 35 day starts: a few KB at most), kept apart
-- from the host's table so learning a request never rewrites the host's row. It goes with its
-- row, and outlives wakes and sleeps.
CREATE TABLE IF NOT EXISTS idle_scaler_rhythms (
    deployment_id uuid        PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
    rhythm        jsonb       NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- The early path: sleepable rows whose rhythm lets them sleep at the floor, by cluster, then
-- activity. The expressions and the WHERE must stay as the early query writes them.
CREATE INDEX IF NOT EXISTS deployments_sleep_early_idx
    ON deployments ((split_part(provider_id, ':', 1)), last_activity_at, id)
    WHERE status = 'healthy' AND sleep_state = 'awake' AND NOT always_on
      AND provider_id LIKE 'k8s%:%' AND sleep_early;

-- Keeps to settle each tick: only rows holding one, soonest end first per cluster.
CREATE INDEX IF NOT EXISTS deployments_sleep_keep_idx
    ON deployments ((split_part(provider_id, ':', 1)), sleep_keep_until, id)
    WHERE sleep_keep_activity_at IS NOT NULL;

-- Pre-warms due: only asleep rows with a pre-warm time, soonest first per cluster.
CREATE INDEX IF NOT EXISTS deployments_sleep_prewarm_idx
    ON deployments ((split_part(provider_id, ':', 1)), sleep_prewarm_at, id)
    WHERE sleep_state = 'asleep' AND sleep_prewarm_at IS NOT NULL;
