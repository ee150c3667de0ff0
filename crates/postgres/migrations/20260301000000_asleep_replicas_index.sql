-- The replicas-asleep gauge sums the restore counts of `asleep` rows on every tick. Without
-- the count in an index that sum reads one heap page per asleep row (55 ms at 10,000 asleep
-- rows in the store bench); with it, an index-only scan of the asleep rows alone.
CREATE INDEX IF NOT EXISTS deployments_sleep_asleep_replicas_idx
    ON deployments (replicas_before_sleep)
    WHERE sleep_state = 'asleep';
