//! The event log: every accepted record, in arrival order, in append-only
//! segment files. It is where raw events live; sled only holds what the
//! processor decided about them (state, indexes, profiles), each state
//! pointing back here with a `Location`.
//!
//! Why our own log and not a sled tree: a 202 needs one `write` + one
//! `fdatasync` shared by every waiting request (group commit, see `flush`),
//! and sled, asked to hold raw events as well, wrote about 2.5× what it was
//! given and spent more CPU doing so than the rest of the request (measured,
//! docs/performance.md). A log written once, read by offset, costs neither.
//!
//! Format of a segment `seg-<n>.log`: records of `len: u32 LE`,
//! `crc32(body): u32 LE`, `body`, where body = event id (16 bytes) ‖ source
//! id (16 bytes) ‖ the event as JSON (or, with the nil event id, what a
//! request's records share: see `store::shared`). A torn record at the tail (a crash
//! mid-write) fails its length or CRC check and ends the scan of that
//! segment; it was never acknowledged. Every start opens a new segment, so
//! nothing is ever appended after a torn tail. The flusher lays zeros ahead
//! of the records (`ZERO_AHEAD`); a zero length ends a scan the same way.
//!
//! Appends only copy bytes into a buffer (under the store's append lock, so
//! log order is id order); the flusher thread writes and syncs the buffer
//! and then publishes how far the log is durable (`synced`), which is how
//! far the processor may read.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Where a record lives: its segment, the offset of its header, and the
/// length of its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub segment: u32,
    pub offset: u64,
    pub len: u32,
}

impl Location {
    pub const BYTES: usize = 16;

    pub fn to_bytes(self) -> [u8; Self::BYTES] {
        let mut out = [0u8; Self::BYTES];
        out[..4].copy_from_slice(&self.segment.to_be_bytes());
        out[4..12].copy_from_slice(&self.offset.to_be_bytes());
        out[12..].copy_from_slice(&self.len.to_be_bytes());
        out
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let b = bytes.get(..Self::BYTES)?;
        Some(Self {
            segment: u32::from_be_bytes(b[..4].try_into().ok()?),
            offset: u64::from_be_bytes(b[4..12].try_into().ok()?),
            len: u32::from_be_bytes(b[12..16].try_into().ok()?),
        })
    }

    /// Where the next record of the same segment starts.
    pub fn end(self) -> u64 {
        self.offset + HEADER as u64 + self.len as u64
    }
}

/// One record read back from a segment.
pub struct Record {
    pub at: Location,
    pub body: Vec<u8>,
}

const HEADER: usize = 8;

/// A segment is closed once it holds this much (retention drops whole segments).
const SEGMENT_BYTES: u64 = 64 << 20;

pub struct SegmentLog {
    dir: PathBuf,
    segment_bytes: u64,
    appender: Mutex<Appender>,
    writer: Mutex<Writer>,
    /// Log sequence number (bytes appended since start) known durable.
    synced: AtomicU64,
    /// Set when a write or sync failed: offsets handed out after that point
    /// may not match the file, so the log takes nothing more until a
    /// restart (which starts a new segment; the scan stops at the damage).
    broken: std::sync::atomic::AtomicBool,
    readers: Mutex<HashMap<u32, Arc<File>>>,
}

/// The append side: where the next record goes, and the bytes not yet written.
struct Appender {
    segment: u32,
    end: u64,
    lsn: u64,
    chunks: Vec<(u32, Vec<u8>)>,
}

/// The write side, used by the flusher only.
struct Writer {
    segment: u32,
    file: File,
    /// Where the next record is written.
    written: u64,
    /// The file is zero-filled up to here (see `ZERO_AHEAD`).
    zeroed: u64,
    /// `ZERO_AHEAD`, or less for the small segments of tests.
    zero_ahead: u64,
}

