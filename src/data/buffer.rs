//! Buffers for whole data files, which the kernel may back with 2 MiB pages.
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

/// Reads a whole file into a [`large_buffer`] (what `std::fs::read` does, with the hint).
pub(crate) fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata().map_or(0, |m| m.len());
    let mut bytes = large_buffer(usize::try_from(size).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        let content: Vec<u8> = (0..5 * HUGE_PAGE + 123).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        assert_eq!(read_file(&path).unwrap(), content);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(read_file(&path).unwrap(), b"");
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
