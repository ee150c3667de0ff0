-- The host platform's own schema, migrated by the host's own sqlx migrator (its table is
-- sqlx's default `_sqlx_migrations`; idle-scaler records its migrations elsewhere).

-- The platform's apps, in its own shape: idle-scaler's columns are added by
-- idle_scaler_postgres::HOST_INTEGRATION_SQL.
CREATE TABLE deployments (
    id               uuid        PRIMARY KEY,
    name             text        NOT NULL,
    provider_id      text        NOT NULL,
    status           text        NOT NULL,
    last_activity_at timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- The host's work queue; a `wake` job asks the worker to wake an app.
CREATE TABLE host_jobs (
    id            bigserial   PRIMARY KEY,
    kind          text        NOT NULL,
    deployment_id uuid        NOT NULL,
    done_at       timestamptz NULL
);
