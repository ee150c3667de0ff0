-- Several clusters: a provider_id may name its cluster (`k8s@<cluster>:<namespace>/<deployment>`;
-- `k8s:<namespace>/<deployment>` stays the default cluster). An instance reads only the rows of
-- the clusters it serves, each cluster by one ordered index walk, so the candidate and the drift
-- indexes lead with the cluster (`split_part(provider_id, ':', 1)`: `k8s` or `k8s@<cluster>`),
-- and the candidate index covers the ids of every cluster (`provider_id LIKE 'k8s%:%'`).
--
-- Replaces each index unless it already has this shape (a host that ran the current
-- sql/host-integration.sql). sqlx runs this file in one transaction; like every CREATE INDEX
-- without CONCURRENTLY it blocks writes to the table while an index builds (see
-- docs/host-integration.md for building them concurrently first on a large table).
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

CREATE INDEX IF NOT EXISTS deployments_sleep_drift_idx
    ON deployments ((split_part(provider_id, ':', 1)),
                    (COALESCE(sleep_checked_at, sleep_state_changed_at)), id)
    WHERE sleep_state = 'asleep';
