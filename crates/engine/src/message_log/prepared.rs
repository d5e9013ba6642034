//! The next segment, made ahead: a thread of its own writes a file whole with zeros and
//! syncs it, and the writer renames it into place when the head segment is full.
//!
//! Why: a group's `fdatasync` commits the file system's journal whenever the file's size
//! or its blocks changed since the last one. Zeros written ahead by the writer a MiB at a
//! time still changed both once a MiB, so about fifty group syncs a second (at 45 MB/s of
//! log) committed the journal, and each commit carried whatever else the file system had
//! pending: the index checkpoint's new files and renames, and the discards of the blocks
//! freed since (this disk is mounted with `discard`, and a commit waits for them). Into
//! a segment already written and synced whole, a group's sync writes its own pages and
//! flushes the disk's cache, nothing else.
//!
//! The prepared file is not a segment until renamed: replay never sees it, and a start
//! removes one left half written. When it is not ready in time (a burst faster than the
//! preparer, a failed write), the writer makes the segment as before, with zeros ahead.

use crate::paced_write::finish_write_back;
use crate::record_log::sync_dir;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// The prepared file's name in the log's directory (not a segment's: no `.log`).
pub(super) const PREPARED_NAME: &str = "next-segment.zeros";

/// Zeros are written and sent to the disk this much at a time, each piece waited for
/// before the next: a group's sync queued behind one waits ~0.15 ms more at most.
const PIECE_BYTES: u64 = 256 * 1024;

/// Between pieces the disk is left to the writer's syncs for this long; 64 MiB then take
/// about 0.2 s, so the preparer keeps up with ~300 MB/s of log.
const PAUSE_BETWEEN_PIECES: Duration = Duration::from_micros(500);

/// A file is prepared only while the file system has this many segments' worth free
/// besides it: its zeros must never be what fills the disk under the log, SQLite or the
/// index (the writer then makes its segments as before, a MiB at a time).
const FREE_SEGMENTS_TO_PREPARE: u64 = 2;

pub(super) struct Preparer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    path: PathBuf,
    segment_bytes: u64,
    state: Mutex<State>,
    /// Woken when a file is wanted, when the ready one is taken, and when stopping.
    changed: Condvar,
    stop: AtomicBool,
}

#[derive(Default)]
struct State {
    /// The writer asked for the next segment (its head is far enough in).
    wanted: bool,
    ready: Option<File>,
}

