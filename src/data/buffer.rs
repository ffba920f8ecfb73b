//! Buffers for whole data files, which the kernel may back with 2 MiB pages, and the files'
//! bytes themselves, mapped where the system allows.
//!
//! A freshly loaded MNIST is about 55 MB of new memory. In 4 KiB pages that is some 13,000
//! page faults, about a tenth of the `softnet train` process on a 2-core VM; in 2 MiB pages
//! it is a few dozen. Linux hands out such transparent huge pages only where asked
//! (`/sys/kernel/mm/transparent_hugepage/enabled` is `madvise` on most distributions), so
//! the buffers ask.

use std::io::Read;
use std::path::Path;

/// Size of a transparent huge page on x86-64 and most aarch64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// An empty buffer with room for `capacity` bytes. On Linux the 2 MiB-aligned part of that
/// room is marked for transparent huge pages; elsewhere it is `Vec::with_capacity`.
pub(crate) fn large_buffer(capacity: usize) -> Vec<u8> {
    let buffer = Vec::with_capacity(capacity);
    if capacity >= 2 * HUGE_PAGE {
        advise_huge_pages(&buffer);
    }
    buffer
}

/// `len` zero bytes in a buffer marked as [`large_buffer`]'s is. The zeros cost nothing
/// up front: a buffer this large comes straight from the kernel (`calloc` over `mmap`), and
/// its pages are cleared when first written.
pub(crate) fn large_zeroed(len: usize) -> Vec<u8> {
    let buffer = vec![0u8; len];
    if len >= 2 * HUGE_PAGE {
        advise_huge_pages(&buffer);
    }
    buffer
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(buffer: &Vec<u8>) {
    let start = buffer.as_ptr() as usize;
    let first = start.next_multiple_of(HUGE_PAGE);
    let end = (start + buffer.capacity()) / HUGE_PAGE * HUGE_PAGE;
    if end > first {
        // SAFETY: `[first, end)` lies inside the buffer's own allocation (rounded inwards
        // to whole huge pages), so no other object's memory is touched. MADV_HUGEPAGE only
        // changes how the kernel backs those pages, never their contents; on failure (a
        // kernel without transparent huge pages) the memory stays as it was, so the result
        // is ignored.
        unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_buffer: &Vec<u8>) {}

/// A whole file's bytes: mapped into memory, or read into a buffer where it cannot be
/// mapped (an empty file, a pipe, a system without mappings).
#[derive(Debug)]
pub(crate) enum FileBytes {
    /// The file, mapped read-only.
    Mapped(memmap2::Mmap),
    /// The file, read.
    Read(Vec<u8>),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(map) => map,
            FileBytes::Read(bytes) => bytes,
        }
    }
}

impl FileBytes {
    /// The bytes as a buffer of their own (a mapped file is copied once).
    pub(crate) fn into_vec(self) -> Vec<u8> {
        match self {
            FileBytes::Read(bytes) => bytes,
            FileBytes::Mapped(map) => {
                let mut bytes = large_buffer(map.len());
                bytes.extend_from_slice(&map);
                bytes
            }
        }
    }
}

/// The whole file at `path`, mapped when possible, else read.
///
/// Mapping a file that is in the page cache costs about a millisecond for the 10 MB of
/// MNIST's training images; reading it costs ten, most of it faulting in the fresh buffer
/// the bytes are copied into, and the load cannot start before it is done.
pub(crate) fn map_file(path: &Path) -> std::io::Result<FileBytes> {
    let file = std::fs::File::open(path)?;
    let metadata = file.metadata()?;
    if metadata.is_file() && metadata.len() > 0 {
        // SAFETY: the mapping is read-only and private, and lives only while a load decodes
        // the file (loaders copy or inflate what they keep). Its bytes could change under
        // the slice only if another process rewrote the data file during that load, which
        // softnet never does; a file truncated meanwhile would end the process with SIGBUS
        // instead of an error.
        if let Ok(map) = unsafe { memmap2::Mmap::map(&file) } {
            return Ok(FileBytes::Mapped(map));
        }
    }
    read_open_file(file, metadata.len()).map(FileBytes::Read)
}

/// Reads the rest of `file` into a [`large_buffer`], about `size` bytes (a hint: pipes say
/// 0).
fn read_open_file(mut file: std::fs::File, size: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = large_buffer(usize::try_from(size).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_maps_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        let content: Vec<u8> = (0..5 * HUGE_PAGE + 123).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let mapped = map_file(&path).unwrap();
        assert!(
            matches!(mapped, FileBytes::Mapped(_)),
            "a regular file is mapped"
        );
        assert_eq!(&mapped[..], &content[..]);
        assert_eq!(mapped.into_vec(), content);
        // Nothing to map: read instead.
        std::fs::write(&path, b"").unwrap();
        let empty = map_file(&path).unwrap();
        assert!(matches!(empty, FileBytes::Read(_)));
        assert_eq!(&empty[..], b"");
        #[cfg(unix)]
        {
            let device = map_file(Path::new("/dev/null")).unwrap();
            assert!(matches!(device, FileBytes::Read(_)));
            assert!(device.is_empty());
        }
        assert!(map_file(&dir.path().join("missing")).is_err());
    }

    /// The kernel records the advice as the `hg` flag of the memory area; whether it then
    /// finds free huge pages depends on the machine, so that is not asserted.
    #[cfg(target_os = "linux")]
    #[test]
    fn large_buffers_are_marked_for_huge_pages() {
        if !Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
            eprintln!("this kernel has no transparent huge pages; nothing to check");
            return;
        }
        let flags_at = |address: usize| -> Vec<String> {
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
            let mut inside = false;
            for line in smaps.lines() {
                if let Some((range, _)) = line.split_once(' ') {
                    if let Some((lo, hi)) = range.split_once('-') {
                        if let (Ok(lo), Ok(hi)) =
                            (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                        {
                            inside = (lo..hi).contains(&address);
                            continue;
                        }
                    }
                }
                if let Some(flags) = line.strip_prefix("VmFlags:") {
                    if inside {
                        return flags.split_whitespace().map(str::to_owned).collect();
                    }
                }
            }
            panic!("no memory area holds {address:#x}");
        };
        let large = large_buffer(16 * HUGE_PAGE);
        let middle = large.as_ptr() as usize + 8 * HUGE_PAGE;
        assert!(
            flags_at(middle).iter().any(|f| f == "hg"),
            "{:?}",
            flags_at(middle)
        );
        let zeroed = large_zeroed(16 * HUGE_PAGE);
        assert!(zeroed.iter().all(|&b| b == 0));
        let middle = zeroed.as_ptr() as usize + 8 * HUGE_PAGE;
        assert!(flags_at(middle).iter().any(|f| f == "hg"));
        let plain: Vec<u8> = Vec::with_capacity(16 * HUGE_PAGE);
        let middle = plain.as_ptr() as usize + 8 * HUGE_PAGE;
        assert!(!flags_at(middle).iter().any(|f| f == "hg"));
    }
}
