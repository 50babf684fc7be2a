//! Revoked access tokens: a denied lobby entry, a participant removed by a doctor or by an
//! operator. A revocation is kept by token id (`jti`) until the token's own expiry (`exp`), so
//! it outlives the room it was made in: a room closes when everyone has been gone for
//! `rooms.departure_timeout`, and the token must stay refused when the room is created again.
//!
//! The store sits behind [`RevocationStore`], owned by the room registry, so a store shared by
//! several nodes (Redis) can take its place. Two implementations here: [`MemoryRevocations`]
//! (forgets everything at restart) and [`FileRevocations`], which also appends each revocation
//! to a JSON-lines file and reads it back at start.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// One revoked token. `exp` is the token's own expiry (Unix seconds): after it the token is
/// refused as expired anyway, so the revocation can be dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub jti: String,
    pub room: String,
    pub exp: u64,
}

/// Where revocations live. Called on room tasks and in the WebSocket handler: must not block
/// for long. Times are Unix seconds, passed in so the rules are tested without a clock.
pub trait RevocationStore: Send + Sync + 'static {
    /// Records a revocation. Never fails: a store that cannot persist it keeps it in memory and
    /// logs why (a call must not break because a disk is full).
    fn revoke(&self, r: Revocation, now: u64);
    /// Whether the token `jti` of `room` is revoked at `now`.
    fn is_revoked(&self, room: &str, jti: &str, now: u64) -> bool;
    /// Revocations held that have not expired at `now`.
    fn live(&self, now: u64) -> usize;
}

/// Shared store handle.
pub type SharedRevocations = Arc<dyn RevocationStore>;

/// Revocations in memory, forgotten at restart.
#[derive(Debug, Default)]
pub struct MemoryRevocations {
    /// (room, jti) -> exp.
    map: Mutex<HashMap<(String, String), u64>>,
}

impl MemoryRevocations {
    fn insert(&self, r: Revocation, now: u64) {
        let mut map = lock(&self.map);
        // Expired entries go on every insert: revocations are rare (a doctor's or an operator's
        // action), so the map stays as small as the tokens still alive.
        map.retain(|_, exp| *exp > now);
        if r.exp > now {
            let e = map.entry((r.room, r.jti)).or_insert(0);
            *e = (*e).max(r.exp);
        }
    }

    fn entries(&self, now: u64) -> Vec<Revocation> {
        lock(&self.map)
            .iter()
            .filter(|(_, exp)| **exp > now)
            .map(|((room, jti), exp)| Revocation {
                jti: jti.clone(),
                room: room.clone(),
                exp: *exp,
            })
            .collect()
    }
}

impl RevocationStore for MemoryRevocations {
    fn revoke(&self, r: Revocation, now: u64) {
        self.insert(r, now);
    }

    fn is_revoked(&self, room: &str, jti: &str, now: u64) -> bool {
        lock(&self.map)
            .get(&(room.to_owned(), jti.to_owned()))
            .is_some_and(|exp| *exp > now)
    }

    fn live(&self, now: u64) -> usize {
        lock(&self.map).values().filter(|exp| **exp > now).count()
    }
}

/// What [`FileRevocations::open`] found in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Revocations still in force, kept.
    pub kept: usize,
    /// Revocations of tokens that have expired since, dropped.
    pub expired: usize,
    /// Lines that are not a revocation (a write cut short by a crash, a hand edit), skipped.
    pub skipped: usize,
}

/// Revocations in memory and in an append-only JSON-lines file (`{"jti","room","exp"}` per
/// line), read back and compacted at start.
///
/// Each revocation is written and synced before `revoke` returns: revocations are rare, and
/// one that was acknowledged to the doctor must survive a crash as well as a restart. One
/// process per file: two servers appending to the same file would not see each other's
/// revocations until their next start.
#[derive(Debug)]
pub struct FileRevocations {
    mem: MemoryRevocations,
    path: PathBuf,
    file: Mutex<File>,
}

