//! Every statement the store runs (public so a host or the benchmark can `EXPLAIN` them).
//! Each transition is ONE conditional statement (`UPDATE ... RETURNING`):
//! the `WHERE` clause is the whole compare-and-set, evaluated by PostgreSQL on the row version
//! current at the write (under READ COMMITTED a concurrent writer's commit is re-checked
//! against it), so no process-side check can go stale between read and write.

/// The columns of a full row, in the order `Row` expects.
macro_rules! columns {
    () => {
        "id, provider_id, status, always_on, expires_at, last_activity_at, sleep_state, \
         sleep_state_changed_at, replicas_before_sleep"
    };
}

/// When a row becomes eligible: its activity, or for a row backing off (no activity since) its
/// retry key. Exactly the key expression of `deployments_sleep_eligible_idx`, character for
/// character as the planner compares it.
macro_rules! eligible_at {
    () => {
        "(CASE WHEN sleep_retry_key IS NULL OR last_activity_at > sleep_backoff_activity_at \
         THEN last_activity_at ELSE GREATEST(last_activity_at, sleep_retry_key) END)"
    };
}

/// The candidate predicate's fixed part: exactly the `WHERE` of the partial index
/// `deployments_sleep_eligible_idx`, so the planner can use it. `k8s%:%`: the ids of every
/// cluster (`k8s:...` of the default one, `k8s@<name>:...` of a named one); which of them a
/// query takes is the index's leading key, [`cluster_of!`].
macro_rules! sleepable {
    () => {
        "status = 'healthy' AND sleep_state = 'awake' AND NOT always_on \
         AND provider_id LIKE 'k8s%:%'"
    };
}

/// The scheme of a row's `provider_id` (`k8s`, `k8s@east`): the cluster it belongs to, and
/// the leading key of `deployments_sleep_eligible_idx`, exactly as the index writes it.
macro_rules! cluster_of {
    () => {
        "split_part(provider_id, ':', 1)"
    };
}

/// The stale intents recovery hands to an instance serving the schemes in `$n`: its
/// clusters' rows, and rows of no cluster at all (another provider's id, settled without a
/// Kubernetes call). `ServedClusters::admits_id` is the same test in Rust.
macro_rules! admitted {
    ($schemes:literal) => {
        concat!(
            "(",
            cluster_of!(),
            " = ANY(",
            $schemes,
            ") OR provider_id NOT LIKE 'k8s%:%')"
        )
    };
}

/// Not backing off at `$n` (now): no backoff, its retry time has come, or activity arrived
/// after it was recorded (a deploy ends a backoff by itself).
macro_rules! not_backing_off {
    ($now:literal) => {
        concat!(
            "(sleep_retry_after IS NULL OR sleep_retry_after <= ",
            $now,
            " OR last_activity_at > sleep_backoff_activity_at)"
        )
    };
}

/// Not held by a keep at `$n` (now): no keep, its time ran out, or the request it waited for came
/// (activity after it was recorded). `policy::Keep::holds`, negated.
macro_rules! not_kept {
    ($now:literal) => {
        concat!(
            "(sleep_keep_until IS NULL OR sleep_keep_until <= ",
            $now,
            " OR last_activity_at > sleep_keep_activity_at)"
        )
    };
}

/// Clears a keep and its pre-warm mark: a sleep, a wake or a drift fix ends it.
macro_rules! clear_keep {
    () => {
        "sleep_keep_until = NULL, sleep_keep_activity_at = NULL, sleep_prewarmed_at = NULL"
    };
}

/// $1 now, $2 idle_before, $3 limit, $4 the scheme of one cluster (`k8s`, `k8s@east`). Fixes
/// the index's leading key and filters and orders by its second, so the planner walks
/// `deployments_sleep_eligible_idx` from the start of that cluster's entries and stops after
/// `limit`: a backed-off row sorts at its retry key, beyond every real candidate, and costs
/// nothing however many there are; other clusters' rows are never read. The explicit terms
/// after it keep the result exact whatever the idle window was when a backoff was recorded.
/// A kept row stays in the index at its activity and is filtered out (keeps are few: only
/// rows the adaptive policy predicts a request for, for at most `max_keep_minutes`).
/// The store runs it once per served cluster and merges by `eligible_at`, then `id`.
pub const SELECT_CANDIDATES: &str = concat!(
    "SELECT id, provider_id, last_activity_at, sleep_state_changed_at, sleep_backoff_count, \
            sleep_flaps, sleep_flaps_since, ",
    eligible_at!(),
    " AS eligible_at \
     FROM deployments \
     WHERE ",
    cluster_of!(),
    " = $4 AND ",
    sleepable!(),
    " AND ",
    eligible_at!(),
    " <= $2 \
       AND (expires_at IS NULL OR expires_at > $1) \
       AND last_activity_at <= $2 AND ",
    not_backing_off!("$1"),
    " AND ",
    not_kept!("$1"),
    " ORDER BY ",
    eligible_at!(),
    ", id LIMIT $3"
);

