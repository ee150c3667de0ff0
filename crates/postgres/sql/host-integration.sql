-- idle-scaler: additive changes to a host platform's EXISTING `deployments` table.
-- See docs/host-integration.md. Safe to run more than once; run it in one transaction:
--     psql "$DATABASE_URL" --single-transaction -v ON_ERROR_STOP=1 -f host-integration.sql
--
-- The host table must already have (the platform owns and maintains these):
--     id uuid PRIMARY KEY, provider_id text NOT NULL, status text NOT NULL,
--     last_activity_at timestamptz NOT NULL   (bumped on deploy, redeploy and wake)
-- and, if it has no pinning or expiry yet, this script adds always_on / expires_at with the
-- neutral values (not pinned, never expires).
--
-- Only adds, except for idle-scaler's own indexes that an earlier version of this script
-- created: deployments_sleep_candidates_idx, and deployments_sleep_eligible_idx and
-- deployments_sleep_drift_idx without the cluster key, are replaced by the current ones.

ALTER TABLE deployments
    ADD COLUMN IF NOT EXISTS always_on              boolean     NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS expires_at             timestamptz NULL,
    -- The sleep protocol's own state. Existing rows start awake, changed "now".
    ADD COLUMN IF NOT EXISTS sleep_state            text        NOT NULL DEFAULT 'awake',
    ADD COLUMN IF NOT EXISTS sleep_state_changed_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS replicas_before_sleep  integer     NULL,
    -- Per-row backoff of rows that cannot be slept for a lasting reason. The host never writes
    -- these: bumping last_activity_at past sleep_backoff_activity_at ends a backoff by itself.
    ADD COLUMN IF NOT EXISTS sleep_retry_after         timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_retry_key           timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_backoff_activity_at timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_backoff_count       integer     NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS sleep_skip_reason         text        NULL,
    -- Drift checks of asleep rows, the flap count, the mark of a wake in progress.
    ADD COLUMN IF NOT EXISTS sleep_checked_at          timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_flaps               integer     NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS sleep_flaps_since         timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_wake_started_at     timestamptz NULL,
    -- The adaptive policy: a keep (no candidate before sleep_keep_until unless activity moves
    -- past sleep_keep_activity_at), a pre-warm's mark and time, and whether the row may sleep
    -- at the floor. The app's rhythm lives in idle-scaler's own table, which the migration
    -- creates.
    ADD COLUMN IF NOT EXISTS sleep_keep_until          timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_keep_activity_at    timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_prewarmed_at        timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_prewarm_at          timestamptz NULL,
    ADD COLUMN IF NOT EXISTS sleep_early               boolean     NOT NULL DEFAULT false;

-- ADD CONSTRAINT has no IF NOT EXISTS: look the names up so a second run is a no-op.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = 'deployments'::regclass
                      AND conname = 'deployments_sleep_state_check') THEN
        ALTER TABLE deployments ADD CONSTRAINT deployments_sleep_state_check
            CHECK (sleep_state IN ('awake', 'sleeping', 'asleep'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = 'deployments'::regclass
                      AND conname = 'deployments_replicas_before_sleep_check') THEN
        ALTER TABLE deployments ADD CONSTRAINT deployments_replicas_before_sleep_check
            CHECK (replicas_before_sleep > 0);
    END IF;
END
$$;

-- The candidate query's index: only this scaler's sleepable rows (of every cluster: ids
-- `k8s:...` and `k8s@<cluster>:...`), keyed by cluster, then by when each becomes eligible (a
-- backed-off row at its retry key). The expressions and the WHERE must stay exactly as written:
-- the candidate query repeats them so the planner can use the index. An earlier version of this
-- script created it without the cluster key; that one is replaced.
DROP INDEX IF EXISTS deployments_sleep_candidates_idx;
DO $$
DECLARE
    idx text;
BEGIN
    FOREACH idx IN ARRAY ARRAY['deployments_sleep_eligible_idx', 'deployments_sleep_drift_idx'] LOOP
        IF pg_get_indexdef(to_regclass(idx)) NOT LIKE '%split_part%' THEN
            EXECUTE format('DROP INDEX %I', idx);
        END IF;
    END LOOP;
END
$$;
CREATE INDEX IF NOT EXISTS deployments_sleep_eligible_idx
    ON deployments ((split_part(provider_id, ':', 1)),
                    (CASE WHEN sleep_retry_key IS NULL OR last_activity_at > sleep_backoff_activity_at
                          THEN last_activity_at
                          ELSE GREATEST(last_activity_at, sleep_retry_key) END), id)
    WHERE status = 'healthy' AND sleep_state = 'awake' AND NOT always_on
      AND provider_id LIKE 'k8s%:%';

-- Stale intents, the asleep gauge and the status listing: only rows out of `awake`.
CREATE INDEX IF NOT EXISTS deployments_sleep_state_idx
    ON deployments (sleep_state, sleep_state_changed_at)
    WHERE sleep_state <> 'awake';

-- Drift checks: asleep rows by cluster, least recently checked first (an earlier version of
-- this script created it without the cluster key; the block above dropped that one).
CREATE INDEX IF NOT EXISTS deployments_sleep_drift_idx
    ON deployments ((split_part(provider_id, ':', 1)),
                    (COALESCE(sleep_checked_at, sleep_state_changed_at)), id)
    WHERE sleep_state = 'asleep';

-- The replicas-asleep gauge: an index-only sum over asleep rows' restore counts.
CREATE INDEX IF NOT EXISTS deployments_sleep_asleep_replicas_idx
    ON deployments (replicas_before_sleep)
    WHERE sleep_state = 'asleep';

-- The backoff listing (plan, status): only rows that backed off since their last sleep.
CREATE INDEX IF NOT EXISTS deployments_sleep_backoff_idx
    ON deployments (sleep_retry_after, id)
    WHERE sleep_retry_after IS NOT NULL;

-- The waker's lookup of the app a request is for.
CREATE INDEX IF NOT EXISTS deployments_provider_id_idx ON deployments (provider_id);

-- The adaptive policy's early path: sleepable rows that may sleep at the floor, by cluster,
-- then activity. Like the candidate index, the expressions and the WHERE must stay as written.
CREATE INDEX IF NOT EXISTS deployments_sleep_early_idx
    ON deployments ((split_part(provider_id, ':', 1)), last_activity_at, id)
    WHERE status = 'healthy' AND sleep_state = 'awake' AND NOT always_on
      AND provider_id LIKE 'k8s%:%' AND sleep_early;

-- Keeps to settle each tick: only rows holding one.
CREATE INDEX IF NOT EXISTS deployments_sleep_keep_idx
    ON deployments ((split_part(provider_id, ':', 1)), sleep_keep_until, id)
    WHERE sleep_keep_activity_at IS NOT NULL;

-- Pre-warms due: only asleep rows with a pre-warm time.
CREATE INDEX IF NOT EXISTS deployments_sleep_prewarm_idx
    ON deployments ((split_part(provider_id, ':', 1)), sleep_prewarm_at, id)
    WHERE sleep_state = 'asleep' AND sleep_prewarm_at IS NOT NULL;
