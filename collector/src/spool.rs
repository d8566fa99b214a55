//! The durable spool: append-only segment files of checksummed records, each
//! one encoded [`crate::batch::Batch`], replayed in order.
//!
//! Record layout: `b"LSP1"`, payload length (u32 LE), CRC-32 of the payload
//! (u32 LE), payload. Segment files are `<seq:020>.seg`; the replay position
//! is kept in `cursor` (rewritten atomically; replaying a record twice is
//! harmless because the batch keeps its insert deduplication token).
//!
//! Invariants: [`Spool::append`] returns only after the record is fsynced
//! (this is what lets the collector acknowledge a spooled export); records
//! come back from [`Spool::peek`] in append order, each until it is
//! committed; a torn or corrupt tail (a crash mid-append) is cut off at open
//! and never returned; the bytes on disk never exceed `max_bytes` (an append
//! that would is refused with [`SpoolError::Full`]); one process owns a spool
//! directory at a time (an exclusive lock on `LOCK`).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"LSP1";
const HEADER: u64 = 12;
const SEGMENT_EXT: &str = "seg";
const CURSOR_FILE: &str = "cursor";
const LOCK_FILE: &str = "LOCK";
const DEAD_DIR: &str = "dead";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full ({used} of {max} bytes)")]
    Full { used: u64, max: u64 },
    #[error("the spool directory is in use by another process")]
    Locked,
    #[error("spool io on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SpoolLimits {
    pub max_bytes: u64,
    pub segment_bytes: u64,
}

/// What opening found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub segments: usize,
    pub pending_bytes: u64,
    /// Bytes cut from torn or corrupt tails.
    pub cut_bytes: u64,
}

/// Position of the next record to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub seq: u64,
    pub offset: u64,
}

/// One record to replay; commit `next` once it is inserted.
#[derive(Debug)]
pub struct Record {
    pub payload: Vec<u8>,
    pub next: Cursor,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    bytes: u64,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
    segments: VecDeque<Segment>,
    /// The segment being appended to, when one is open.
    writer: Option<(u64, File)>,
    cursor: Cursor,
    next_seq: u64,
    /// Records found corrupt while replaying (disk damage; never a torn tail).
    pub corrupt_records: u64,
    _lock: File,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.{SEGMENT_EXT}"))
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Length of the valid prefix of a segment: whole records with good checksums.
fn valid_prefix(path: &Path) -> Result<(u64, u64), SpoolError> {
    let data = fs::read(path).map_err(io(path))?;
    let mut off = 0usize;
    while let Some(len) = record_at(&data, off) {
        off += len;
    }
    Ok((off as u64, data.len() as u64))
}

/// The total length of the record at `off`, when it is whole and its checksum holds.
fn record_at(data: &[u8], off: usize) -> Option<usize> {
    let head = data.get(off..off + HEADER as usize)?;
    if head[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(head[4..8].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[8..12].try_into().ok()?);
    let start = off + HEADER as usize;
    let payload = data.get(start..start.checked_add(len)?)?;
    (crc32fast::hash(payload) == crc).then_some(HEADER as usize + len)
}

impl Spool {
    /// Open (creating) the spool in `dir`, cutting torn tails and finding the
    /// replay position.
    pub fn open(dir: &Path, limits: SpoolLimits) -> Result<(Self, Recovery), SpoolError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(SpoolError::Locked),
            Err(fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let mut seqs: Vec<u64> = fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
                (p.extension().and_then(|x| x.to_str()) == Some(SEGMENT_EXT))
                    .then(|| p.file_stem()?.to_str()?.parse::<u64>().ok())
                    .flatten()
            })
            .collect();
        seqs.sort_unstable();
        let mut recovery = Recovery::default();
        let mut segments = VecDeque::new();
        for seq in &seqs {
            let path = segment_path(dir, *seq);
            let (valid, len) = valid_prefix(&path)?;
            if valid < len {
                tracing::warn!(segment = %path.display(), cut = len - valid, "spool: cutting a torn or corrupt tail");
                recovery.cut_bytes += len - valid;
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io(&path))?;
                f.set_len(valid).map_err(io(&path))?;
                f.sync_all().map_err(io(&path))?;
            }
            if valid == 0 {
                fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            segments.push_back(Segment {
                seq: *seq,
                bytes: valid,
            });
        }
        let mut cursor = read_cursor(dir).unwrap_or(Cursor { seq: 0, offset: 0 });
        // Never reuse a sequence number the cursor may name: a new segment
        // under an old number would be taken as already replayed.
        let next_seq = seqs
            .last()
            .map_or(1, |s| s + 1)
            .max(cursor.seq.saturating_add(1));
        // Segments wholly before the cursor were replayed before a crash.
        while let Some(first) = segments.front() {
            let done =
                first.seq < cursor.seq || (first.seq == cursor.seq && cursor.offset >= first.bytes);
            if !done {
                break;
            }
            let path = segment_path(dir, first.seq);
            fs::remove_file(&path).map_err(io(&path))?;
            segments.pop_front();
        }
        match segments.front() {
            Some(first) if first.seq == cursor.seq => {}
            Some(first) => {
                cursor = Cursor {
                    seq: first.seq,
                    offset: 0,
                }
            }
            None => {
                cursor = Cursor {
                    seq: next_seq,
                    offset: 0,
                }
            }
        }
        let spool = Spool {
            dir: dir.to_path_buf(),
            limits,
            segments,
            writer: None,
            cursor,
            next_seq,
            corrupt_records: 0,
            _lock: lock,
        };
        recovery.segments = spool.segments.len();
        recovery.pending_bytes = spool.pending_bytes();
        Ok((spool, recovery))
    }

