-- The spool's applied position per replica (docs/replicas.md §2, docs/spool.md §4): the last
-- sequence number of that replica's spool whose record is in the database, written in the
-- same transaction as the rows. `segment` and `offset` are where that replica's reader
-- continues (informational; the sequence number is what decides).
CREATE TABLE IF NOT EXISTS spool_position (
  replica TEXT COLLATE "C" PRIMARY KEY,
  applied_seq BIGINT NOT NULL DEFAULT 0,
  segment BIGINT,
  "offset" BIGINT,
  updated_at TEXT COLLATE "C"
);
