//! The spool (`docs/spool.md`): the durability point of the data path. Records of LLM calls
//! are appended to segment files with one `write(2)` each; the writer thread ingests them
//! into the database in batches ([`crate::writer`]).
//!
//! * Numbering and writing happen under one mutex, so the file order is the sequence order;
//!   encoding happens before the lock is taken.
//! * The database remembers the last applied sequence number (`spool_position`), committed in
//!   the same transaction as the rows; a segment is deleted once every record in it is
//!   applied. So a record reaches the database exactly once across any crash.
//! * At boot a torn tail of the last segment is cut off (a crash in the middle of a write);
//!   any other damage stops the start with the segment and offset, never a guess.
//! * `dir: None` keeps the segments in memory (`DB_PATH=:memory:`): nothing survives the
//!   process, as with the database itself.
//!
//! No write-ahead-log crate is used: the ones on crates.io either fsync every append (the
//! price this design exists to avoid) or number records themselves in a way that cannot
//! carry the database's applied position; the format here is ~100 lines over `std::fs`.

pub mod bell;
pub mod codec;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use bell::Doorbell;
pub use codec::{Kind, Record};

use codec::{Invalid, RECORD_CAP};

/// Magic bytes at the start of a segment.
const MAGIC: &[u8; 8] = b"ACPSPOOL";
/// Segment format version.
const FORMAT: u32 = 1;
/// Segment header: magic, format, first sequence number.
pub const HEADER_LEN: u64 = 20;

/// When appends reach the disk (`SPOOL_FSYNC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Never: survives a process kill, not an OS crash.
    #[default]
    Off,
    /// `fdatasync` before the append returns, shared by the appends that wait for the same
    /// one (group commit: concurrent calls pay for one sync between them).
    Batch,
    /// `fdatasync` after every record.
    Always,
}

/// Spool settings (`docs/spool.md` §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Segment directory; `None` keeps the spool in memory.
    pub dir: Option<PathBuf>,
    /// `SPOOL_FSYNC`.
    pub fsync: Fsync,
    /// `SPOOL_SEGMENT_BYTES`.
    pub segment_bytes: u64,
    /// `SPOOL_MAX_BYTES`.
    pub max_bytes: u64,
}

impl SpoolConfig {
    /// An in-memory spool with the default sizes.
    pub fn memory() -> SpoolConfig {
        SpoolConfig {
            dir: None,
            fsync: Fsync::Off,
            segment_bytes: 64 << 20,
            max_bytes: 1 << 30,
        }
    }

    /// A spool in `dir` with the default sizes.
    pub fn in_dir(dir: impl Into<PathBuf>) -> SpoolConfig {
        SpoolConfig {
            dir: Some(dir.into()),
            ..SpoolConfig::memory()
        }
    }
}

/// Why the spool refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpoolError {
    /// The record has no `request_id`.
    #[error("spool record without request_id")]
    NoRequestId,
    /// The record is larger than the cap.
    #[error("spool record of {0} bytes exceeds the 1 MiB cap")]
    TooLarge(usize),
    /// The spool holds `SPOOL_MAX_BYTES` already.
    #[error("spool is full ({bytes} bytes)")]
    Full {
        /// Bytes held.
        bytes: u64,
    },
    /// A file operation failed.
    #[error("spool io error: {0}")]
    Io(String),
    /// Damage other than a torn tail (`docs/spool.md` §4).
    #[error("spool segment {segment} is corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// Segment file name.
        segment: String,
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl From<std::io::Error> for SpoolError {
    fn from(e: std::io::Error) -> Self {
        SpoolError::Io(e.to_string())
    }
}

/// A torn tail cut off at boot (`spool.torn_tail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Segment file name.
    pub segment: String,
    /// Offset of the cut.
    pub offset: u64,
    /// Bytes removed.
    pub bytes: u64,
}

/// Where ingestion continues: the next record to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// First sequence number of the segment (its name).
    pub segment: u64,
    /// Byte offset in the segment.
    pub offset: u64,
    /// Sequence number expected there.
    pub seq: u64,
}