    /// Bytes on disk not yet replayed (whole segments, minus the replayed
    /// prefix of the first).
    pub fn pending_bytes(&self) -> u64 {
        let total: u64 = self.segments.iter().map(|s| s.bytes).sum();
        let done = match self.segments.front() {
            Some(first) if first.seq == self.cursor.seq => self.cursor.offset,
            _ => 0,
        };
        total.saturating_sub(done)
    }

    /// Bytes the segment files take on disk (what the cap limits).
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending_bytes() == 0
    }

    /// Append one record and fsync it.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), SpoolError> {
        let rec_len = HEADER + payload.len() as u64;
        let used = self.disk_bytes();
        if used + rec_len > self.limits.max_bytes || payload.len() > u32::MAX as usize {
            return Err(SpoolError::Full {
                used,
                max: self.limits.max_bytes,
            });
        }
        let rotate = match (&self.writer, self.segments.back()) {
            (Some((seq, _)), Some(last)) => {
                last.seq != *seq
                    || (last.bytes > 0 && last.bytes + rec_len > self.limits.segment_bytes)
            }
            _ => true,
        };
        if rotate {
            let seq = self.next_seq;
            self.next_seq += 1;
            let path = segment_path(&self.dir, seq);
            let f = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            sync_dir(&self.dir)?;
            self.segments.push_back(Segment { seq, bytes: 0 });
            if self.segments.len() == 1 {
                self.cursor = Cursor { seq, offset: 0 };
            }
            self.writer = Some((seq, f));
        }
        let Some((seq, file)) = self.writer.as_mut() else {
            return Err(SpoolError::Io {
                path: self.dir.display().to_string(),
                source: std::io::Error::other("no open segment"),
            });
        };
        let path = segment_path(&self.dir, *seq);
        let mut rec = Vec::with_capacity(rec_len as usize);
        rec.extend_from_slice(&MAGIC);
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        rec.extend_from_slice(payload);
        if let Err(e) = file.write_all(&rec).and_then(|()| file.sync_data()) {
            // The segment may now hold a partial record: never append after it.
            self.writer = None;
            return Err(io(&path)(e));
        }
        if let Some(last) = self.segments.back_mut() {
            last.bytes += rec_len;
        }
        Ok(())
    }

    /// The next record to replay, without consuming it. `None` when caught up.
    pub fn peek(&mut self) -> Result<Option<Record>, SpoolError> {
        loop {
            let Some(first) = self.segments.front() else {
                return Ok(None);
            };
            let (seq, bytes) = (first.seq, first.bytes);
            if self.cursor.seq != seq {
                self.cursor = Cursor { seq, offset: 0 };
            }
            if self.cursor.offset >= bytes {
                if self.writer.as_ref().is_some_and(|(w, _)| *w == seq) {
                    return Ok(None);
                }
                self.drop_first()?;
                continue;
            }
            let path = segment_path(&self.dir, seq);
            match read_record(&path, self.cursor.offset)? {
                Some(payload) => {
                    let next = Cursor {
                        seq,
                        offset: self.cursor.offset + HEADER + payload.len() as u64,
                    };
                    return Ok(Some(Record { payload, next }));
                }
                None => {
                    tracing::error!(segment = %path.display(), offset = self.cursor.offset, "spool: corrupt record, skipping the rest of the segment");
                    self.corrupt_records += 1;
                    self.cursor.offset = bytes;
                }
            }
        }
    }

    /// Mark everything before `next` replayed.
    pub fn commit(&mut self, next: Cursor) -> Result<(), SpoolError> {
        self.cursor = next;
        let finished = self
            .segments
            .front()
            .is_some_and(|s| s.seq == next.seq && next.offset >= s.bytes);
        if finished {
            if self.writer.as_ref().is_some_and(|(w, _)| *w == next.seq) {
                // Caught up with the segment being written: close it so the
                // next append starts a fresh one and this file can go.
                self.writer = None;
            }
            self.drop_first()?;
        }
        write_cursor(&self.dir, self.cursor)
    }

    fn drop_first(&mut self) -> Result<(), SpoolError> {
        if let Some(first) = self.segments.pop_front() {
            let path = segment_path(&self.dir, first.seq);
            fs::remove_file(&path).map_err(io(&path))?;
        }
        self.cursor = match self.segments.front() {
            Some(s) => Cursor {
                seq: s.seq,
                offset: 0,
            },
            None => Cursor {
                seq: self.next_seq,
                offset: 0,
            },
        };
        Ok(())
    }

    /// Keep a batch ClickHouse refuses as invalid, durably, for an operator.
    pub fn dead_letter(&self, name: &str, payload: &[u8]) -> Result<PathBuf, SpoolError> {
        let dir = self.dir.join(DEAD_DIR);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{safe}.batch"));
        let mut f = File::create(&path).map_err(io(&path))?;
        f.write_all(payload)
            .and_then(|()| f.sync_all())
            .map_err(io(&path))?;
        sync_dir(&dir)?;
        Ok(path)
    }
}

