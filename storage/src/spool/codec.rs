//! The spool's record encoding (`docs/spool.md` §3).
//!
//! Frame: `u32 length (LE) | u32 CRC-32C of kind+payload (LE) | u8 kind | payload`, where
//! `length` counts the payload bytes. The payload starts with its format version and the
//! record's sequence number, then the kind's fields in a fixed order: integers little-endian,
//! strings as `u32 length + UTF-8`, options behind a `0/1` tag. A compact binary encoding
//! rather than JSON because the data path pays for every byte of it, twice per call.

use agent_cli_proxy_core::usage::TokenColumns;

use crate::op::{AuditInfo, CostStatus, FinalizeRow, PreLogRow, Terminal};

/// Bytes before the kind: length and CRC.
pub const FRAME_HEAD: usize = 8;
/// Largest payload accepted, on write and on read (`docs/spool.md` §3).
pub const RECORD_CAP: usize = 1 << 20;
/// Version of the payload encoding.
const PAYLOAD_VERSION: u8 = 1;
/// Offset of the sequence number inside the frame (head, kind, version).
pub const SEQ_OFFSET: usize = FRAME_HEAD + 2;

/// A record of the data path.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// The pre-log of an LLM call (`docs/datapath.md` §14.1).
    Begin(Box<PreLogRow>),
    /// A usage checkpoint of a pending row (§14.2).
    Usage {
        /// The call's `request_id`.
        request_id: String,
        /// Token columns so far.
        tokens: TokenColumns,
    },
    /// The finalize (§14.3); `row.id` is not used: ingestion resolves `request_id`.
    End {
        /// The call's `request_id`.
        request_id: String,
        /// Every finalize column.
        row: Box<FinalizeRow>,
    },
    /// The fallback after a failed finalize (§14.3).
    Fallback {
        /// The call's `request_id`.
        request_id: String,
        /// The finalize error.
        message: String,
        /// `finalized_at`, ISO.
        now: String,
    },
}

/// Record kinds as written in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// [`Record::Begin`].
    Begin = 1,
    /// [`Record::Usage`].
    Usage = 2,
    /// [`Record::End`].
    End = 3,
    /// [`Record::Fallback`].
    Fallback = 4,
}

impl Kind {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Begin => "begin",
            Kind::Usage => "usage",
            Kind::End => "end",
            Kind::Fallback => "fallback",
        }
    }

    fn of(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Begin,
            2 => Kind::Usage,
            3 => Kind::End,
            4 => Kind::Fallback,
            _ => return None,
        })
    }
}

impl Record {
    /// The record's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Record::Begin(_) => Kind::Begin,
            Record::Usage { .. } => Kind::Usage,
            Record::End { .. } => Kind::End,
            Record::Fallback { .. } => Kind::Fallback,
        }
    }

    /// The call the record belongs to.
    pub fn request_id(&self) -> &str {
        match self {
            Record::Begin(row) => &row.request_id,
            Record::Usage { request_id, .. }
            | Record::End { request_id, .. }
            | Record::Fallback { request_id, .. } => request_id,
        }
    }
}

/// Encodes `rec` as a frame with sequence number 0 and an unset CRC into `out` (cleared
/// first); [`seal`] writes both once the number is known.
pub fn encode(rec: &Record, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; FRAME_HEAD]);
    out.push(rec.kind() as u8);
    out.push(PAYLOAD_VERSION);
    out.extend_from_slice(&0u64.to_le_bytes());
    let mut w = Writer(out);
    match rec {
        Record::Begin(r) => {
            w.str(&r.request_id);
            w.str(&r.provider);
            w.str(&r.model);
            w.str(&r.tool);
            w.str(&r.client_id);
            w.opt_str(r.agent.as_deref());
            w.opt_str(r.user_agent.as_deref());
            w.opt_str(r.source_ip.as_deref());
            w.opt_str(r.msg_id.as_deref());
            w.str(&r.path);
            w.bool(r.streamed);
            w.opt_i64(r.proxy_api_key_id);
            w.str(&r.started_at);
            w.str(&r.meta_json);
        }
        Record::Usage { request_id, tokens } => {
            w.str(request_id);
            w.tokens(tokens);
        }
        Record::End { request_id, row } => {
            w.str(request_id);
            w.u8(match row.lifecycle_status {
                Terminal::Completed => 0,
                Terminal::Error => 1,
                Terminal::Aborted => 2,
            });
            w.opt_str(row.actual_model.as_deref());
            w.opt_str(row.actual_provider.as_deref());
            w.opt_i64(row.proxy_api_key_id);
            w.bool(row.streamed);
            w.opt_i64(row.status);
            w.tokens(&row.tokens);
            w.bool(row.usage_incomplete);
            w.u64(row.cost_nanousd);
            w.str(row.cost_status.as_str());
            w.opt_str(row.error_code.as_deref());
            w.opt_str(row.error_message.as_deref());
            w.opt_i64(row.latency_ms);
            w.str(&row.now);
            w.str(&row.meta_json);
            w.opt_str(row.audit.model.as_deref());
            w.opt_str(row.audit.provider.as_deref());
            w.str(&row.audit.source);
        }
        Record::Fallback {
            request_id,
            message,
            now,
        } => {
            w.str(request_id);
            w.str(message);
            w.str(now);
        }
    }
}

/// Length of the payload of an encoded frame.
pub fn payload_len(frame: &[u8]) -> usize {
    frame.len() - FRAME_HEAD - 1
}