/// CAS 1. $1 id, $2 seen activity, $3 idle_before, $4 replicas (NULL when at 0), $5 now.
/// Re-checks the whole candidate predicate, plus that activity is exactly what was selected;
/// `$5` is the intent's stamp. A sleep starts afresh: no backoff, no keep, no drift check yet.
pub const CLAIM_SLEEP: &str = concat!(
    "UPDATE deployments \
     SET sleep_state = 'sleeping', sleep_state_changed_at = $5, replicas_before_sleep = $4, \
         sleep_retry_after = NULL, sleep_retry_key = NULL, sleep_backoff_activity_at = NULL, \
         sleep_backoff_count = 0, sleep_skip_reason = NULL, sleep_checked_at = NULL, ",
    clear_keep!(),
    " WHERE id = $1 AND ",
    sleepable!(),
    " AND (expires_at IS NULL OR expires_at > $5) \
       AND last_activity_at = $2 AND last_activity_at <= $3 AND ",
    not_backing_off!("$5"),
    " AND ",
    not_kept!("$5"),
    " RETURNING id"
);

/// $1 id, $2 seen activity, $3 the intent's stamp, $4 now. One statement with three outcomes:
/// `cur` locks the row and reads its latest version (under READ COMMITTED `FOR UPDATE` follows
/// a concurrent commit), the `UPDATE` (joined to `cur`, so it runs after the lock) flips it only
/// if it still holds this intent with this activity; the result row is the version the
/// `UPDATE` judged, so a failed CAS says why. No row: the row is gone. Keeps
/// `replicas_before_sleep` for the wake.
pub const CONFIRM_SLEEP: &str = "\
    WITH cur AS ( \
        SELECT id, sleep_state, sleep_state_changed_at, last_activity_at \
        FROM deployments WHERE id = $1 FOR UPDATE \
    ), upd AS ( \
        UPDATE deployments d SET sleep_state = 'asleep', sleep_state_changed_at = $4 \
        FROM cur \
        WHERE d.id = cur.id AND d.sleep_state = 'sleeping' \
          AND d.sleep_state_changed_at = $3 AND d.last_activity_at = $2 \
        RETURNING d.id \
    ) \
    SELECT (SELECT count(*) FROM upd) AS confirmed, \
           cur.sleep_state = 'sleeping' AND cur.sleep_state_changed_at = $3 AS same_intent \
    FROM cur";

/// $1 id, $2 the intent's stamp, $3 now.
pub const REVERT_SLEEP: &str = "\
    UPDATE deployments \
    SET sleep_state = 'awake', sleep_state_changed_at = $3, replicas_before_sleep = NULL \
    WHERE id = $1 AND sleep_state = 'sleeping' AND sleep_state_changed_at = $2 \
    RETURNING id";

/// $1 id, $2 seen activity, $3 reason, $4 retry_after, $5 retry_key. Remembers the activity
/// it saw, so a later bump (a deploy) ends the backoff without anyone clearing it.
pub const BACK_OFF: &str = "\
    UPDATE deployments \
    SET sleep_retry_after = $4, sleep_retry_key = $5, \
        sleep_backoff_activity_at = last_activity_at, \
        sleep_backoff_count = sleep_backoff_count + 1, sleep_skip_reason = $3 \
    WHERE id = $1 AND sleep_state = 'awake' AND last_activity_at = $2 \
    RETURNING id";

/// $1 now, $2 limit. Served by `deployments_sleep_backoff_idx`.
pub const BACKED_OFF: &str = "\
    SELECT id, provider_id, COALESCE(sleep_skip_reason, ''), sleep_retry_after, \
           sleep_backoff_count \
    FROM deployments \
    WHERE sleep_retry_after > $1 AND last_activity_at <= sleep_backoff_activity_at \
      AND sleep_state = 'awake' \
    ORDER BY sleep_retry_after, id \
    LIMIT $2";

/// $1 id, $2 the intent's `sleep_state_changed_at`, $3 target state (`awake`/`asleep`), $4 now.
/// Recovery's compare-and-set on the very intent it read: a new intent of a live transition
/// has another change time and is left alone.
pub const SETTLE_INTENT: &str = "\
    UPDATE deployments \
    SET sleep_state = $3, sleep_state_changed_at = $4, \
        replicas_before_sleep = CASE WHEN $3 = 'awake' THEN NULL ELSE replicas_before_sleep END \
    WHERE id = $1 AND sleep_state = 'sleeping' AND sleep_state_changed_at = $2 \
      AND ($3 = 'awake' OR last_activity_at <= sleep_state_changed_at) \
    RETURNING id";