/// How far ahead of the records the flusher zero-fills a segment.
///
/// Why: `fdatasync` on a file that grew must also write the inode (its size)
/// and wait for it, a second synchronous disk write per group commit.
/// Records written over blocks that already hold zeros change no metadata,
/// so the sync writes the data alone. One extra write and sync per
/// `ZERO_AHEAD` bytes pays for that (measured, docs/performance.md). The
/// zeros also end a scan: a record length of 0 is no record.
const ZERO_AHEAD: u64 = 1 << 20;

impl SegmentLog {
    /// Opens the log in `dir`, starting a fresh segment after the existing ones.
    pub fn open(dir: &Path) -> io::Result<SegmentLog> {
        Self::open_with_segment_bytes(dir, SEGMENT_BYTES)
    }

    /// As `open`, with a smaller segment size (tests of retention).
    pub fn open_with_segment_bytes(dir: &Path, segment_bytes: u64) -> io::Result<SegmentLog> {
        fs::create_dir_all(dir)?;
        let next = segments(dir)?.last().map_or(1, |n| n + 1);
        let file = create_segment(dir, next)?;
        sync_dir(dir);
        Ok(SegmentLog {
            dir: dir.to_path_buf(),
            segment_bytes,
            appender: Mutex::new(Appender {
                segment: next,
                end: 0,
                lsn: 0,
                chunks: Vec::new(),
            }),
            writer: Mutex::new(Writer::new(next, file, segment_bytes)),
            synced: AtomicU64::new(0),
            broken: std::sync::atomic::AtomicBool::new(false),
            readers: Mutex::new(HashMap::new()),
        })
    }

    /// Adds a record to the buffer (a memcpy; the flusher writes it).
    /// Returns where it will live and the sequence number that, once
    /// `synced()` reaches it, says it is on disk.
    pub fn append(&self, body: &[u8]) -> io::Result<(Location, u64)> {
        self.append_with(body, true)
    }

    /// As `append`; with `may_roll` false the record stays in the current
    /// segment even past its size, so it cannot be separated from the
    /// record before it (a request's shared record, see `store::shared`).
    pub fn append_with(&self, body: &[u8], may_roll: bool) -> io::Result<(Location, u64)> {
        let len = u32::try_from(body.len()).map_err(|_| io::Error::other("record too large"))?;
        let mut a = self.appender.lock().map_err(|_| poisoned())?;
        if self.broken.load(Ordering::SeqCst) {
            return Err(io::Error::other(
                "the event log failed to write earlier; fix the disk and restart Inlet",
            ));
        }
        if may_roll && a.end >= self.segment_bytes {
            a.segment += 1;
            a.end = 0;
        }
        let at = Location {
            segment: a.segment,
            offset: a.end,
            len,
        };
        let segment = a.segment;
        if a.chunks.last().is_none_or(|(s, _)| *s != segment) {
            a.chunks.push((segment, Vec::with_capacity(1 << 16)));
        }
        if let Some((_, chunk)) = a.chunks.last_mut() {
            chunk.extend_from_slice(&len.to_le_bytes());
            chunk.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
            chunk.extend_from_slice(body);
        }
        let size = (HEADER + body.len()) as u64;
        a.end += size;
        a.lsn += size;
        Ok((at, a.lsn))
    }

    /// Writes everything appended so far and syncs it to disk.
    pub fn sync(&self) -> io::Result<()> {
        let result = self.write_pending();
        if result.is_err() {
            self.broken.store(true, Ordering::SeqCst);
        }
        result
    }

