-- idle-scaler: additive changes to a host platform's EXISTING `deployments` table.
-- See docs/host-integration.md. Safe to run more than once; run it in one transaction:
--     psql "$DATABASE_URL" --single-transaction -v ON_ERROR_STOP=1 -f host-integration.sql
--
-- The host table must already have (the platform owns and maintains these):
--     id uuid PRIMARY KEY, provider_id text NOT NULL, status text NOT NULL,
--     last_activity_at timestamptz NOT NULL   (bumped on deploy, redeploy and wake)
-- and, if it has no pinning or expiry yet, this script adds always_on / expires_at with the
-- neutral values (not pinned, never expires).

ALTER TABLE deployments
    ADD COLUMN IF NOT EXISTS always_on              boolean     NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS expires_at             timestamptz NULL,
    -- The sleep protocol's own state. Existing rows start awake, changed "now".
    ADD COLUMN IF NOT EXISTS sleep_state            text        NOT NULL DEFAULT 'awake',
    ADD COLUMN IF NOT EXISTS sleep_state_changed_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS replicas_before_sleep  integer     NULL;

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

-- The candidate query's index: only sleepable rows, in the order the tick takes them.
CREATE INDEX IF NOT EXISTS deployments_sleep_candidates_idx
    ON deployments (last_activity_at, id)
    WHERE status = 'healthy' AND sleep_state = 'awake' AND NOT always_on;

-- Stale intents, the asleep gauge and the status listing: only rows out of `awake`.
CREATE INDEX IF NOT EXISTS deployments_sleep_state_idx
    ON deployments (sleep_state, sleep_state_changed_at)
    WHERE sleep_state <> 'awake';

-- The waker's lookup of the app a request is for.
CREATE INDEX IF NOT EXISTS deployments_provider_id_idx ON deployments (provider_id);