/// $1 older_than, $2 the served schemes (`text[]`). Served by `deployments_sleep_state_idx`.
pub const STALE_INTENTS: &str = concat!(
    "SELECT id, provider_id, last_activity_at, sleep_state_changed_at, replicas_before_sleep \
     FROM deployments \
     WHERE sleep_state = 'sleeping' AND sleep_state_changed_at <= $1 AND ",
    admitted!("$2"),
    " ORDER BY sleep_state_changed_at, id"
);

/// $1 id.
pub const GET: &str = concat!("SELECT ", columns!(), " FROM deployments WHERE id = $1");

/// The waker's lookup, by `deployments_provider_id_idx`; ties go to the latest activity.
pub const FIND_BY_PROVIDER_ID: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM deployments WHERE provider_id = $1 ORDER BY last_activity_at DESC, id DESC LIMIT 1"
);

/// $1 id, $2 from state, $3 now, $4 the state's change time as the wake read it (the row
/// must still be in that very state). The state change time moves only when the state does. A
/// wake is a fresh start: no backoff, no flaps, no wake mark, no drift check, no keep, no
/// pre-warm.
pub const FINISH_WAKE: &str = concat!(
    "UPDATE deployments \
     SET sleep_state = 'awake', last_activity_at = $3, replicas_before_sleep = NULL, \
         sleep_state_changed_at = CASE WHEN sleep_state = 'awake' \
                                       THEN sleep_state_changed_at ELSE $3 END, \
         sleep_retry_after = NULL, sleep_retry_key = NULL, sleep_backoff_activity_at = NULL, \
         sleep_backoff_count = 0, sleep_skip_reason = NULL, \
         sleep_flaps = 0, sleep_flaps_since = NULL, \
         sleep_wake_started_at = NULL, sleep_checked_at = NULL, sleep_prewarm_at = NULL, ",
    clear_keep!(),
    " WHERE id = $1 AND sleep_state = $2 AND sleep_state_changed_at = $4 \
     RETURNING id"
);

/// $1 id, $2 the state's stamp, $3 now.
pub const BEGIN_WAKE: &str = "\
    UPDATE deployments SET sleep_wake_started_at = $3 \
    WHERE id = $1 AND sleep_state IN ('asleep', 'sleeping') AND sleep_state_changed_at = $2 \
    RETURNING id";

/// $1 checked_before, $2 the scheme of one cluster. Whether any drift check of that cluster is
/// due: the first of its entries in `deployments_sleep_drift_idx`, whatever the planner
/// believes about the cut-off. The slice query below runs only when this finds a row, because
/// PostgreSQL keeps no statistics for a partial index's expression: it guesses a third of the
/// asleep rows are due, and then prefers reading every asleep row and sorting them (36 ms at
/// 10,000 asleep rows in the store bench) to walking the index, on every tick where nothing
/// is due. The index leads with the cluster, so the walk never passes another cluster's rows
/// (which would pile up at its head while no instance serving them checks them).
pub const ANY_ASLEEP_TO_CHECK: &str = concat!(
    "SELECT id FROM deployments \
     WHERE ",
    cluster_of!(),
    " = $2 AND sleep_state = 'asleep' \
       AND COALESCE(sleep_checked_at, sleep_state_changed_at) <= $1 \
     ORDER BY COALESCE(sleep_checked_at, sleep_state_changed_at), id \
     LIMIT 1"
);

/// $1 checked_before, $2 limit, $3 the scheme of one cluster. Served by
/// `deployments_sleep_drift_idx`; the store runs it per served cluster and merges by `due`,
/// then `id`.
pub const ASLEEP_TO_CHECK: &str = concat!(
    "SELECT id, provider_id, last_activity_at, sleep_state_changed_at, sleep_wake_started_at, \
            COALESCE(sleep_checked_at, sleep_state_changed_at) AS due \
     FROM deployments \
     WHERE ",
    cluster_of!(),
    " = $3 AND sleep_state = 'asleep' \
       AND COALESCE(sleep_checked_at, sleep_state_changed_at) <= $1 \
     ORDER BY COALESCE(sleep_checked_at, sleep_state_changed_at), id \
     LIMIT $2"
);

/// $1 id, $2 now.
pub const MARK_CHECKED: &str = "\
    UPDATE deployments SET sleep_checked_at = $2 \
    WHERE id = $1 AND sleep_state = 'asleep' \
    RETURNING id";