    fn write_pending(&self) -> io::Result<()> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(io::Error::other("the event log failed to write earlier"));
        }
        let mut writer = self.writer.lock().map_err(|_| poisoned())?;
        let (chunks, lsn) = {
            let mut a = self.appender.lock().map_err(|_| poisoned())?;
            (std::mem::take(&mut a.chunks), a.lsn)
        };
        for (segment, bytes) in chunks {
            if segment != writer.segment {
                writer.file.sync_data()?;
                let file = create_segment(&self.dir, segment)?;
                *writer = Writer::new(segment, file, self.segment_bytes);
                sync_dir(&self.dir);
            }
            writer.write(&bytes)?;
        }
        writer.file.sync_data()?;
        self.synced.fetch_max(lsn, Ordering::SeqCst);
        Ok(())
    }

    /// How far (in sequence numbers from `append`) the log is durable.
    pub fn synced(&self) -> u64 {
        self.synced.load(Ordering::SeqCst)
    }

    /// Reads one record's body, checking it against its CRC.
    pub fn read(&self, at: Location) -> io::Result<Vec<u8>> {
        let file = self.reader(at.segment)?;
        let mut buf = vec![0u8; HEADER + at.len as usize];
        file.read_exact_at(&mut buf, at.offset)?;
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let body = buf.split_off(HEADER);
        if len != at.len || crc32fast::hash(&body) != crc {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("event log record at {at:?} does not match its checksum"),
            ));
        }
        Ok(body)
    }

    /// The first `max` bytes of a record's body (all of it when shorter),
    /// without its checksum check (which needs the whole body): what a list
    /// shows of a large event.
    pub fn read_prefix(&self, at: Location, max: usize) -> io::Result<Vec<u8>> {
        let file = self.reader(at.segment)?;
        let mut buf = vec![0u8; (at.len as usize).min(max)];
        file.read_exact_at(&mut buf, at.offset + HEADER as u64)?;
        Ok(buf)
    }

    /// Overwrites the bodies of records from byte `keep` on, in place, with
    /// `marker` padded with spaces to the same length (and their checksums
    /// to match), then syncs: erased personal data is gone from the disk,
    /// not only hidden, and each record keeps its length, so every
    /// `Location` and the scan past it stay valid.
    ///
    /// Records still in the append buffer are written out first (one sync),
    /// and the writer's lock is held throughout: the flusher takes the
    /// buffer under that lock, so once we hold it every record appended
    /// before this call is in its file, and later writes never overlap ours.
    pub fn scrub(&self, places: &[Location], keep: usize, marker: &[u8]) -> io::Result<()> {
        if places.is_empty() {
            return Ok(());
        }
        self.sync()?;
        let _writer = self.writer.lock().map_err(|_| poisoned())?;
        let mut files: HashMap<u32, File> = HashMap::new();
        for at in places {
            let mut body = self.read(*at)?;
            let keep = keep.min(body.len());
            redact_body(&mut body[keep..], marker);
            let file = match files.entry(at.segment) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(
                    OpenOptions::new()
                        .write(true)
                        .open(segment_path(&self.dir, at.segment))?,
                ),
            };
            file.write_all_at(&crc32fast::hash(&body).to_le_bytes(), at.offset + 4)?;
            file.write_all_at(&body[keep..], at.offset + (HEADER + keep) as u64)?;
        }
        for file in files.values() {
            file.sync_data()?;
        }
        Ok(())
    }

    /// Every segment number present, oldest first (the current one too).
    pub fn all_segments(&self) -> io::Result<Vec<u32>> {
        segments(&self.dir)
    }

    /// Every whole record from `from` (a segment and offset) to the end of
    /// the log, oldest first. Used once at start to find what the processor
    /// has not seen.
    pub fn scan_from(&self, from: (u32, u64)) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        for segment in segments(&self.dir)? {
            if segment >= from.0 {
                let offset = if segment == from.0 { from.1 } else { 0 };
                read_segment(&self.dir, segment, offset, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Every whole record of one segment.
    pub fn segment_records(&self, segment: u32) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        read_segment(&self.dir, segment, 0, &mut out)?;
        Ok(out)
    }

    /// Closed segments, oldest first (the one being appended to is left out).
    pub fn closed_segments(&self) -> io::Result<Vec<u32>> {
        let current = self.appender.lock().map_err(|_| poisoned())?.segment;
        Ok(segments(&self.dir)?
            .into_iter()
            .filter(|s| *s < current)
            .collect())
    }

    /// Deletes a closed segment (retention).
    pub fn delete_segment(&self, segment: u32) -> io::Result<()> {
        if let Ok(mut readers) = self.readers.lock() {
            readers.remove(&segment);
        }
        fs::remove_file(segment_path(&self.dir, segment))?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// Whether a segment is still there (retention deletes whole segments).
    pub fn has_segment(&self, segment: u32) -> bool {
        segment_path(&self.dir, segment).exists()
    }

    /// Bytes the segments take on disk.
    /// A gauge (metrics, reports): a directory that cannot be listed counts
    /// as empty, and says so in the log rather than failing the caller.
    pub fn size_on_disk(&self) -> u64 {
        let listed = segments(&self.dir).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list the event log's segments");
            Vec::new()
        });
        listed
            .into_iter()
            .filter_map(|s| fs::metadata(segment_path(&self.dir, s)).ok())
            .map(|m| m.len())
            .sum()
    }

    fn reader(&self, segment: u32) -> io::Result<Arc<File>> {
        let mut readers = self.readers.lock().map_err(|_| poisoned())?;
        if let Some(file) = readers.get(&segment) {
            return Ok(file.clone());
        }
        let file = Arc::new(File::open(segment_path(&self.dir, segment))?);
        readers.insert(segment, file.clone());
        Ok(file)
    }
}

