-- The spool's applied position (docs/spool.md §4): the last sequence number whose record is
-- in the database, written in the same transaction as the rows it produced.
CREATE TABLE IF NOT EXISTS spool_position (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  applied_seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO spool_position (id, applied_seq) VALUES (1, 0);
