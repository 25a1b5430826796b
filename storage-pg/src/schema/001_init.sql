-- The consolidated schema of storage/src/schema/001_init.sql in PostgreSQL types
-- (docs/replicas.md §2). Every TEXT column is COLLATE "C" so that comparisons and ORDER BY
-- are byte-wise, as in SQLite: the same query gives the same order on both backends whatever
-- the database's locale. Integers are BIGINT (rusqlite and the query types read i64).
-- Timestamps stay ISO-8601 TEXT; column defaults mimic SQLite's CURRENT_TIMESTAMP text.
-- The SQLite schema declares two REFERENCES but the product runs SQLite with
-- foreign_keys = OFF; they are left out here so both backends accept the same rows (and
-- `db copy` every database the product can open).
CREATE TABLE IF NOT EXISTS api_keys (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  key_hash TEXT COLLATE "C" NOT NULL UNIQUE,
  key_prefix TEXT COLLATE "C" NOT NULL,
  name TEXT COLLATE "C" NOT NULL,
  created_at TEXT COLLATE "C" NOT NULL
    DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
  revoked_at TEXT COLLATE "C",
  last_used_at TEXT COLLATE "C",
  allowed_accounts TEXT COLLATE "C",
  allowed_providers TEXT COLLATE "C"
);

CREATE TABLE IF NOT EXISTS request_logs (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  request_id TEXT COLLATE "C",
  provider TEXT COLLATE "C" NOT NULL,
  model TEXT COLLATE "C" NOT NULL,
  actual_model TEXT COLLATE "C",
  actual_provider TEXT COLLATE "C",
  proxy_api_key_id BIGINT,
  tool TEXT COLLATE "C" DEFAULT 'unknown',
  client_id TEXT COLLATE "C" DEFAULT 'unknown',
  agent TEXT COLLATE "C",
  source TEXT COLLATE "C" DEFAULT 'proxy',
  msg_id TEXT COLLATE "C",
  path TEXT COLLATE "C" NOT NULL,
  streamed BIGINT NOT NULL DEFAULT 0,
  status BIGINT,
  prompt_tokens BIGINT DEFAULT 0,
  completion_tokens BIGINT DEFAULT 0,
  cache_creation_tokens BIGINT DEFAULT 0,
  cache_read_tokens BIGINT DEFAULT 0,
  reasoning_tokens BIGINT DEFAULT 0,
  total_tokens BIGINT DEFAULT 0,
  cost_usd DOUBLE PRECISION DEFAULT 0,
  cost_status TEXT COLLATE "C" NOT NULL DEFAULT 'unresolved'
    CHECK (cost_status IN ('unresolved','ok','pending','unsupported')),
  lifecycle_status TEXT COLLATE "C" NOT NULL DEFAULT 'pending'
    CHECK (lifecycle_status IN ('pending','completed','error','aborted')),
  incomplete BIGINT NOT NULL DEFAULT 0,
  error_code TEXT COLLATE "C",
  error_message TEXT COLLATE "C",
  latency_ms BIGINT,
  started_at TEXT COLLATE "C" NOT NULL,
  finished_at TEXT COLLATE "C",
  finalized_at TEXT COLLATE "C",
  meta_json TEXT COLLATE "C",
  user_agent TEXT COLLATE "C",
  source_ip TEXT COLLATE "C",
  cliproxy_account TEXT COLLATE "C",
  cliproxy_auth_index TEXT COLLATE "C",
  cliproxy_source TEXT COLLATE "C",
  correlated_at TEXT COLLATE "C",
  -- docs/replicas.md §2: the replica that served the call.
  replica TEXT COLLATE "C"
);