/// Writes the sequence number, the length and the CRC into a frame made by [`encode`].
pub fn seal(frame: &mut [u8], seq: u64) {
    frame[SEQ_OFFSET..SEQ_OFFSET + 8].copy_from_slice(&seq.to_le_bytes());
    let len = payload_len(frame) as u32;
    let crc = crc32c::crc32c(&frame[FRAME_HEAD..]);
    frame[0..4].copy_from_slice(&len.to_le_bytes());
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// Fewer bytes than the frame announces (a torn write, or more to come).
    Short,
    /// The length is zero or above [`RECORD_CAP`].
    Length(u32),
    /// The CRC does not match.
    Crc,
    /// The frame is intact but its payload does not decode.
    Payload(&'static str),
}

/// One frame read from the start of `buf`: the record, its sequence number and the frame's
/// length. Checks the length against the cap before anything is allocated for it.
pub fn decode(buf: &[u8]) -> Result<(u64, Record, usize), Invalid> {
    if buf.len() < FRAME_HEAD + 1 {
        return Err(Invalid::Short);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    // A payload holds at least the version and the sequence number.
    if (len as usize) < 9 || len as usize > RECORD_CAP {
        return Err(Invalid::Length(len));
    }
    let total = FRAME_HEAD + 1 + len as usize;
    if buf.len() < total {
        return Err(Invalid::Short);
    }
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if crc32c::crc32c(&buf[FRAME_HEAD..total]) != crc {
        return Err(Invalid::Crc);
    }
    let kind = Kind::of(buf[FRAME_HEAD]).ok_or(Invalid::Payload("unknown kind"))?;
    let mut r = Reader(&buf[FRAME_HEAD + 1..total]);
    if r.u8()? != PAYLOAD_VERSION {
        return Err(Invalid::Payload("unknown payload version"));
    }
    let seq = r.u64()?;
    let rec = match kind {
        Kind::Begin => Record::Begin(Box::new(PreLogRow {
            request_id: r.string()?,
            provider: r.string()?,
            model: r.string()?,
            tool: r.string()?,
            client_id: r.string()?,
            agent: r.opt_string()?,
            user_agent: r.opt_string()?,
            source_ip: r.opt_string()?,
            msg_id: r.opt_string()?,
            path: r.string()?,
            streamed: r.bool()?,
            proxy_api_key_id: r.opt_i64()?,
            started_at: r.string()?,
            meta_json: r.string()?,
        })),
        Kind::Usage => Record::Usage {
            request_id: r.string()?,
            tokens: r.tokens()?,
        },
        Kind::End => {
            let request_id = r.string()?;
            let lifecycle_status = match r.u8()? {
                0 => Terminal::Completed,
                1 => Terminal::Error,
                2 => Terminal::Aborted,
                _ => return Err(Invalid::Payload("unknown lifecycle status")),
            };
            let row = FinalizeRow {
                id: 0,
                lifecycle_status,
                actual_model: r.opt_string()?,
                actual_provider: r.opt_string()?,
                proxy_api_key_id: r.opt_i64()?,
                streamed: r.bool()?,
                status: r.opt_i64()?,
                tokens: r.tokens()?,
                usage_incomplete: r.bool()?,
                cost_nanousd: r.u64()?,
                cost_status: CostStatus::parse(&r.string()?)
                    .ok_or(Invalid::Payload("unknown cost status"))?,
                error_code: r.opt_string()?,
                error_message: r.opt_string()?,
                latency_ms: r.opt_i64()?,
                now: r.string()?,
                meta_json: r.string()?,
                audit: AuditInfo {
                    model: r.opt_string()?,
                    provider: r.opt_string()?,
                    source: r.string()?,
                },
            };
            Record::End {
                request_id,
                row: Box::new(row),
            }
        }
        Kind::Fallback => Record::Fallback {
            request_id: r.string()?,
            message: r.string()?,
            now: r.string()?,
        },
    };
    if !r.0.is_empty() {
        return Err(Invalid::Payload("trailing bytes"));
    }
    Ok((seq, rec, total))
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn bool(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
            None => self.0.push(0),
        }
    }
    fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            Some(v) => {
                self.0.push(1);
                self.0.extend_from_slice(&v.to_le_bytes());
            }
            None => self.0.push(0),
        }
    }
    fn tokens(&mut self, t: &TokenColumns) {
        for v in [
            t.prompt_tokens,
            t.completion_tokens,
            t.cache_read_tokens,
            t.cache_creation_tokens,
            t.cache_write_1h_tokens,
            t.reasoning_tokens,
            t.total_tokens,
        ] {
            self.u64(v);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Invalid> {
        if self.0.len() < n {
            return Err(Invalid::Payload("truncated field"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Invalid> {
        Ok(self.take(1)?[0])
    }
    fn bool(&mut self) -> Result<bool, Invalid> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Invalid::Payload("bad boolean")),
        }
    }
    fn u64(&mut self) -> Result<u64, Invalid> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn string(&mut self) -> Result<String, Invalid> {
        let b = self.take(4)?;
        let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Invalid::Payload("invalid UTF-8"))
    }
    fn opt_string(&mut self) -> Result<Option<String>, Invalid> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            _ => Err(Invalid::Payload("bad option tag")),
        }
    }
    fn opt_i64(&mut self) -> Result<Option<i64>, Invalid> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()? as i64)),
            _ => Err(Invalid::Payload("bad option tag")),
        }
    }
    fn tokens(&mut self) -> Result<TokenColumns, Invalid> {
        Ok(TokenColumns {
            prompt_tokens: self.u64()?,
            completion_tokens: self.u64()?,
            cache_read_tokens: self.u64()?,
            cache_creation_tokens: self.u64()?,
            cache_write_1h_tokens: self.u64()?,
            reasoning_tokens: self.u64()?,
            total_tokens: self.u64()?,
        })
    }
}
