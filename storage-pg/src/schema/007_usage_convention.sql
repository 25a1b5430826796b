-- `meta_json.usage_convention` of a row, or NULL when the text is not JSON or has no such
-- member: SQLite's CASE WHEN json_valid(x) THEN json_extract(x, '$.usage_convention') END,
-- which the dashboard summary uses to count the input tokens a call processed. PostgreSQL
-- before 16 has no cast that answers NULL instead of failing, hence the exception block.
CREATE OR REPLACE FUNCTION acp_usage_convention(meta TEXT) RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE STRICT
AS $$
BEGIN
  RETURN meta::jsonb ->> 'usage_convention';
EXCEPTION WHEN others THEN
  RETURN NULL;
END;
$$;