fn read_record(path: &Path, offset: u64) -> Result<Option<Vec<u8>>, SpoolError> {
    let mut f = File::open(path).map_err(io(path))?;
    f.seek(SeekFrom::Start(offset)).map_err(io(path))?;
    let mut head = [0u8; HEADER as usize];
    if f.read_exact(&mut head).is_err() || head[..4] != MAGIC {
        return Ok(None);
    }
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let crc = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    let mut payload = vec![0u8; len];
    if f.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
        return Ok(None);
    }
    Ok(Some(payload))
}

fn read_cursor(dir: &Path) -> Option<Cursor> {
    let text = fs::read_to_string(dir.join(CURSOR_FILE)).ok()?;
    let mut it = text.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some(Cursor {
        seq: it.next()??,
        offset: it.next()??,
    })
}

/// Not fsynced on purpose: a stale cursor only replays records again, which
/// their deduplication tokens make harmless.
fn write_cursor(dir: &Path, c: Cursor) -> Result<(), SpoolError> {
    let tmp = dir.join("cursor.tmp");
    fs::write(&tmp, format!("{} {}\n", c.seq, c.offset)).map_err(io(&tmp))?;
    let path = dir.join(CURSOR_FILE);
    fs::rename(&tmp, &path).map_err(io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits(max: u64, seg: u64) -> SpoolLimits {
        SpoolLimits {
            max_bytes: max,
            segment_bytes: seg,
        }
    }

    fn drain(s: &mut Spool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Ok(Some(r)) = s.peek() {
            out.push(r.payload);
            if s.commit(r.next).is_err() {
                break;
            }
        }
        out
    }

    #[test]
    fn torn_tail_is_cut_and_the_rest_replays() -> Result<(), SpoolError> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        {
            let (mut s, _) = Spool::open(dir.path(), limits(1 << 20, 1 << 20))?;
            s.append(b"one")?;
            s.append(b"two")?;
        }
        let seg = segment_path(dir.path(), 1);
        let mut f = OpenOptions::new()
            .append(true)
            .open(&seg)
            .map_err(io(&seg))?;
        f.write_all(b"LSP1\x09\x00\x00\x00half").map_err(io(&seg))?;
        let (mut s, rec) = Spool::open(dir.path(), limits(1 << 20, 1 << 20))?;
        assert_eq!(rec.cut_bytes, 12);
        assert_eq!(drain(&mut s), vec![b"one".to_vec(), b"two".to_vec()]);
        assert!(s.is_empty());
        Ok(())
    }

    #[test]
    fn full_spool_refuses_and_a_second_owner_is_locked_out() -> Result<(), SpoolError> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let (mut s, _) = Spool::open(dir.path(), limits(100, 1 << 20))?;
        s.append(&[1; 60])?;
        assert!(matches!(s.append(&[2; 60]), Err(SpoolError::Full { .. })));
        assert!(matches!(
            Spool::open(dir.path(), limits(100, 100)),
            Err(SpoolError::Locked)
        ));
        Ok(())
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<u8>),
        Replay(usize),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Op::Append),
            2 => (0usize..4).prop_map(Op::Replay),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Model check: the spool replays exactly the accepted appends, in
        /// order, across reopenings (crash-restart), and never exceeds its cap.
        #[test]
        fn replays_accepted_records_in_order_across_restarts(ops in proptest::collection::vec(op(), 1..60)) {
            let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let lim = limits(2_000, 700);
            let open = |d: &Path| Spool::open(d, lim).map(|(s, _)| s).map_err(|e| TestCaseError::fail(e.to_string()));
            let mut spool = Some(open(dir.path())?);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                let s = spool.as_mut().ok_or_else(|| TestCaseError::fail("no spool"))?;
                match op {
                    Op::Append(p) => match s.append(&p) {
                        Ok(()) => model.push_back(p),
                        Err(SpoolError::Full { .. }) => {}
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    },
                    Op::Replay(n) => for _ in 0..n {
                        match s.peek().map_err(|e| TestCaseError::fail(e.to_string()))? {
                            Some(r) => {
                                prop_assert_eq!(Some(&r.payload), model.front());
                                s.commit(r.next).map_err(|e| TestCaseError::fail(e.to_string()))?;
                                model.pop_front();
                            }
                            None => prop_assert!(model.is_empty()),
                        }
                    },
                    Op::Reopen => {
                        drop(spool.take());
                        spool = Some(open(dir.path())?);
                    }
                }
                let s = spool.as_ref().ok_or_else(|| TestCaseError::fail("no spool"))?;
                prop_assert!(s.disk_bytes() <= lim.max_bytes);
            }
            let s = spool.as_mut().ok_or_else(|| TestCaseError::fail("no spool"))?;
            let rest = drain(s);
            prop_assert_eq!(rest, Vec::from(model));
        }
    }
}
