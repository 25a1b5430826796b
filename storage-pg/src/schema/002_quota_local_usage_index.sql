-- Local usage per account for quota reports (control.md §8.5).
CREATE INDEX IF NOT EXISTS idx_request_logs_provider_cliproxy_account_started_at
  ON request_logs(provider, cliproxy_account, started_at);