/// Counters for `/metrics`, `/ready` and `db spool status`.
#[derive(Debug, Default)]
pub struct SpoolStats {
    records: [AtomicU64; 4],
    bytes: AtomicU64,
    next_seq: AtomicU64,
    applied_seq: AtomicU64,
    refused: AtomicBool,
}

impl SpoolStats {
    /// `agent_cli_proxy_spool_records_total{kind}`.
    pub fn records(&self, kind: Kind) -> u64 {
        self.records[kind as usize - 1].load(Ordering::Relaxed)
    }
    /// `agent_cli_proxy_spool_bytes`: bytes held in segments.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    /// Records written and not yet applied.
    pub fn unapplied(&self) -> u64 {
        let next = self.next_seq.load(Ordering::SeqCst);
        let applied = self.applied_seq.load(Ordering::Acquire);
        next.saturating_sub(applied + 1)
    }
    /// The last sequence number written (0 when none).
    pub fn last_written(&self) -> u64 {
        self.next_seq.load(Ordering::Acquire).saturating_sub(1)
    }
    /// The last sequence number applied to the database.
    pub fn applied(&self) -> u64 {
        self.applied_seq.load(Ordering::Acquire)
    }
    /// The last `Begin` was refused (disk full, over `SPOOL_MAX_BYTES`, I/O error).
    pub fn refusing(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }
}

enum Backing {
    File(File),
    Memory,
}

struct Segment {
    first_seq: u64,
    len: u64,
    /// Memory spools keep the bytes here; file spools leave it empty.
    mem: Vec<u8>,
}

struct State {
    next_seq: u64,
    active: Backing,
    /// Every segment held, oldest first; the last is the one appended to.
    segments: VecDeque<Segment>,
    /// A second handle on the active segment, for syncs outside the append lock.
    sync_handle: Option<Arc<File>>,
}

/// The spool, shared by every exchange (`Arc<Spool>`).
pub struct Spool {
    config: SpoolConfig,
    state: Mutex<State>,
    stats: Arc<SpoolStats>,
    bell: Arc<Doorbell>,
    /// Set by the first append after the ingester last looked; only that append rings.
    armed: AtomicBool,
    /// `SPOOL_FSYNC=batch`: the last sequence number known to be on disk.
    synced: Mutex<u64>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.config.dir)
            .field("bytes", &self.stats.bytes())
            .finish_non_exhaustive()
    }
}

/// What [`Spool::open`] found.
#[derive(Debug)]
pub struct Opened {
    /// The spool.
    pub spool: Arc<Spool>,
    /// Where ingestion starts.
    pub cursor: Cursor,
    /// A torn tail that was cut off.
    pub torn: Option<TornTail>,
}

