//! Every statement the store runs (public so a host or the benchmark can `EXPLAIN` them). Each transition is ONE conditional `UPDATE ... RETURNING`:
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

/// $1 now, $2 idle_before, $3 limit. The predicate's first three terms are exactly the partial
/// index's `WHERE`, so the planner walks `deployments_sleep_candidates_idx` in order and stops
/// after `limit` rows.
pub const SELECT_CANDIDATES: &str = "\
    SELECT id, provider_id, last_activity_at FROM deployments \
    WHERE status = 'healthy' AND sleep_state = 'awake' AND NOT always_on \
      AND (expires_at IS NULL OR expires_at > $1) \
      AND last_activity_at <= $2 \
    ORDER BY last_activity_at, id \
    LIMIT $3";

/// CAS 1. $1 id, $2 seen activity, $3 idle_before, $4 replicas (NULL when at 0), $5 now.
/// Re-checks the whole candidate predicate, plus that activity is exactly what was selected.
pub const CLAIM_SLEEP: &str = "\
    UPDATE deployments \
    SET sleep_state = 'sleeping', sleep_state_changed_at = $5, replicas_before_sleep = $4 \
    WHERE id = $1 \
      AND status = 'healthy' AND sleep_state = 'awake' AND NOT always_on \
      AND (expires_at IS NULL OR expires_at > $5) \
      AND last_activity_at = $2 AND last_activity_at <= $3 \
    RETURNING id";

/// $1 id, $2 seen activity, $3 now. Keeps `replicas_before_sleep` for the wake.
pub const CONFIRM_SLEEP: &str = "\
    UPDATE deployments SET sleep_state = 'asleep', sleep_state_changed_at = $3 \
    WHERE id = $1 AND sleep_state = 'sleeping' AND last_activity_at = $2 \
    RETURNING id";

/// $1 id.
pub const SLEEP_STATE: &str = "SELECT sleep_state FROM deployments WHERE id = $1";

/// $1 id, $2 now.
pub const REVERT_SLEEP: &str = "\
    UPDATE deployments \
    SET sleep_state = 'awake', sleep_state_changed_at = $2, replicas_before_sleep = NULL \
    WHERE id = $1 AND sleep_state = 'sleeping' \
    RETURNING id";

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

/// $1 older_than. Served by `deployments_sleep_state_idx`.
pub const STALE_INTENTS: &str = "\
    SELECT id, provider_id, last_activity_at, sleep_state_changed_at, replicas_before_sleep \
    FROM deployments \
    WHERE sleep_state = 'sleeping' AND sleep_state_changed_at <= $1 \
    ORDER BY sleep_state_changed_at, id";

/// $1 id.
pub const GET: &str = concat!("SELECT ", columns!(), " FROM deployments WHERE id = $1");

/// The waker's lookup, by `deployments_provider_id_idx`; ties go to the latest activity.
pub const FIND_BY_PROVIDER_ID: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM deployments WHERE provider_id = $1 ORDER BY last_activity_at DESC, id DESC LIMIT 1"
);

/// $1 id, $2 from state, $3 now. The state change time moves only when the state does.
pub const FINISH_WAKE: &str = "\
    UPDATE deployments \
    SET sleep_state = 'awake', last_activity_at = $3, replicas_before_sleep = NULL, \
        sleep_state_changed_at = CASE WHEN sleep_state = 'awake' \
                                      THEN sleep_state_changed_at ELSE $3 END \
    WHERE id = $1 AND sleep_state = $2 \
    RETURNING id";

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

/// A status summary; scans the table, so it is for commands, not for the tick.
pub const STATE_COUNTS: &str = "SELECT sleep_state, count(*) FROM deployments GROUP BY sleep_state";

#[cfg(feature = "testkit")]
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
