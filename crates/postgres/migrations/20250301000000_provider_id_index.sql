-- The waker finds the app a request is for by its provider_id (`k8s:<namespace>/<name>`):
-- one index lookup per request instead of a scan of the table.
CREATE INDEX IF NOT EXISTS deployments_provider_id_idx ON deployments (provider_id);