impl Writer {
    fn new(segment: u32, file: File, segment_bytes: u64) -> Self {
        Writer {
            segment,
            file,
            written: 0,
            zeroed: 0,
            zero_ahead: ZERO_AHEAD.min(segment_bytes),
        }
    }

    /// Writes `bytes` at the end of the records, zero-filling ahead first
    /// when they would pass the zeroed part.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let end = self.written + bytes.len() as u64;
        if end > self.zeroed {
            self.zero_fill_to(end + self.zero_ahead)?;
        }
        self.file.write_all_at(bytes, self.written)?;
        self.written = end;
        Ok(())
    }

    /// Extends the file with zeros and syncs that on its own, so later
    /// syncs find the size and blocks already on disk.
    fn zero_fill_to(&mut self, target: u64) -> io::Result<()> {
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        let mut at = self.zeroed.max(self.written);
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            self.file.write_all_at(&ZEROS[..n], at)?;
            at += n as u64;
        }
        self.file.sync_data()?;
        self.zeroed = target;
        Ok(())
    }
}

/// Replaces `tail` with `marker` followed by spaces (a marker longer than
/// the tail is cut: spaces then fill what is left of a JSON document).
fn redact_body(tail: &mut [u8], marker: &[u8]) {
    let n = if marker.len() <= tail.len() {
        marker.len()
    } else {
        0
    };
    tail[..n].copy_from_slice(&marker[..n]);
    tail[n..].fill(b' ');
}

fn poisoned() -> io::Error {
    io::Error::other("event log lock poisoned")
}

fn segment_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("seg-{number:010}.log"))
}

fn create_segment(dir: &Path, number: u32) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(segment_path(dir, number))
}