CREATE INDEX IF NOT EXISTS idx_request_logs_started_at ON request_logs(started_at);
CREATE INDEX IF NOT EXISTS idx_request_logs_tool ON request_logs(tool);
CREATE INDEX IF NOT EXISTS idx_request_logs_client_id ON request_logs(client_id);
CREATE INDEX IF NOT EXISTS idx_request_logs_cliproxy_account ON request_logs(cliproxy_account);
CREATE INDEX IF NOT EXISTS idx_request_logs_cliproxy_auth_index ON request_logs(cliproxy_auth_index);
-- Unique here (docs/replicas.md §2): ingestion keys rows by it. NULLs stay allowed (rows
-- copied from old databases may have none).
CREATE UNIQUE INDEX IF NOT EXISTS idx_request_logs_request_id ON request_logs(request_id);
CREATE INDEX IF NOT EXISTS idx_request_logs_msg_id ON request_logs(msg_id) WHERE msg_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_request_logs_lifecycle_status ON request_logs(lifecycle_status);
CREATE INDEX IF NOT EXISTS idx_request_logs_cost_status ON request_logs(cost_status);
CREATE INDEX IF NOT EXISTS idx_request_logs_replica_pending ON request_logs(replica)
  WHERE lifecycle_status = 'pending';

CREATE TABLE IF NOT EXISTS daily_usage (
  day TEXT COLLATE "C" NOT NULL,
  provider TEXT COLLATE "C" NOT NULL,
  model TEXT COLLATE "C" NOT NULL,
  request_count BIGINT DEFAULT 0,
  prompt_tokens BIGINT DEFAULT 0,
  completion_tokens BIGINT DEFAULT 0,
  cache_creation_tokens BIGINT DEFAULT 0,
  cache_read_tokens BIGINT DEFAULT 0,
  total_tokens BIGINT DEFAULT 0,
  cost_usd DOUBLE PRECISION DEFAULT 0,
  PRIMARY KEY (day, provider, model)
);
CREATE INDEX IF NOT EXISTS idx_daily_usage_day ON daily_usage(day);

CREATE TABLE IF NOT EXISTS daily_account_usage (
  day TEXT COLLATE "C" NOT NULL,
  provider TEXT COLLATE "C" NOT NULL,
  model TEXT COLLATE "C" NOT NULL,
  cliproxy_account TEXT COLLATE "C" NOT NULL,
  cliproxy_auth_index TEXT COLLATE "C",
  request_count BIGINT DEFAULT 0,
  prompt_tokens BIGINT DEFAULT 0,
  completion_tokens BIGINT DEFAULT 0,
  cache_creation_tokens BIGINT DEFAULT 0,
  cache_read_tokens BIGINT DEFAULT 0,
  reasoning_tokens BIGINT DEFAULT 0,
  total_tokens BIGINT DEFAULT 0,
  cost_usd DOUBLE PRECISION DEFAULT 0,
  PRIMARY KEY (day, provider, model, cliproxy_account)
);
CREATE INDEX IF NOT EXISTS idx_daily_account_usage_day ON daily_account_usage(day);
CREATE INDEX IF NOT EXISTS idx_daily_account_usage_account ON daily_account_usage(cliproxy_account);

CREATE TABLE IF NOT EXISTS cost_audit (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  request_log_id BIGINT,
  model TEXT COLLATE "C",
  provider TEXT COLLATE "C",
  source TEXT COLLATE "C",
  base_cost_usd DOUBLE PRECISION,
  calc_at TEXT COLLATE "C" NOT NULL
    DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
);
CREATE INDEX IF NOT EXISTS idx_cost_audit_request_log_id ON cost_audit(request_log_id);

CREATE TABLE IF NOT EXISTS quota_snapshots (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  timestamp TEXT COLLATE "C" NOT NULL,
  provider TEXT COLLATE "C" NOT NULL,
  account TEXT COLLATE "C" NOT NULL,
  quota_type TEXT COLLATE "C" NOT NULL,
  model TEXT COLLATE "C",
  used_pct DOUBLE PRECISION,
  remaining DOUBLE PRECISION,
  remaining_raw TEXT COLLATE "C",
  resets_at TEXT COLLATE "C",
  raw_json TEXT COLLATE "C"
);
CREATE INDEX IF NOT EXISTS idx_quota_snapshots_provider ON quota_snapshots(provider, account, timestamp);
