//! The write-ahead log that makes a 202 durable.
//!
//! Why not just `sled::Db::flush` per group commit: a sled flush seals its
//! IO buffer and hands writes and `sync_file_range` calls to its IO thread
//! pool, which under load cost more kernel time than everything else the
//! request does (measured: about 0.6 of a core at 9k requests/s on the
//! 2-core test machine). Here one thread appends the pending bytes of every
//! waiting request with one `write` and one `fdatasync`.
//!
//! Records are also inserted into sled (in memory) before their 202, so
//! readers and the processor never look at this log. It only matters after
//! a crash: at start, every record still in the log is put back into sled
//! if sled lost it. A checkpoint (every second) rotates to a new segment,
//! flushes sled, and deletes the older segments: every record in them was
//! inserted into sled before the rotation, so that flush made it durable.
//!
//! Format of a segment `wal-<n>.log`: records of `len: u32 LE`,
//! `crc32(body): u32 LE`, `body` where body = 16-byte key ‖ value. A torn
//! record at the tail (a crash mid-write) fails its length or CRC check and
//! ends the replay of that segment; it was never acknowledged.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The log: an in-memory buffer of appended records and the open segment.
pub struct Wal {
    dir: PathBuf,
    pending: Mutex<Vec<u8>>,
    segment: Mutex<Segment>,
}

struct Segment {
    number: u64,
    file: File,
}

/// One logged record: the sled key and value of an event.
pub struct Record {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

const HEADER: usize = 8;

impl Wal {
    /// Opens the log in `dir`, returning the records left by the last run
    /// (oldest first) for the caller to restore, and the segment numbers
    /// that held them (to delete once restored and flushed).
    pub fn open(dir: &Path) -> io::Result<(Wal, Vec<Record>, Vec<u64>)> {
        fs::create_dir_all(dir)?;
        let old = segments(dir)?;
        let mut records = Vec::new();
        for number in &old {
            read_segment(&segment_path(dir, *number), &mut records)?;
        }
        let next = old.last().map_or(1, |n| n + 1);
        let wal = Wal {
            dir: dir.to_path_buf(),
            pending: Mutex::new(Vec::with_capacity(1 << 16)),
            segment: Mutex::new(Segment {
                number: next,
                file: create_segment(dir, next)?,
            }),
        };
        Ok((wal, records, old))
    }

    /// Adds a record to the pending buffer (a memcpy; the flusher writes it).
    pub fn append(&self, key: &[u8], value: &[u8]) {
        let len = (key.len() + value.len()) as u32;
        let mut crc = crc32fast::Hasher::new();
        crc.update(key);
        crc.update(value);
        if let Ok(mut pending) = self.pending.lock() {
            pending.extend_from_slice(&len.to_le_bytes());
            pending.extend_from_slice(&crc.finalize().to_le_bytes());
            pending.extend_from_slice(key);
            pending.extend_from_slice(value);
        }
    }

    /// Writes everything appended so far and syncs it to disk.
    pub fn sync(&self) -> io::Result<()> {
        let mut segment = self.segment.lock().map_err(|_| poisoned())?;
        let bytes = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return Err(poisoned()),
        };
        if !bytes.is_empty() {
            segment.file.write_all(&bytes)?;
        }
        segment.file.sync_data()
    }

    /// Starts a new segment; returns its number. Every record appended
    /// before this call is in an older segment or in the pending buffer.
    pub fn rotate(&self) -> io::Result<u64> {
        self.sync()?;
        let mut segment = self.segment.lock().map_err(|_| poisoned())?;
        let next = segment.number + 1;
        segment.file = create_segment(&self.dir, next)?;
        segment.number = next;
        sync_dir(&self.dir);
        Ok(next)
    }

    /// Deletes every segment numbered below `keep_from`.
    pub fn delete_before(&self, keep_from: u64) -> io::Result<()> {
        for number in segments(&self.dir)? {
            if number < keep_from {
                fs::remove_file(segment_path(&self.dir, number))?;
            }
        }
        sync_dir(&self.dir);
        Ok(())
    }

    /// Deletes the given (replayed) segments.
    pub fn delete(&self, numbers: &[u64]) -> io::Result<()> {
        for number in numbers {
            fs::remove_file(segment_path(&self.dir, *number))?;
        }
        sync_dir(&self.dir);
        Ok(())
    }
}

fn poisoned() -> io::Error {
    io::Error::other("write-ahead log lock poisoned")
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("wal-{number:016}.log"))
}

fn create_segment(dir: &Path, number: u64) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, number))
}

/// Segment numbers present in `dir`, ascending.
fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut numbers: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("wal-")?
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

/// Reads the whole records of one segment; stops at a torn tail.
fn read_segment(path: &Path, out: &mut Vec<Record>) -> io::Result<()> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut at = 0;
    while at + HEADER <= bytes.len() {
        let len =
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let crc = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        let Some(body) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if len < 16 || crc32fast::hash(body) != crc {
            break;
        }
        out.push(Record {
            key: body[..16].to_vec(),
            value: body[16..].to_vec(),
        });
        at += HEADER + len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_records_come_back_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, old, _) = Wal::open(dir.path()).unwrap();
            assert!(old.is_empty());
            wal.append(&[1; 16], b"one");
            wal.append(&[2; 16], b"two");
            wal.sync().unwrap();
        }
        // A crash mid-write leaves half a record at the end.
        let last = segments(dir.path()).unwrap()[0];
        let mut f = OpenOptions::new()
            .append(true)
            .open(segment_path(dir.path(), last))
            .unwrap();
        f.write_all(&[40, 0, 0, 0, 1, 2]).unwrap();
        let (_, records, replayed) = Wal::open(dir.path()).unwrap();
        let values: Vec<&[u8]> = records.iter().map(|r| r.value.as_slice()).collect();
        assert_eq!(values, vec![b"one".as_slice(), b"two".as_slice()]);
        assert_eq!(replayed, vec![last]);
    }

    #[test]
    fn rotation_lets_old_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = Wal::open(dir.path()).unwrap();
        wal.append(&[1; 16], b"old");
        let keep = wal.rotate().unwrap();
        wal.append(&[2; 16], b"new");
        wal.sync().unwrap();
        wal.delete_before(keep).unwrap();
        drop(wal);
        let (_, records, _) = Wal::open(dir.path()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].value, b"new");
    }
}