impl Preparer {
    /// Removes a prepared file left by an earlier run (it may be half written) and starts
    /// the thread that prepares one of `segment_bytes` in `dir` whenever
    /// [`Preparer::want`] asks.
    pub(super) fn start(dir: &Path, segment_bytes: u64) -> std::io::Result<Preparer> {
        let path = dir.join(PREPARED_NAME);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let shared = Arc::new(Shared {
            path,
            segment_bytes,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let running = shared.clone();
        let thread = std::thread::Builder::new().name("sluice-segments".into()).spawn(move || {
            // Zeros for later may wait; requests and their syncs may not.
            crate::background::lower_this_thread_priority();
            run(&running)
        })?;
        Ok(Preparer { shared, thread: Some(thread) })
    }

    /// The prepared file renamed to `path`, the rename made durable (a new segment's name
    /// must survive a crash before anything in it is acknowledged), or `None` when none
    /// is ready or the rename failed (the writer then makes the segment itself). Either
    /// way the preparer goes on to the next one.
    pub(super) fn take(&self, path: &Path) -> Option<File> {
        let mut state = self.shared.state();
        let file = state.ready.take()?;
        // Renamed before the preparer may begin the next file under the same name.
        let renamed = std::fs::rename(&self.shared.path, path);
        drop(state);
        // A want that came while this one was ready can be served now.
        self.shared.changed.notify_all();
        match renamed.and_then(|()| sync_dir(path.parent().expect("a segment's path has a directory"))) {
            Ok(()) => Some(file),
            Err(e) => {
                tracing::warn!(error = %e, "renaming the prepared message log segment failed; the writer makes its own");
                None
            }
        }
    }

    /// Asks for the next segment to be prepared (if none is ready or under way).
    pub(super) fn want(&self) {
        self.shared.state().wanted = true;
        self.shared.changed.notify_all();
    }

    /// Waits until a prepared file is ready; panics after a minute (tests).
    #[cfg(test)]
    pub(super) fn wait_ready(&self) {
        let state = self.shared.state();
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, Duration::from_secs(60), |s| s.ready.is_none())
            .unwrap_or_else(|p| p.into_inner());
        assert!(state.ready.is_some(), "no segment prepared within a minute");
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        // Set under the lock, so that the thread cannot check it and then sleep through
        // the notification.
        let state = self.shared.state();
        self.shared.stop.store(true, Ordering::Relaxed);
        drop(state);
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

fn run(shared: &Shared) {
    loop {
        // A file is begun once the writer wants one and the last is taken.
        let state = shared.state();
        let mut state = shared
            .changed
            .wait_while(state, |s| !(shared.stopping() || s.wanted && s.ready.is_none()))
            .unwrap_or_else(|p| p.into_inner());
        if shared.stopping() {
            return;
        }
        state.wanted = false;
        drop(state);
        match prepare(shared) {
            Ok(Some(file)) => {
                shared.state().ready = Some(file);
                shared.changed.notify_all();
            }
            Ok(None) => {
                // Stopped midway: a start would remove it anyway.
                let _ = std::fs::remove_file(&shared.path);
                return;
            }
            Err(e) => {
                // Tried again when the writer next asks, a segment later.
                tracing::warn!(error = %e, "preparing the next message log segment failed; the writer makes its own");
                // Its zeros would hold disk space the log may need.
                let _ = std::fs::remove_file(&shared.path);
            }
        }
    }
}

/// Writes the prepared file whole with zeros and syncs it; `None` when stopped midway.
fn prepare(shared: &Shared) -> std::io::Result<Option<File>> {
    let dir = shared.path.parent().expect("the prepared file's path has a directory");
    let needed = shared.segment_bytes.saturating_mul(FREE_SEGMENTS_TO_PREPARE + 1);
    if free_bytes(dir)? < needed {
        return Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("less than {needed} bytes free for the next segment and room besides"),
        ));
    }
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&shared.path)?;
    let mut offset = 0;
    while offset < shared.segment_bytes {
        if shared.stopping() {
            return Ok(None);
        }
        let piece = PIECE_BYTES.min(shared.segment_bytes - offset);
        super::write_zeros(&file, offset, piece)?;
        // Where the file system refuses it, the final sync writes everything at once.
        let _ = finish_write_back(&file, offset, piece);
        offset += piece;
        std::thread::sleep(PAUSE_BETWEEN_PIECES);
    }
    file.sync_data()?;
    Ok(Some(file))
}

/// Bytes free for unprivileged use on the file system holding `dir`.
#[cfg(unix)]
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and `stats` points
    // to writable memory the size of a `statvfs`, which the call fills on success (0) and
    // which is read only then.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        stats.assume_init()
    };
    // Both are u64 here, narrower on some platforms (macOS's block counts are u32).
    #[allow(clippy::useless_conversion)]
    let (blocks, block_bytes) = (u64::from(stats.f_bavail), u64::from(stats.f_frsize));
    Ok(blocks.saturating_mul(block_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment the file system has no room for (with room besides) is not begun: no
    /// zeros are written to fill the disk, and the writer makes its segment itself.
    #[test]
    fn a_segment_is_not_prepared_without_room_for_it_and_more() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        let shared = |segment_bytes, stop| Shared {
            path: dir.path().join(PREPARED_NAME),
            segment_bytes,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(stop),
        };
        // Stopped from the start, so that a missing check writes nothing rather than half
        // the disk before this test fails.
        let err = prepare(&shared(free / FREE_SEGMENTS_TO_PREPARE, true)).expect_err("no room");
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
        assert!(!dir.path().join(PREPARED_NAME).exists(), "nothing written");
        let file = prepare(&shared(64 * 1024, false)).unwrap().expect("not stopped");
        assert_eq!(file.metadata().unwrap().len(), 64 * 1024);
        let zeros = std::fs::read(dir.path().join(PREPARED_NAME)).unwrap();
        assert!(zeros.iter().all(|b| *b == 0));
    }
}