impl Spool {
    /// Opens (or creates) the spool; `applied_seq` is the database's applied position.
    pub fn open(
        config: SpoolConfig,
        applied_seq: u64,
        bell: Arc<Doorbell>,
    ) -> Result<Opened, SpoolError> {
        let stats = Arc::new(SpoolStats::default());
        stats.applied_seq.store(applied_seq, Ordering::Release);
        let Some(dir) = config.dir.clone() else {
            let first = applied_seq + 1;
            let state = State {
                next_seq: first,
                active: Backing::Memory,
                segments: VecDeque::from([Segment {
                    first_seq: first,
                    len: HEADER_LEN,
                    mem: header(first).to_vec(),
                }]),
                sync_handle: None,
            };
            stats.next_seq.store(first, Ordering::Release);
            stats.bytes.store(HEADER_LEN, Ordering::Relaxed);
            let spool = Arc::new(Spool {
                config,
                state: Mutex::new(state),
                stats,
                bell,
                armed: AtomicBool::new(false),
                synced: Mutex::new(0),
            });
            let cursor = Cursor {
                segment: first,
                offset: HEADER_LEN,
                seq: first,
            };
            return Ok(Opened {
                spool,
                cursor,
                torn: None,
            });
        };
        std::fs::create_dir_all(&dir)?;
        let scan = scan_dir(&dir, applied_seq)?;
        let mut segments: VecDeque<Segment> = VecDeque::new();
        let mut bytes = 0;
        for (first_seq, len) in &scan.segments {
            segments.push_back(Segment {
                first_seq: *first_seq,
                len: *len,
                mem: Vec::new(),
            });
            bytes += len;
        }
        let next_seq = scan
            .last_seq
            .map_or(applied_seq + 1, |s| s + 1)
            .max(applied_seq + 1);
        // A new segment when there is none, or when the numbering would not follow on in
        // the last one (the database is ahead of what the directory holds).
        let continues = scan.last_seq.is_some_and(|s| s + 1 == next_seq)
            || segments
                .back()
                .is_some_and(|s| s.len == HEADER_LEN && s.first_seq == next_seq);
        if !continues {
            create_segment(&dir, next_seq, config.fsync != Fsync::Off)?;
            segments.push_back(Segment {
                first_seq: next_seq,
                len: HEADER_LEN,
                mem: Vec::new(),
            });
            bytes += HEADER_LEN;
        }
        let active_first = segments.back().map_or(next_seq, |s| s.first_seq);
        let file = open_append(&dir, active_first)?;
        let sync_handle = Some(Arc::new(file.try_clone()?));
        let cursor = scan.cursor.unwrap_or(Cursor {
            segment: active_first,
            offset: segments.back().map_or(HEADER_LEN, |s| s.len),
            seq: next_seq,
        });
        stats.next_seq.store(next_seq, Ordering::Release);
        stats.bytes.store(bytes, Ordering::Relaxed);
        let spool = Arc::new(Spool {
            config,
            state: Mutex::new(State {
                next_seq,
                active: Backing::File(file),
                segments,
                sync_handle,
            }),
            stats,
            bell,
            armed: AtomicBool::new(false),
            synced: Mutex::new(0),
        });
        // Segments fully applied before a crash between commit and delete.
        spool.release_through(applied_seq);
        Ok(Opened {
            spool,
            cursor,
            torn: scan.torn,
        })
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<SpoolStats> {
        &self.stats
    }

    /// The segment directory (`None` in memory).
    pub fn dir(&self) -> Option<&Path> {
        self.config.dir.as_deref()
    }

    /// Appends one record with one `write`; returns its sequence number once the kernel has
    /// it (and the disk, with `SPOOL_FSYNC=always`).
    pub fn append(&self, rec: &Record) -> Result<u64, SpoolError> {
        let result = self.append_inner(rec);
        if rec.kind() == Kind::Begin {
            self.stats.refused.store(result.is_err(), Ordering::Relaxed);
        }
        let seq = result?;
        if self.config.fsync == Fsync::Batch && self.config.dir.is_some() {
            self.sync_through(seq)?;
        }
        self.stats.records[rec.kind() as usize - 1].fetch_add(1, Ordering::Relaxed);
        // SeqCst with `disarm` and the ingester's look at `next_seq`: either the ingester sees
        // this record, or this append sees the bell disarmed and rings it.
        if !self.armed.swap(true, Ordering::SeqCst) {
            self.bell.ring();
        }
        Ok(seq)
    }

    fn append_inner(&self, rec: &Record) -> Result<u64, SpoolError> {
        if rec.request_id().is_empty() {
            return Err(SpoolError::NoRequestId);
        }
        let mut frame = Vec::with_capacity(512);
        codec::encode(rec, &mut frame);
        if codec::payload_len(&frame) > RECORD_CAP {
            return Err(SpoolError::TooLarge(frame.len()));
        }
        let mut st = self.lock();
        let held = self.stats.bytes.load(Ordering::Relaxed);
        if rec.kind() == Kind::Begin && held + frame.len() as u64 > self.config.max_bytes {
            return Err(SpoolError::Full { bytes: held });
        }
        if st.segments.back().map_or(0, |s| s.len) >= self.config.segment_bytes {
            self.rotate(&mut st)?;
        }
        let seq = st.next_seq;
        codec::seal(&mut frame, seq);
        let len = frame.len() as u64;
        let State {
            active, segments, ..
        } = &mut *st;
        let Some(seg) = segments.back_mut() else {
            return Err(SpoolError::Io("no active segment".into()));
        };
        match active {
            Backing::Memory => seg.mem.extend_from_slice(&frame),
            Backing::File(file) => {
                if let Err(e) = file.write_all(&frame) {
                    // Leave no half record behind for the ingester or the next boot.
                    let _ = file.set_len(seg.len);
                    return Err(e.into());
                }
                if self.config.fsync == Fsync::Always {
                    file.sync_data()?;
                }
            }
        }
        seg.len += len;
        st.next_seq += 1;
        self.stats.bytes.fetch_add(len, Ordering::Relaxed);
        self.stats.next_seq.store(st.next_seq, Ordering::SeqCst);
        Ok(seq)
    }

    /// Group commit for `SPOOL_FSYNC=batch`: one `fdatasync` covers every record whose write
    /// returned before it started; a caller whose record is already covered returns at once.
    fn sync_through(&self, seq: u64) -> Result<(), SpoolError> {
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        if *synced >= seq {
            return Ok(());
        }
        let (file, upto) = {
            let st = self.lock();
            (st.sync_handle.clone(), st.next_seq - 1)
        };
        if let Some(file) = file {
            file.sync_data()?;
        }
        *synced = upto;
        Ok(())
    }

    fn rotate(&self, st: &mut State) -> Result<(), SpoolError> {
        let first = st.next_seq;
        match &self.config.dir {
            Some(dir) => {
                if let (Backing::File(old), true) = (&st.active, self.config.fsync != Fsync::Off) {
                    // Records of the old segment are covered before the new one takes over.
                    old.sync_data()?;
                }
                create_segment(dir, first, self.config.fsync != Fsync::Off)?;
                let file = open_append(dir, first)?;
                st.sync_handle = Some(Arc::new(file.try_clone()?));
                st.active = Backing::File(file);
                st.segments.push_back(Segment {
                    first_seq: first,
                    len: HEADER_LEN,
                    mem: Vec::new(),
                });
            }
            None => st.segments.push_back(Segment {
                first_seq: first,
                len: HEADER_LEN,
                mem: header(first).to_vec(),
            }),
        }
        self.stats.bytes.fetch_add(HEADER_LEN, Ordering::Relaxed);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called by the ingester before it reads: the next append rings the bell again.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    /// Records the database's applied position and deletes the segments it has passed
    /// (call only after the transaction that moved it committed).
    pub fn release_through(&self, applied_seq: u64) {
        self.stats.applied_seq.store(applied_seq, Ordering::Release);
        let mut st = self.lock();
        while st.segments.len() > 1 && st.segments[1].first_seq <= applied_seq + 1 {
            let Some(seg) = st.segments.pop_front() else {
                break;
            };
            if let Some(dir) = &self.config.dir
                && let Err(e) = std::fs::remove_file(segment_path(dir, seg.first_seq))
                && e.kind() != std::io::ErrorKind::NotFound
            {
                // Boot deletes it instead; keep counting its bytes until then.
                st.segments.push_front(seg);
                break;
            }
            self.stats.bytes.fetch_sub(seg.len, Ordering::Relaxed);
        }
    }

    /// Reads up to `max` records from `cur`; returns them with the cursor after the last.
    /// Reads only what appends have completed, so it never sees half a record.
    pub fn read(
        &self,
        cur: Cursor,
        max: usize,
        out: &mut Vec<(u64, Record)>,
    ) -> Result<Cursor, SpoolError> {
        let mut cur = cur;
        while out.len() < max {
            let (len, next_first, chunk) = {
                let st = self.lock();
                let Some(idx) = st.segments.iter().position(|s| s.first_seq == cur.segment) else {
                    return Err(SpoolError::Io(format!(
                        "segment {} vanished under the ingester",
                        cur.segment
                    )));
                };
                let seg = &st.segments[idx];
                let next = st.segments.get(idx + 1).map(|s| s.first_seq);
                let chunk = match self.config.dir {
                    None => Some(seg.mem[cur.offset as usize..seg.len as usize].to_vec()),
                    Some(_) => None,
                };
                (seg.len, next, chunk)
            };
            if cur.offset >= len {
                match next_first {
                    Some(first) => {
                        cur = Cursor {
                            segment: first,
                            offset: HEADER_LEN,
                            seq: cur.seq,
                        };
                        continue;
                    }
                    None => break,
                }
            }
            // Bounded reads: a batch never needs more than a few MiB in memory.
            let want = (len - cur.offset).min(4 << 20);
            let bytes = match chunk {
                Some(mut b) => {
                    b.truncate(want as usize);
                    b
                }
                None => {
                    let dir = self.config.dir.as_deref().unwrap_or(Path::new("."));
                    read_range(&segment_path(dir, cur.segment), cur.offset, want)?
                }
            };
            let mut at = 0usize;
            while out.len() < max && at < bytes.len() {
                match codec::decode(&bytes[at..]) {
                    Ok((seq, rec, n)) => {
                        if seq != cur.seq {
                            return Err(corrupt(cur.segment, cur.offset, "sequence gap"));
                        }
                        out.push((seq, rec));
                        at += n;
                        cur.offset += n as u64;
                        cur.seq += 1;
                    }
                    // The record continues past this read's window.
                    Err(Invalid::Short) if at > 0 => break,
                    Err(e) => {
                        return Err(corrupt(cur.segment, cur.offset, &format!("{e:?}")));
                    }
                }
            }
        }
        Ok(cur)
    }
}

/// What `db spool status` shows: read-only, safe while the daemon runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inspect {
    /// Segment file names and sizes, oldest first.
    pub segments: Vec<(String, u64)>,
    /// The last well-formed record's sequence number.
    pub last_seq: Option<u64>,
}

/// Lists the segments in `dir` and reads the last one to its last well-formed record,
/// changing nothing.
pub fn inspect(dir: &Path) -> Result<Inspect, SpoolError> {
    let mut firsts = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Inspect::default()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            firsts.push((first, entry.metadata().map(|m| m.len()).unwrap_or(0)));
        }
    }
    firsts.sort_unstable();
    let mut out = Inspect {
        segments: firsts
            .iter()
            .map(|(first, len)| (segment_name(*first), *len))
            .collect(),
        last_seq: None,
    };
    if let Some((first, _)) = firsts.last() {
        let bytes = std::fs::read(segment_path(dir, *first))?;
        let mut off = HEADER_LEN as usize;
        while off < bytes.len() {
            match codec::decode(&bytes[off..]) {
                Ok((seq, _, n)) => {
                    out.last_seq = Some(seq);
                    off += n;
                }
                Err(_) => break,
            }
        }
        if out.last_seq.is_none() && *first > 0 {
            out.last_seq = Some(first - 1);
        }
    }
    Ok(out)
}