impl FileRevocations {
    /// Reads `path` (absent: empty), drops expired entries and unreadable lines, rewrites the
    /// file with what is left (through a temporary file and a rename, so a crash here loses
    /// nothing) and opens it for appending. Errors when the file cannot be read or written:
    /// a configured store that does not work is a configuration error, found at start.
    pub fn open(path: &Path, now: u64) -> std::io::Result<(Self, LoadReport)> {
        let mem = MemoryRevocations::default();
        let mut report = LoadReport::default();
        match File::open(path) {
            Ok(f) => {
                for line in BufReader::new(f).split(b'\n') {
                    let line = line?;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match serde_json::from_slice::<Revocation>(&line) {
                        Ok(r) if r.jti.is_empty() || r.room.is_empty() => report.skipped += 1,
                        Ok(r) if r.exp <= now => report.expired += 1,
                        Ok(r) => mem.insert(r, now),
                        Err(_) => report.skipped += 1,
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let live = mem.entries(now);
        report.kept = live.len();
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        {
            let mut out = File::create(&tmp)?;
            for r in &live {
                out.write_all(&line_of(r))?;
            }
            out.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let file = OpenOptions::new().append(true).open(path)?;
        Ok((
            FileRevocations {
                mem,
                path: path.to_owned(),
                file: Mutex::new(file),
            },
            report,
        ))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, r: &Revocation) -> std::io::Result<()> {
        let mut f = lock(&self.file);
        // One write per line: with O_APPEND a line is never interleaved with another.
        f.write_all(&line_of(r))?;
        f.sync_data()
    }
}

impl RevocationStore for FileRevocations {
    fn revoke(&self, r: Revocation, now: u64) {
        if r.exp <= now {
            return;
        }
        if let Err(e) = self.append(&r) {
            tracing::warn!(
                room = %r.room,
                file = %self.path.display(),
                error = %e,
                "could not write a revocation to auth.revocations_file; it holds until restart"
            );
        }
        self.mem.insert(r, now);
    }

    fn is_revoked(&self, room: &str, jti: &str, now: u64) -> bool {
        self.mem.is_revoked(room, jti, now)
    }

    fn live(&self, now: u64) -> usize {
        self.mem.live(now)
    }
}

fn line_of(r: &Revocation) -> Vec<u8> {
    // Serializing three plain fields cannot fail; an empty line (skipped at load) if it did.
    let mut v = serde_json::to_vec(r).unwrap_or_default();
    v.push(b'\n');
    v
}

/// A poisoned lock only means another thread panicked mid-update; the map is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use super::*;

    fn rev(jti: &str, room: &str, exp: u64) -> Revocation {
        Revocation {
            jti: jti.into(),
            room: room.into(),
            exp,
        }
    }

    /// A fresh path under the system's temporary directory, removed on drop.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "kham-revocations-{tag}-{}-{}.jsonl",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_file(&p);
            TempPath(p)
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn kept_until_the_token_expires_then_dropped() {
        let s = MemoryRevocations::default();
        s.revoke(rev("j1", "r", 1000), 100);
        assert!(s.is_revoked("r", "j1", 100));
        assert!(s.is_revoked("r", "j1", 999));
        assert!(!s.is_revoked("r", "j1", 1000), "gone at the token's expiry");
        // Bound to its room: the same id elsewhere is another token.
        assert!(!s.is_revoked("other", "j1", 100));
        assert!(!s.is_revoked("r", "j2", 100));
        // An expired entry is pruned by the next revocation.
        s.revoke(rev("j2", "r", 3000), 1500);
        assert_eq!(lock(&s.map).len(), 1);
        assert_eq!(s.live(1500), 1);
        // Already expired: nothing to keep.
        s.revoke(rev("j3", "r", 10), 1500);
        assert!(!s.is_revoked("r", "j3", 5));
    }

    #[test]
    fn file_round_trip_survives_a_restart() {
        let p = TempPath::new("round-trip");
        {
            let (s, report) = FileRevocations::open(&p.0, 100).unwrap();
            assert_eq!(report, LoadReport::default(), "no file yet: empty");
            s.revoke(rev("denied", "room-a", 5000), 100);
            s.revoke(rev("removed", "room-b", 300), 100);
            assert!(s.is_revoked("room-a", "denied", 100));
        }
        // "Restart": a new store from the same file.
        let (s, report) = FileRevocations::open(&p.0, 200).unwrap();
        assert_eq!(report.kept, 2);
        assert!(s.is_revoked("room-a", "denied", 200));
        assert!(s.is_revoked("room-b", "removed", 200));
        drop(s);
        // Later, one token has expired: dropped from memory and from the file.
        let (s, report) = FileRevocations::open(&p.0, 400).unwrap();
        assert_eq!((report.kept, report.expired), (1, 1));
        assert!(!s.is_revoked("room-b", "removed", 400));
        assert!(s.is_revoked("room-a", "denied", 400));
        let text = std::fs::read_to_string(&p.0).unwrap();
        assert_eq!(text.lines().count(), 1, "compacted: {text}");
        assert!(text.contains("\"denied\"") && !text.contains("\"removed\""));
    }

    #[test]
    fn corrupt_lines_are_skipped_and_the_rest_kept() {
        let p = TempPath::new("corrupt");
        let good = String::from_utf8(line_of(&rev("ok", "r", 9000))).unwrap();
        let mut content =
            format!("not json\n{good}{{\"jti\":\"no-exp\",\"room\":\"r\"}}\n\n").into_bytes();
        content.extend_from_slice(b"\xff\xfe\n{\"jti\":\"\",\"room\":\"r\",\"exp\":9000}\n");
        content.extend_from_slice(b"{\"jti\":\"torn\",\"ro");
        std::fs::write(&p.0, &content).unwrap();
        let (s, report) = FileRevocations::open(&p.0, 100).unwrap();
        assert_eq!(
            report,
            LoadReport {
                kept: 1,
                expired: 0,
                skipped: 5
            }
        );
        assert!(s.is_revoked("r", "ok", 100));
        // The torn last line is gone, so the next append starts on a line of its own.
        s.revoke(rev("after", "r", 9000), 100);
        drop(s);
        let (s, report) = FileRevocations::open(&p.0, 100).unwrap();
        assert_eq!((report.kept, report.skipped), (2, 0));
        assert!(s.is_revoked("r", "after", 100));
    }

    #[test]
    fn unwritable_file_is_an_error_at_start() {
        let dir = TempPath::new("no-such-dir");
        let path = dir.0.join("revocations.jsonl");
        assert!(FileRevocations::open(&path, 0).is_err());
    }

    #[test]
    fn a_failed_write_keeps_the_revocation_in_memory() {
        let p = TempPath::new("write-fails");
        let (mut s, _) = FileRevocations::open(&p.0, 0).unwrap();
        // Swap the append handle for a read-only one: every write now fails.
        s.file = Mutex::new(File::open(&p.0).unwrap());
        s.revoke(rev("j", "r", 100), 0);
        assert!(s.is_revoked("r", "j", 0));
    }
}
