//! Rewriting the sled database into a fresh directory, so values it
//! overwrote or removed (an erasure's) leave its files.
//!
//! Why: sled is log-structured. An overwritten or removed value stays in
//! its segment files until its garbage collection happens to reuse that
//! space (measured: a value overwritten, then removed, then flushed was
//! still in `db/db`; 20,000 later writes pushed it out, nothing bounds
//! when). `export` reads only the live values, so a database imported from
//! it holds no stale copy.
//!
//! When: at start, before the store opens the database, the one point where
//! no handle to it is open. An erasure leaves a marker file asking for it.
//! Swapping the database under a running server would need every reader
//! and writer of the store to go through a lock; this costs a restart.
//!
//! Crash safety: the copy is built in `db.rewrite`, renamed to `db.new`
//! once complete, then `db` → `db.old`, `db.new` → `db`, and only then are
//! `db.old` and the marker removed. A start after a crash at any step
//! finishes or redoes it (see `recover`).

use super::{StoreError, StoreResult};
use std::fs;
use std::io;
use std::path::Path;

const MARKER: &str = "db.rewrite-requested";

/// Asks for the database in `data_dir` to be rewritten at the next start.
pub(super) fn request(data_dir: &Path) -> io::Result<()> {
    let marker = data_dir.join(MARKER);
    fs::File::create(&marker)?.sync_all()?;
    sync_dir(data_dir)
}

/// Whether a rewrite is asked for (it runs at the next start).
pub fn requested(data_dir: &Path) -> bool {
    data_dir.join(MARKER).exists()
}

/// Rewrites `<data_dir>/db` when asked for (see the module doc); `config`
/// gives the settings for a database at a path.
pub(super) fn run_if_requested(
    data_dir: &Path,
    config: impl Fn(&Path) -> sled::Config,
) -> StoreResult<()> {
    let io_error = |what: &'static str, source: io::Error| StoreError::Io { what, source };
    recover(data_dir)
        .map_err(|e| io_error("database rewrite: finishing an interrupted rewrite", e))?;
    if !requested(data_dir) {
        return Ok(());
    }
    let (db, building, new) = (
        data_dir.join("db"),
        data_dir.join("db.rewrite"),
        data_dir.join("db.new"),
    );
    if !db.exists() {
        // Nothing to rewrite (a data dir whose database was never created).
        return fs::remove_file(data_dir.join(MARKER))
            .map_err(|e| io_error("database rewrite: marker", e));
    }
    let started = std::time::Instant::now();
    if building.exists() {
        fs::remove_dir_all(&building)
            .map_err(|e| io_error("database rewrite: removing a partial copy", e))?;
    }
    {
        // Both databases flush as they drop: never during a transaction
        // (see `store::SLED_EXCLUSIVE`). At start nothing else commits.
        let _exclusive = super::sled_exclusive();
        let old = super::open_sled(&config(&db))?;
        let fresh = config(&building).open()?;
        fresh.import(old.export());
        fresh.flush()?;
    }
    fs::rename(&building, &new).map_err(|e| io_error("database rewrite: renaming the copy", e))?;
    sync_dir(data_dir).map_err(|e| io_error("database rewrite: sync", e))?;
    recover(data_dir).map_err(|e| io_error("database rewrite: swapping in the copy", e))?;
    fs::remove_file(data_dir.join(MARKER)).map_err(|e| io_error("database rewrite: marker", e))?;
    sync_dir(data_dir).map_err(|e| io_error("database rewrite: sync", e))?;
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "database rewritten without the erased values' stale copies"
    );
    Ok(())
}

/// Finishes the steps after a complete copy (`db.new`): swap it in, drop
/// the old one.
fn recover(data_dir: &Path) -> io::Result<()> {
    let (db, new, old) = (
        data_dir.join("db"),
        data_dir.join("db.new"),
        data_dir.join("db.old"),
    );
    if new.exists() {
        if db.exists() {
            fs::rename(&db, &old)?;
            sync_dir(data_dir)?;
        }
        fs::rename(&new, &db)?;
        sync_dir(data_dir)?;
    }
    if old.exists() {
        fs::remove_dir_all(&old)?;
        sync_dir(data_dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(path: &Path) -> sled::Config {
        sled::Config::new().path(path)
    }

    fn files_hold(dir: &Path, needle: &[u8]) -> bool {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if fs::read(&path)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle)
                {
                    return true;
                }
            }
        }
        false
    }

    #[test]
    fn a_removed_value_stays_in_sleds_files_until_the_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = config(&dir.path().join("db")).open().unwrap();
            let t = db.open_tree("t").unwrap();
            t.insert("keep", "kept value").unwrap();
            t.insert("gone", "erased-value@example.org").unwrap();
            db.flush().unwrap();
            t.remove("gone").unwrap();
            db.flush().unwrap();
        }
        assert!(
            files_hold(dir.path(), b"erased-value@example.org"),
            "sled kept no stale copy: the rewrite may be unneeded"
        );
        request(dir.path()).unwrap();
        run_if_requested(dir.path(), config).unwrap();
        assert!(!requested(dir.path()));
        assert!(!files_hold(dir.path(), b"erased-value@example.org"));
        let db = super::super::open_sled(&config(&dir.path().join("db"))).unwrap();
        let t = db.open_tree("t").unwrap();
        assert_eq!(t.get("keep").unwrap().unwrap(), b"kept value".as_slice());
        assert!(t.get("gone").unwrap().is_none());
    }

    #[test]
    fn a_rewrite_interrupted_after_its_copy_is_finished_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["db", "db.new"] {
            let db = config(&dir.path().join(name)).open().unwrap();
            db.insert("which", name).unwrap();
            db.flush().unwrap();
        }
        // Crashed after `db` → `db.old`? Or before: both are handled.
        run_if_requested(dir.path(), config).unwrap();
        assert!(!dir.path().join("db.new").exists() && !dir.path().join("db.old").exists());
        let db = super::super::open_sled(&config(&dir.path().join("db"))).unwrap();
        assert_eq!(db.get("which").unwrap().unwrap(), b"db.new".as_slice());
    }
}