/// $1 id, $2 the asleep stamp, $3 whether someone else scaled it up (a flap), $4 now. A flap
/// restarts the count at 1 once its 24 h window is over; other drift leaves the count alone.
/// The app was started: a fresh idle window, so the next tick does not sleep it at once, and
/// no pre-warm is pending for it any more.
pub const RECONCILE_AWAKE: &str = concat!(
    "UPDATE deployments \
    SET sleep_state = 'awake', sleep_state_changed_at = $4, replicas_before_sleep = NULL, \
        last_activity_at = GREATEST(last_activity_at, $4), \
        sleep_wake_started_at = NULL, sleep_checked_at = NULL, sleep_prewarm_at = NULL, ",
    clear_keep!(),
    ", \
        sleep_flaps = CASE WHEN NOT $3 THEN sleep_flaps \
                           WHEN sleep_flaps_since IS NULL \
                             OR sleep_flaps_since <= $4 - interval '24 hours' THEN 1 \
                           ELSE sleep_flaps + 1 END, \
        sleep_flaps_since = CASE WHEN NOT $3 THEN sleep_flaps_since \
                                 WHEN sleep_flaps_since IS NULL \
                                   OR sleep_flaps_since <= $4 - interval '24 hours' THEN $4 \
                                 ELSE sleep_flaps_since END \
    WHERE id = $1 AND sleep_state = 'asleep' AND sleep_state_changed_at = $2 \
    RETURNING id"
);

/// $1 id, $2 now.
pub const TOUCH_AWAKE: &str = "\
    UPDATE deployments SET last_activity_at = $2 \
    WHERE id = $1 AND sleep_state = 'awake' \
    RETURNING id";

/// $1 id, $2 when an activity source last saw traffic. `GREATEST`: a lagging source or a
/// second instance never moves the stamp back; only `awake` rows, so a row inside the sleep
/// protocol is left to its compare-and-sets.
pub const RECORD_TRAFFIC: &str = "\
    UPDATE deployments SET last_activity_at = GREATEST(last_activity_at, $2) \
    WHERE id = $1 AND sleep_state = 'awake' \
    RETURNING id";

/// Served by `deployments_sleep_state_idx`.
pub const LIST_SLEEPING: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM deployments WHERE sleep_state <> 'awake' ORDER BY sleep_state_changed_at, id"
);

/// Served by `deployments_sleep_state_idx` (an index-only scan once the table is vacuumed).
pub const COUNT_ASLEEP: &str = "SELECT count(*) FROM deployments WHERE sleep_state = 'asleep'";

/// The replicas asleep rows restore on wake; `$1` stands in for a row without a count (the
/// wake uses `default_wake_replicas` then). An index-only scan of
/// `deployments_sleep_asleep_replicas_idx`, which holds the asleep rows' counts only.
pub const SUM_ASLEEP_REPLICAS: &str = "SELECT COALESCE(SUM(COALESCE(replicas_before_sleep, $1)), 0)::bigint \
     FROM deployments WHERE sleep_state = 'asleep'";

/// A status summary; scans the table, so it is for commands, not for the tick.
pub const STATE_COUNTS: &str = "SELECT sleep_state, count(*) FROM deployments GROUP BY sleep_state";

mod rhythm; // the adaptive policy's statements (`RhythmStore`)
pub use rhythm::*;

#[cfg(feature = "host-ops")]
pub(crate) mod host {
    //! Host-side fixture statements (`HostOps`): what the platform itself does to its rows.

    /// All columns, in `columns!()` order.
    pub(crate) const INSERT: &str = concat!(
        "INSERT INTO deployments (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    );
    pub(crate) const BUMP_ACTIVITY: &str =
        "UPDATE deployments SET last_activity_at = $2 WHERE id = $1 RETURNING id";
    pub(crate) const SET_ALWAYS_ON: &str =
        "UPDATE deployments SET always_on = $2 WHERE id = $1 RETURNING id";
    pub(crate) const SET_EXPIRES_AT: &str =
        "UPDATE deployments SET expires_at = $2 WHERE id = $1 RETURNING id";
    pub(crate) const SET_STATUS: &str =
        "UPDATE deployments SET status = $2 WHERE id = $1 RETURNING id";
    pub(crate) const SET_SLEEP_STATE: &str = "\
        UPDATE deployments \
        SET sleep_state = $2, sleep_state_changed_at = $3, replicas_before_sleep = $4 \
        WHERE id = $1 RETURNING id";
    pub(crate) const DELETE: &str = "DELETE FROM deployments WHERE id = $1 RETURNING id";
    pub(crate) const LIST: &str = concat!("SELECT ", columns!(), " FROM deployments ORDER BY id");
}
