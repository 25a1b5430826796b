-- Our columns of storage/src/schema.rs `exact_cost`: exact integer costs and the two usage
-- columns. A PostgreSQL database is always created by this product (or `db copy`), so there
-- are no REAL costs to derive the integers from.
ALTER TABLE request_logs ADD COLUMN IF NOT EXISTS cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE request_logs ADD COLUMN IF NOT EXISTS usage_incomplete BIGINT NOT NULL DEFAULT 0;
ALTER TABLE request_logs ADD COLUMN IF NOT EXISTS cost_nanousd BIGINT NOT NULL DEFAULT 0;
ALTER TABLE daily_usage ADD COLUMN IF NOT EXISTS cost_nanousd BIGINT NOT NULL DEFAULT 0;
ALTER TABLE daily_account_usage ADD COLUMN IF NOT EXISTS cost_nanousd BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cost_audit ADD COLUMN IF NOT EXISTS cost_nanousd BIGINT;
