-- Liveness: per-row backoff for rows that cannot be slept for a lasting reason, the intent stamps'
-- companions, and drift checks of `asleep` rows. Additive: every column has a neutral default, so a
-- host table that already ran sql/host-integration.sql (which adds the same) is accepted as it is.
-- sqlx runs this file in one transaction.

ALTER TABLE deployments
    -- Backoff: not a candidate before `sleep_retry_after`, unless `last_activity_at` moves past
    -- `sleep_backoff_activity_at` (a deploy ends a backoff; the host needs to know nothing of it).
    -- `sleep_retry_key` is `sleep_retry_after` less the idle window: where the candidate index
    -- sorts the row meanwhile, beyond every real candidate.
    ADD COLUMN IF NOT EXISTS sleep_retry_after         timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_retry_key           timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_backoff_activity_at timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_backoff_count       integer     NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS sleep_skip_reason         text        NULL,
    -- Drift checks: when an `asleep` row's app was last found still at 0; how often someone
    -- else scaled it back up within the window starting at `sleep_flaps_since`; when a wake
    -- started scaling it up (cleared when the wake finishes).
    ADD COLUMN IF NOT EXISTS sleep_checked_at          timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_flaps               integer     NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS sleep_flaps_since         timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_wake_started_at     timestamptz NULL;

-- A host column of one of these names but another type would break the queries in confusing
-- ways: name it instead, as the first migration does for the base columns.
DO $$
DECLARE
    problems text[] := '{}';
    col record;
    got record;
BEGIN
    FOR col IN
        SELECT * FROM (VALUES
            ('sleep_retry_after', 'timestamp with time zone', false),
            ('sleep_retry_key', 'timestamp with time zone', false),
            ('sleep_backoff_activity_at', 'timestamp with time zone', false),
            ('sleep_backoff_count', 'integer', true),
            ('sleep_skip_reason', 'text', false),
            ('sleep_checked_at', 'timestamp with time zone', false),
            ('sleep_flaps', 'integer', true),
            ('sleep_flaps_since', 'timestamp with time zone', false),
            ('sleep_wake_started_at', 'timestamp with time zone', false)
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

-- The candidate index, replaced: only this scaler's sleepable rows, keyed by when each becomes
-- eligible (its activity; a backed-off row at its retry key), so the candidate query walks it in
-- order and stops after `limit` entries however many rows back off.
DROP INDEX IF EXISTS deployments_sleep_candidates_idx;
CREATE INDEX IF NOT EXISTS deployments_sleep_eligible_idx
    ON deployments ((CASE WHEN sleep_retry_key IS NULL OR last_activity_at > sleep_backoff_activity_at
                          THEN last_activity_at
                          ELSE GREATEST(last_activity_at, sleep_retry_key) END), id)
    WHERE status = 'healthy' AND sleep_state = 'awake' AND NOT always_on
      AND provider_id LIKE 'k8s:%';

-- Drift checks: `asleep` rows, least recently checked first.
CREATE INDEX IF NOT EXISTS deployments_sleep_drift_idx
    ON deployments ((COALESCE(sleep_checked_at, sleep_state_changed_at)), id)
    WHERE sleep_state = 'asleep';

-- The backoff listing (`plan`, `status`): only rows that ever backed off since their last sleep.
CREATE INDEX IF NOT EXISTS deployments_sleep_backoff_idx
    ON deployments (sleep_retry_after, id)
    WHERE sleep_retry_after IS NOT NULL;