/// What a scan of the directory found.
struct Scan {
    /// Segments kept: first sequence number and length.
    segments: Vec<(u64, u64)>,
    last_seq: Option<u64>,
    /// The first record after `applied_seq`.
    cursor: Option<Cursor>,
    torn: Option<TornTail>,
}

fn scan_dir(dir: &Path, applied_seq: u64) -> Result<Scan, SpoolError> {
    let mut firsts = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".seg") else {
            continue;
        };
        if let Ok(first) = stem.parse::<u64>() {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    let mut scan = Scan {
        segments: Vec::new(),
        last_seq: None,
        cursor: None,
        torn: None,
    };
    let count = firsts.len();
    for (i, first) in firsts.into_iter().enumerate() {
        let last_segment = i + 1 == count;
        let path = segment_path(dir, first);
        let name = segment_name(first);
        let mut bytes = Vec::new();
        File::open(&path)?.read_to_end(&mut bytes)?;
        if bytes.len() < HEADER_LEN as usize {
            if last_segment {
                // Created but its header never fully written: nothing in it.
                std::fs::remove_file(&path)?;
                continue;
            }
            return Err(corrupt(first, 0, "short segment header"));
        }
        check_header(&bytes, first)?;
        let mut off = HEADER_LEN as usize;
        let mut expect = first;
        if let Some(prev) = scan.last_seq
            && prev + 1 != first
        {
            return Err(corrupt(
                first,
                0,
                "segment does not follow the previous one",
            ));
        }
        while off < bytes.len() {
            match codec::decode(&bytes[off..]) {
                Ok((seq, _, n)) if seq == expect => {
                    if seq > applied_seq && scan.cursor.is_none() {
                        scan.cursor = Some(Cursor {
                            segment: first,
                            offset: off as u64,
                            seq,
                        });
                    }
                    scan.last_seq = Some(seq);
                    expect += 1;
                    off += n;
                }
                other => {
                    let reason = match other {
                        Ok(_) => "sequence number does not follow".to_owned(),
                        Err(e) => format!("{e:?}"),
                    };
                    if !last_segment || valid_record_after(&bytes, off + 1, expect) {
                        return Err(corrupt(first, off as u64, &reason));
                    }
                    let cut = bytes.len() - off;
                    let file = OpenOptions::new().write(true).open(&path)?;
                    file.set_len(off as u64)?;
                    file.sync_all()?;
                    scan.torn = Some(TornTail {
                        segment: name.clone(),
                        offset: off as u64,
                        bytes: cut as u64,
                    });
                    bytes.truncate(off);
                    break;
                }
            }
        }
        scan.segments.push((first, bytes.len() as u64));
    }
    Ok(scan)
}

