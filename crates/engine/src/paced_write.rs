//! Writing a large file beside the writer without stalling its syncs.
//!
//! A background thread that writes tens of MiB into the page cache leaves them for the
//! kernel to write back all at once (ext4 starts it at the rename that replaces the old
//! file), and the writer's next `fdatasync` then waits behind that whole burst: the
//! message index of ~300,000 messages (~28 MiB) rewritten under `sqs-send` at 10,000
//! messages/s made the group commit beside its rename take 11–17 ms instead of ~0.3 ms,
//! and each such stall shows as a run of late requests in `bench/run.sh`'s half-peak p99.
//! Written in chunks whose write-back is started at once and waited for one chunk later,
//! at most two chunks are ever queued at the disk ahead of the writer's sync.

use std::fs::File;
use std::io::Write;

/// Bytes written (and sent to the disk) at a time. The disk here writes a MiB in about
/// 0.6 ms, so a sync queued behind two chunks waits about a millisecond more.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Writes a file (a new, empty one) in pieces, gathered into chunks: each chunk's
/// write-back is started as soon as it is written and finished before the chunk after
/// next is written; [`PacedWriter::finish`] writes the last, short one. Does not make
/// the file durable: that still takes `sync_all` (which then has little left to write).
///
/// Pacing is only a courtesy to the writer: where the file system refuses
/// `sync_file_range`, the rest is written unpaced, and a write-back that failed shows
/// in the `sync_all` that durability needs (or in the index's checksum when not synced).
pub struct PacedWriter<'f> {
    file: &'f mut File,
    pacer: Pacer,
    chunk: Vec<u8>,
}

impl<'f> PacedWriter<'f> {
    pub fn new(file: &'f mut File) -> PacedWriter<'f> {
        PacedWriter { file, pacer: Pacer::default(), chunk: Vec::with_capacity(CHUNK_BYTES) }
    }

    /// Writes what is still gathered; returns how many bytes the file was given in all.
    pub fn finish(mut self) -> std::io::Result<u64> {
        if !self.chunk.is_empty() {
            self.pacer.write(self.file, &self.chunk)?;
        }
        Ok(self.pacer.offset)
    }
}

impl Write for PacedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let taken = buf.len().min(CHUNK_BYTES - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..taken]);
        if self.chunk.len() == CHUNK_BYTES {
            self.pacer.write(self.file, &self.chunk)?;
            self.chunk.clear();
        }
        Ok(taken)
    }

    /// Chunks go out whole; [`PacedWriter::finish`] writes the last one.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where a paced write is: whether the file system takes `sync_file_range`, the chunk
/// written last (whose write-back the next one waits for) and the bytes written.
#[derive(Default)]
struct Pacer {
    unpaced: bool,
    previous: Option<(u64, usize)>,
    offset: u64,
}

impl Pacer {
    fn write(&mut self, file: &mut File, chunk: &[u8]) -> std::io::Result<()> {
        file.write_all(chunk)?;
        if !self.unpaced {
            self.unpaced = !(write_back(file, self.offset, chunk.len(), WriteBack::Start).is_ok()
                && self.previous.is_none_or(|(at, len)| write_back(file, at, len, WriteBack::Finish).is_ok()));
        }
        self.previous = Some((self.offset, chunk.len()));
        self.offset += chunk.len() as u64;
        Ok(())
    }
}

/// Starts writing `len` bytes of `file` from `offset` to the disk, without waiting.
pub(crate) fn start_write_back(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    write_back(file, offset, len as usize, WriteBack::Start)
}

/// Writes `len` bytes of `file` from `offset` to the disk and waits until they are
/// written (not flushed from the disk's cache).
pub(crate) fn finish_write_back(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    write_back(file, offset, len as usize, WriteBack::Finish)
}

enum WriteBack {
    /// Start writing the range's dirty pages to the disk; do not wait.
    Start,
    /// Wait until the range's pages are written to the disk (not flushed from its cache).
    Finish,
}

#[cfg(target_os = "linux")]
fn write_back(file: &File, offset: u64, len: usize, what: WriteBack) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let flags = match what {
        WriteBack::Start => libc::SYNC_FILE_RANGE_WRITE,
        WriteBack::Finish => {
            libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER
        }
    };
    // SAFETY: sync_file_range takes a file descriptor and three integers and shares no
    // memory with the caller; the descriptor is `file`'s, open for the whole call since
    // `file` is borrowed. An out-of-range offset or length is an error return, not UB.
    let result = unsafe { libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, flags) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Elsewhere the kernel writes back on its own schedule; the file is still written whole.
#[cfg(not(target_os = "linux"))]
fn write_back(_file: &File, _offset: u64, _len: usize, _what: WriteBack) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a file holds after `write` wrote to it through a `PacedWriter`.
    fn written(write: impl FnOnce(&mut PacedWriter<'_>)) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paced");
        let mut file = File::create(&path).unwrap();
        let mut paced = PacedWriter::new(&mut file);
        write(&mut paced);
        let length = paced.finish().unwrap();
        drop(file);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(length, bytes.len() as u64, "finish counts every byte");
        bytes
    }

    /// Two and a half chunks (the last one short, two waited for), written whole and in
    /// pieces of every size up to past a chunk (some straddling two chunks).
    #[test]
    fn a_file_written_whole_or_in_pieces_holds_every_byte_in_order() {
        let bytes: Vec<u8> = (0..CHUNK_BYTES * 5 / 2).map(|i| (i % 251) as u8).collect();
        assert_eq!(written(|paced| paced.write_all(&bytes).unwrap()), bytes);
        let in_pieces = written(|paced| {
            let mut rest = &bytes[..];
            let mut size = 1;
            while !rest.is_empty() {
                let (piece, after) = rest.split_at(size.min(rest.len()));
                paced.write_all(piece).unwrap();
                rest = after;
                size = (size * 3 + 7) % (CHUNK_BYTES + 100);
            }
        });
        assert_eq!(in_pieces, bytes);
    }

    #[test]
    fn an_empty_write_makes_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        assert_eq!(PacedWriter::new(&mut File::create(&path).unwrap()).finish().unwrap(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }
}
