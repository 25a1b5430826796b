-- Seconds since the epoch of an ISO-8601 text, or NULL when it cannot be read: SQLite's
-- CAST(strftime('%s', x) AS INTEGER), which the trend and quota-history buckets use. Text
-- without a zone is UTC there, hence the function's own time zone; a row whose timestamp
-- does not parse is left out of the buckets on both backends instead of failing the query.
CREATE OR REPLACE FUNCTION acp_epoch(t TEXT) RETURNS BIGINT
LANGUAGE plpgsql IMMUTABLE STRICT
SET timezone = 'UTC'
AS $$
BEGIN
  RETURN floor(extract(epoch FROM t::timestamptz))::bigint;
EXCEPTION WHEN others THEN
  RETURN NULL;
END;
$$;