/// True when a well-formed record numbered `expect` or later starts anywhere from `from`:
/// then the damage before it is not a torn tail but corruption.
fn valid_record_after(bytes: &[u8], from: usize, expect: u64) -> bool {
    (from..bytes.len())
        .any(|at| matches!(codec::decode(&bytes[at..]), Ok((seq, _, _)) if seq >= expect))
}

fn check_header(bytes: &[u8], first: u64) -> Result<(), SpoolError> {
    if &bytes[0..8] != MAGIC {
        return Err(corrupt(first, 0, "not a spool segment (magic)"));
    }
    let format = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if format != FORMAT {
        return Err(corrupt(
            first,
            8,
            &format!("unknown segment format {format}"),
        ));
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&bytes[12..20]);
    if u64::from_le_bytes(s) != first {
        return Err(corrupt(
            first,
            12,
            "header sequence differs from the file name",
        ));
    }
    Ok(())
}

fn header(first: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT.to_le_bytes());
    h[12..20].copy_from_slice(&first.to_le_bytes());
    h
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// The file of the segment that starts at `first`.
pub fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(segment_name(first))
}

fn create_segment(dir: &Path, first: u64, sync: bool) -> Result<(), SpoolError> {
    let path = segment_path(dir, first);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(&header(first))?;
    if sync {
        f.sync_all()?;
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn open_append(dir: &Path, first: u64) -> Result<File, SpoolError> {
    Ok(OpenOptions::new()
        .append(true)
        .open(segment_path(dir, first))?)
}

fn read_range(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, SpoolError> {
    let file = File::open(path)?;
    let mut buf = vec![0u8; len as usize];
    let mut got = 0usize;
    while got < buf.len() {
        let n = file.read_at(&mut buf[got..], offset + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

fn corrupt(segment: u64, offset: u64, reason: &str) -> SpoolError {
    SpoolError::Corrupt {
        segment: segment_name(segment),
        offset,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests;
