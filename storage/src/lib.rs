//! SQLite storage of agent-cli-proxy (`control.md` §2–§4): schema and migrations, the writer
//! thread with group commit, read-only readers, boot recovery, queries and backup. No async
//! runtime: both shells link it unchanged.
#![forbid(unsafe_code)]