/// Segment numbers present in `dir`, ascending.
fn segments(dir: &Path) -> io::Result<Vec<u32>> {
    let mut numbers: Vec<u32> = fs::read_dir(dir)?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("seg-")?
                .strip_suffix(".log")?
                .parse()
                .ok()
        })
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// Makes a created or removed file name durable.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Reads the whole records of one segment from `offset`; stops at a torn tail.
fn read_segment(dir: &Path, segment: u32, offset: u64, out: &mut Vec<Record>) -> io::Result<()> {
    let mut bytes = Vec::new();
    File::open(segment_path(dir, segment))?.read_to_end(&mut bytes)?;
    let mut at = usize::try_from(offset).unwrap_or(usize::MAX);
    while at.saturating_add(HEADER) <= bytes.len() {
        let len =
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let crc = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        let Some(body) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if len < 32 || crc32fast::hash(body) != crc {
            break;
        }
        out.push(Record {
            at: Location {
                segment,
                offset: at as u64,
                len: len as u32,
            },
            body: body.to_vec(),
        });
        at += HEADER + len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn body(n: u8, text: &[u8]) -> Vec<u8> {
        [[n; 32].as_slice(), text].concat()
    }

    #[test]
    fn synced_records_come_back_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = {
            let log = SegmentLog::open(dir.path()).unwrap();
            let a = log.append(&body(1, b"one")).unwrap();
            log.append(&body(2, b"two")).unwrap();
            log.sync().unwrap();
            assert_eq!(log.read(a.0).unwrap(), body(1, b"one"));
            a
        };
        // A crash mid-write leaves half a record at the end.
        let mut f = OpenOptions::new()
            .append(true)
            .open(segment_path(dir.path(), first.segment))
            .unwrap();
        f.write_all(&[40, 0, 0, 0, 1, 2]).unwrap();
        let log = SegmentLog::open(dir.path()).unwrap();
        let records = log.scan_from((0, 0)).unwrap();
        let bodies: Vec<&[u8]> = records.iter().map(|r| r.body.as_slice()).collect();
        assert_eq!(bodies, vec![&body(1, b"one")[..], &body(2, b"two")[..]]);
        // Scanning from the end of the first record skips it.
        let after = log.scan_from((first.segment, first.end())).unwrap();
        assert_eq!(after.len(), 1);
    }

    #[test]
    fn segments_roll_over_and_sync_publishes_the_sequence_number() {
        let dir = tempfile::tempdir().unwrap();
        let log = SegmentLog::open_with_segment_bytes(dir.path(), 100).unwrap();
        let mut last = 0;
        let mut places = Vec::new();
        for n in 0..10 {
            let (at, lsn) = log.append(&body(n, b"0123456789")).unwrap();
            places.push(at);
            last = lsn;
        }
        assert!(log.synced() < last);
        log.sync().unwrap();
        assert_eq!(log.synced(), last);
        assert!(places.last().unwrap().segment > places[0].segment);
        for (n, at) in places.iter().enumerate() {
            assert_eq!(log.read(*at).unwrap(), body(n as u8, b"0123456789"));
        }
        let closed = log.closed_segments().unwrap();
        assert!(!closed.is_empty());
        log.delete_segment(closed[0]).unwrap();
        assert!(log.read(places[0]).is_err());
    }

    /// Syncs between zero-fills must not grow the file: that is what spares
    /// each group commit the inode write.
    #[test]
    fn records_are_written_over_zeros_laid_ahead_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = SegmentLog::open(dir.path()).unwrap();
        let (at, _) = log.append(&body(1, b"one")).unwrap();
        log.sync().unwrap();
        let path = segment_path(dir.path(), at.segment);
        let laid = fs::metadata(&path).unwrap().len();
        assert!(laid >= at.end() + ZERO_AHEAD);
        let (next, _) = log.append(&body(2, b"two")).unwrap();
        log.sync().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), laid);
        assert_eq!(log.read(next).unwrap(), body(2, b"two"));
        // The zeros after the records end the scan.
        assert_eq!(log.scan_from((0, 0)).unwrap().len(), 2);
    }

    const MARKER: &[u8] = br#"{"_erased":true}"#;

    #[test]
    fn a_scrubbed_record_keeps_its_prefix_and_length_and_reads_back_as_the_marker() {
        let dir = tempfile::tempdir().unwrap();
        let log = SegmentLog::open(dir.path()).unwrap();
        let (at, _) = log
            .append(&body(1, b"{\"email\":\"secret@example.org\"}"))
            .unwrap();
        let (next, _) = log.append(&body(2, b"next")).unwrap();
        log.sync().unwrap();
        log.scrub(&[at], 32, MARKER).unwrap();
        // `read` checks the CRC: it was rewritten to match.
        let scrubbed = log.read(at).unwrap();
        assert_eq!(scrubbed.len(), at.len as usize);
        assert_eq!(&scrubbed[..32], &[1; 32]);
        let json: serde_json::Value = serde_json::from_slice(&scrubbed[32..]).unwrap();
        assert_eq!(json, serde_json::json!({"_erased": true}));
        let bytes = fs::read(segment_path(dir.path(), at.segment)).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"secret"));
        // The scan reads the scrubbed record and the one after it.
        let records = log.scan_from((0, 0)).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].body, body(2, b"next"));
        assert_eq!(log.read(next).unwrap(), body(2, b"next"));
    }

    /// A record not yet written by the flusher is written, then scrubbed:
    /// the overwrite never lands before (and under) the first write.
    #[test]
    fn a_record_still_in_the_append_buffer_is_written_then_scrubbed() {
        let dir = tempfile::tempdir().unwrap();
        let log = SegmentLog::open(dir.path()).unwrap();
        let (at, _) = log
            .append(&body(1, b"buffered secret@example.org"))
            .unwrap();
        log.scrub(&[at], 32, MARKER).unwrap();
        assert!(log.synced() >= at.end());
        assert!(log.read(at).unwrap()[32..].starts_with(MARKER));
        drop(log);
        let log = SegmentLog::open(dir.path()).unwrap();
        assert_eq!(log.scan_from((0, 0)).unwrap().len(), 1);
    }

    /// A marker longer than the body it replaces leaves spaces only.
    #[test]
    fn a_body_shorter_than_the_marker_becomes_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let log = SegmentLog::open(dir.path()).unwrap();
        let (at, _) = log.append(&body(1, b"1")).unwrap();
        log.scrub(&[at], 32, MARKER).unwrap();
        assert_eq!(&log.read(at).unwrap()[32..], b" ");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Whatever was synced comes back, in order, by location and by
            /// scan; cutting the last segment anywhere (a crash mid-write)
            /// loses only records after the cut, never a synced one before
            /// it, and never yields a record that was not written.
            #[test]
            fn synced_records_survive_and_a_cut_tail_loses_only_the_tail(
                texts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..40),
                segment_bytes in 64u64..2048,
                cut in any::<prop::sample::Index>(),
            ) {
                let dir = tempfile::tempdir().unwrap();
                let bodies: Vec<Vec<u8>> = texts
                    .iter()
                    .enumerate()
                    .map(|(n, t)| body(n as u8, t))
                    .collect();
                let places: Vec<Location> = {
                    let log = SegmentLog::open_with_segment_bytes(dir.path(), segment_bytes).unwrap();
                    let places: Vec<Location> =
                        bodies.iter().map(|b| log.append(b).unwrap().0).collect();
                    log.sync().unwrap();
                    for (at, b) in places.iter().zip(&bodies) {
                        prop_assert_eq!(&log.read(*at).unwrap(), b);
                    }
                    places
                };
                let log = SegmentLog::open(dir.path()).unwrap();
                let scanned: Vec<Vec<u8>> =
                    log.scan_from((0, 0)).unwrap().into_iter().map(|r| r.body).collect();
                prop_assert_eq!(&scanned, &bodies);

                // Cut the last segment at an arbitrary byte.
                let last = places.last().unwrap().segment;
                let path = segment_path(dir.path(), last);
                let len = fs::metadata(&path).unwrap().len();
                let keep = cut.index(len as usize + 1) as u64;
                OpenOptions::new().write(true).open(&path).unwrap().set_len(keep).unwrap();
                drop(log);
                let log = SegmentLog::open(dir.path()).unwrap();
                let after: Vec<Vec<u8>> =
                    log.scan_from((0, 0)).unwrap().into_iter().map(|r| r.body).collect();
                let survivors = places
                    .iter()
                    .filter(|at| at.segment < last || at.end() <= keep)
                    .count();
                prop_assert_eq!(&after[..], &bodies[..survivors]);
            }
        }
    }
}
