-- Several clusters: a provider_id may name its cluster (`k8s@<cluster>:<namespace>/<deployment>`;
-- `k8s:<namespace>/<deployment>` stays the default cluster). An instance selects only the rows
-- of the clusters it serves, each cluster by one ordered walk of the candidate index, so the
-- index leads with the cluster (`split_part(provider_id, ':', 1)`: `k8s` or `k8s@<cluster>`)
-- and covers the ids of every cluster (`provider_id LIKE 'k8s%:%'`).
--
-- Replaces deployments_sleep_eligible_idx unless it already has this shape (a host that ran
-- the current sql/host-integration.sql). sqlx runs this file in one transaction; like every
-- CREATE INDEX without CONCURRENTLY it blocks writes to the table while the index builds
-- (see docs/host-integration.md for building it concurrently first on a large table).
DO $$
DECLARE
    def text := pg_get_indexdef(to_regclass('deployments_sleep_eligible_idx'));
BEGIN
    IF def IS NOT NULL AND def NOT LIKE '%split_part%' THEN
        DROP INDEX deployments_sleep_eligible_idx;
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS deployments_sleep_eligible_idx
    ON deployments ((split_part(provider_id, ':', 1)),
                    (CASE WHEN sleep_retry_key IS NULL OR last_activity_at > sleep_backoff_activity_at
                          THEN last_activity_at
                          ELSE GREATEST(last_activity_at, sleep_retry_key) END), id)
    WHERE status = 'healthy' AND sleep_state = 'awake' AND NOT always_on
      AND provider_id LIKE 'k8s%:%';
