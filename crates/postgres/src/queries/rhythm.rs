//! The adaptive policy's statements (`RhythmStore`): the early path, keeps, pre-warms and the
//! rhythms. Each write is one conditional statement, like the sleep protocol's; none moves
//! `last_activity_at`.

/// $1 now, $2 early_before, $3 idle_before, $4 limit, $5 the scheme of one cluster. Walks
/// `deployments_sleep_early_idx` (the sleepable predicate plus `sleep_early`, exactly as the
/// index writes it) over that cluster's activity in `(idle_before, early_before]`: rows idle
/// longer are the candidate query's. The rest of the sleep rule as in [`super::SELECT_CANDIDATES`].
/// `eligible_at` is the activity, the key the store merges the clusters by.
pub const SELECT_EARLY: &str = concat!(
    "SELECT id, provider_id, last_activity_at, sleep_state_changed_at, sleep_backoff_count, \
            sleep_flaps, sleep_flaps_since, last_activity_at AS eligible_at \
     FROM deployments \
     WHERE ",
    cluster_of!(),
    " = $5 AND ",
    sleepable!(),
    " AND sleep_early \
       AND last_activity_at > $3 AND last_activity_at <= $2 \
       AND (expires_at IS NULL OR expires_at > $1) AND ",
    not_backing_off!("$1"),
    " AND ",
    not_kept!("$1"),
    " ORDER BY last_activity_at, id LIMIT $4"
);

/// $1 ids (`uuid[]`). By the primary key of `idle_scaler_rhythms`; the rhythm as text, parsed
/// by the store.
pub const RHYTHMS: &str = "\
    SELECT deployment_id, rhythm::text FROM idle_scaler_rhythms WHERE deployment_id = ANY($1)";

/// $1 id, $2 the rhythm (JSON text), $3 sleeps_early. One statement: `d` locks the row's key
/// (a concurrent delete waits, or leaves `d` empty and nothing is written), `e` writes
/// `sleep_early` only when it changes (learning a request rewrites no host row otherwise), and
/// the upsert returns the id when the row exists.
pub const SAVE_RHYTHM: &str = "\
    WITH d AS ( \
        SELECT id FROM deployments WHERE id = $1 FOR KEY SHARE \
    ), e AS ( \
        UPDATE deployments SET sleep_early = $3 \
        WHERE id = $1 AND sleep_early IS DISTINCT FROM $3 \
        RETURNING id \
    ) \
    INSERT INTO idle_scaler_rhythms (deployment_id, rhythm, updated_at) \
    SELECT id, $2::jsonb, now() FROM d \
    ON CONFLICT (deployment_id) \
        DO UPDATE SET rhythm = EXCLUDED.rhythm, updated_at = EXCLUDED.updated_at \
    RETURNING deployment_id";

/// $1 id, $2 seen activity, $3 until. Only an `awake` row whose activity is still the one the
/// tick judged; the keep is recorded against that activity, and a pre-warm's mark goes (this
/// keep is a prediction of its own).
pub const KEEP: &str = "\
    UPDATE deployments \
    SET sleep_keep_until = $3, sleep_keep_activity_at = last_activity_at, \
        sleep_prewarmed_at = NULL \
    WHERE id = $1 AND sleep_state = 'awake' AND last_activity_at = $2 \
    RETURNING id";

/// $1 limit, $2 the scheme of one cluster. Walks `deployments_sleep_keep_idx`: every row
/// holding a keep, held or not (the tick settles them), soonest end first. The store merges
/// the clusters by `sleep_keep_until`, then `id`.
pub const KEEPS: &str = concat!(
    "SELECT id, provider_id, last_activity_at, sleep_keep_activity_at, sleep_keep_until, \
            sleep_prewarmed_at \
     FROM deployments \
     WHERE ",
    cluster_of!(),
    " = $2 AND sleep_keep_activity_at IS NOT NULL AND sleep_keep_until IS NOT NULL \
     ORDER BY sleep_keep_until, id LIMIT $1"
);

/// $1 id, $2 the activity the keep was recorded against.
pub const END_KEEP: &str = concat!(
    "UPDATE deployments SET ",
    clear_keep!(),
    " WHERE id = $1 AND sleep_keep_activity_at = $2 \
     RETURNING id"
);

/// $1 id, $2 the asleep stamp, $3 when to pre-warm (NULL: never).
pub const SET_PREWARM: &str = "\
    UPDATE deployments SET sleep_prewarm_at = $3 \
    WHERE id = $1 AND sleep_state = 'asleep' AND sleep_state_changed_at = $2 \
    RETURNING id";

/// $1 now, $2 limit, $3 the scheme of one cluster. Walks `deployments_sleep_prewarm_idx`
/// (asleep rows with a pre-warm time only), soonest first; the store merges the clusters by
/// `sleep_prewarm_at`, then `id`.
pub const PREWARMS_DUE: &str = concat!(
    "SELECT id, provider_id, last_activity_at, sleep_state_changed_at, sleep_wake_started_at, \
            sleep_prewarm_at \
     FROM deployments \
     WHERE ",
    cluster_of!(),
    " = $3 AND sleep_state = 'asleep' AND sleep_prewarm_at IS NOT NULL \
       AND sleep_prewarm_at <= $1 \
     ORDER BY sleep_prewarm_at, id LIMIT $2"
);

/// $1 id, $2 the asleep stamp, $3 now, $4 keep_until. [`super::FINISH_WAKE`] from `asleep`
/// without the activity: a pre-warm is no request, so `last_activity_at` stays and the keep is
/// recorded against it (the first request ends it); marked pre-warmed at `now`.
pub const FINISH_PREWARM: &str = "\
    UPDATE deployments \
    SET sleep_state = 'awake', sleep_state_changed_at = $3, replicas_before_sleep = NULL, \
        sleep_retry_after = NULL, sleep_retry_key = NULL, sleep_backoff_activity_at = NULL, \
        sleep_backoff_count = 0, sleep_skip_reason = NULL, \
        sleep_flaps = 0, sleep_flaps_since = NULL, \
        sleep_wake_started_at = NULL, sleep_checked_at = NULL, sleep_prewarm_at = NULL, \
        sleep_keep_until = $4, sleep_keep_activity_at = last_activity_at, \
        sleep_prewarmed_at = $3 \
    WHERE id = $1 AND sleep_state = 'asleep' AND sleep_state_changed_at = $2 \
    RETURNING id";
