-- Replicas that share this database (docs/replicas.md §2, §3): `seen_at` is refreshed every
-- 30 s by the replica itself.
CREATE TABLE IF NOT EXISTS replicas (
  replica TEXT COLLATE "C" PRIMARY KEY,
  host TEXT COLLATE "C",
  version TEXT COLLATE "C",
  started_at TEXT COLLATE "C",
  seen_at TEXT COLLATE "C"
);
