//! Fetching the four MNIST files from public mirrors, with SHA-256 verification.
//!
//! Each file is checked against the SHA-256 of its **decompressed** content ([`MNIST_FILES`]),
//! so a mirror that re-compressed the data (different gzip bytes, same IDX content) passes, and
//! a corrupted or tampered copy is refused whatever its compression.
//!
//! A file is downloaded to `DIR/.NAME.partial`, verified, synced to disk and renamed to
//! `DIR/NAME`, so `DIR/NAME` is either absent, the old file, or a complete verified copy. A
//! transfer that breaks off leaves its partial file behind; the next attempt asks the server for
//! the rest with an HTTP `Range` request and starts over if the server does not honour it (or if
//! the resumed copy fails verification, e.g. because the bytes came from a different mirror).
//!
//! ```no_run
//! use softnet::download::{download_mnist, DownloadOptions};
//! let summary = download_mnist(DownloadOptions::new("data/mnist"))?;
//! for f in &summary.files {
//!     println!("{}: {:?}", f.name, f.status);
//! }
//! # Ok::<(), softnet::download::DownloadError>(())
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

/// Public mirrors of the MNIST gz files, tried in order. Each is a URL prefix to which the file
/// name is appended.
pub const DEFAULT_MIRRORS: &[&str] = &[
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];

/// The four MNIST files: file name and the SHA-256 (lowercase hex) of its decompressed content.
pub const MNIST_FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

/// Largest response body accepted for one file. The biggest MNIST file is 9.9 MB compressed
/// and 47 MB raw, so even an uncompressed-in-gzip copy fits; a server sending more is broken.
const MAX_DOWNLOAD_BYTES: u64 = 128 << 20;

/// Largest decompressed content hashed. Stops a gzip bomb from burning CPU forever; no MNIST
/// file comes close (47 MB), so a larger stream could not have matched anyway.
const MAX_DECOMPRESSED_BYTES: u64 = 64 << 20;

/// Size of the copy buffer, and so the granularity of progress reports.
const CHUNK: usize = 64 << 10;

/// Progress of one transfer, handed to [`DownloadOptions::progress`] when a transfer starts and
/// after each chunk.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// File name, e.g. `train-images-idx3-ubyte.gz`.
    pub file: &'a str,
    /// Full URL being fetched.
    pub url: &'a str,
    /// Bytes of the file on disk so far (including a resumed prefix).
    pub downloaded: u64,
    /// Total size of the file if the server said so.
    pub total: Option<u64>,
}

/// A progress callback.
pub type ProgressFn = Box<dyn FnMut(&Progress<'_>)>;

/// Where to put the files and where to fetch them from.
pub struct DownloadOptions {
    /// Destination folder (created if missing).
    pub dir: PathBuf,
    /// URL prefixes tried in order for each file; the file name is appended (a `/` is inserted
    /// if the prefix lacks one).
    pub mirrors: Vec<String>,
    /// Called when a transfer starts and after each chunk received.
    pub progress: Option<ProgressFn>,
    /// Limit on connecting, on waiting for the response and on each read of the body. Not a
    /// limit on the whole transfer, which on a slow link may take longer.
    pub timeout: Duration,
}

impl DownloadOptions {
    /// Options for `dir` with [`DEFAULT_MIRRORS`], no progress callback and a 30 s timeout.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DownloadOptions {
            dir: dir.into(),
            mirrors: DEFAULT_MIRRORS.iter().map(|m| m.to_string()).collect(),
            progress: None,
            timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("dir", &self.dir)
            .field("mirrors", &self.mirrors)
            .field("progress", &self.progress.as_ref().map(|_| "<callback>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// The file was already there and verified; nothing was fetched.
    AlreadyPresent,
    /// The file was fetched and verified.
    Downloaded {
        /// The URL it came from.
        url: String,
        /// Bytes received over the network in the successful transfer.
        bytes: u64,
        /// Whether the transfer continued a partial file with a `Range` request.
        resumed: bool,
        /// Whether a file of that name was there before but failed verification (it was
        /// replaced).
        replaced_bad_file: bool,
    },
}

/// The outcome for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOutcome {
    /// File name.
    pub name: String,
    /// Where it now is.
    pub path: PathBuf,
    /// Whether it was fetched.
    pub status: FileStatus,
}

/// The outcome of [`download_mnist`]: one entry per file, in [`MNIST_FILES`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadSummary {
    /// One entry per file.
    pub files: Vec<FileOutcome>,
}

/// Why one mirror did not give a verified copy of one file.
#[derive(Debug)]
pub enum FailureReason {
    /// The server answered with a status other than 200 or 206.
    Status(u16),
    /// Connecting, sending or receiving failed (includes timeouts, refused connections, DNS,
    /// TLS and connections closed early).
    Transport(String),
    /// The body was larger than any MNIST file could be.
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The content did not have the expected SHA-256; the copy was deleted.
    Checksum {
        /// The expected SHA-256 (hex).
        expected: String,
        /// The SHA-256 of what was received (hex).
        actual: String,
    },
    /// What was received was not a readable gzip stream; the copy was deleted.
    Corrupt(String),
    /// Writing the partial file failed.
    Io(io::Error),
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Status(s) => write!(f, "http status {s}"),
            FailureReason::Transport(e) => write!(f, "{e}"),
            FailureReason::TooLarge { limit } => {
                write!(f, "response larger than {limit} bytes")
            }
            FailureReason::Checksum { expected, actual } => write!(
                f,
                "checksum mismatch: sha-256 of the decompressed content is {actual}, expected {expected}"
            ),
            FailureReason::Corrupt(e) => write!(f, "not a valid gzip file: {e}"),
            FailureReason::Io(e) => write!(f, "writing the partial file failed: {e}"),
        }
    }
}

/// One mirror tried for one file, and why it failed.
#[derive(Debug)]
pub struct MirrorFailure {
    /// The full URL tried.
    pub url: String,
    /// Why it did not give a verified copy.
    pub reason: FailureReason,
}

/// Errors of downloading and verifying MNIST files.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The mirror list was empty.
    #[error("no mirrors given for {file}")]
    NoMirrors {
        /// The file that could not be fetched.
        file: String,
    },
    /// Every mirror was tried for a file and none gave a verified copy.
    #[error("{file}: no mirror gave a verified copy:{}", list_failures(.failures))]
    AllMirrorsFailed {
        /// The file that could not be fetched.
        file: String,
        /// One entry per mirror, in the order tried.
        failures: Vec<MirrorFailure>,
    },
    /// A local file's decompressed content does not have the expected SHA-256.
    #[error("{}: checksum mismatch: sha-256 of the decompressed content is {actual}, expected {expected}", .path.display())]
    Mismatch {
        /// The file checked.
        path: PathBuf,
        /// The expected SHA-256 (hex).
        expected: String,
        /// The SHA-256 found (hex).
        actual: String,
    },
    /// A local file starts like gzip but cannot be decompressed, or is absurdly large.
    #[error("{}: not a valid gzip file: {reason}", .path.display())]
    Corrupt {
        /// The file checked.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file [`verify_dir`] looks for is in neither its gz nor its raw form.
    #[error("{}: missing (neither the .gz nor the uncompressed file exists)", .path.display())]
    Missing {
        /// The gz path looked for.
        path: PathBuf,
    },
    /// A file-system operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// One mirror a line, indented under the message.
fn list_failures(failures: &[MirrorFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("\n  {}: {}", f.url, f.reason))
        .collect()
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Why hashing a stream failed (internal; mapped to the callers' error types).
enum HashError {
    Io(io::Error),
    Corrupt(String),
}

/// SHA-256 (lowercase hex) of the decompressed content of `r` if it starts with the gzip magic
/// number, else of its raw content. Several concatenated gzip members are read as one stream,
/// as `gunzip` does, since parallel compressors write them.
fn hash_content<R: Read>(r: R) -> Result<String, HashError> {
    let mut r = BufReader::with_capacity(CHUNK, r);
    // Peek without consuming: the BufReader's buffer holds the start of the stream. (Callers
    // pass files and slices, whose first read fills the buffer unless the input is shorter.)
    let is_gzip = io::BufRead::fill_buf(&mut r)
        .map_err(HashError::Io)?
        .starts_with(&[0x1f, 0x8b]);
    let mut hasher = Sha256::new();
    let copied = if is_gzip {
        let mut dec = MultiGzDecoder::new(r).take(MAX_DECOMPRESSED_BYTES + 1);
        io::copy(&mut dec, &mut hasher).map_err(|e| HashError::Corrupt(e.to_string()))?
    } else {
        let mut raw = r.take(MAX_DECOMPRESSED_BYTES + 1);
        io::copy(&mut raw, &mut hasher).map_err(HashError::Io)?
    };
    if copied > MAX_DECOMPRESSED_BYTES {
        return Err(HashError::Corrupt(format!(
            "content larger than {MAX_DECOMPRESSED_BYTES} bytes"
        )));
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that the SHA-256 of the file's content equals `expected_sha256` (hex, either case).
/// A gzip file is hashed decompressed, anything else as it is, so both `NAME.gz` and its
/// uncompressed form pass against the same constant.
pub fn verify_file(path: &Path, expected_sha256: &str) -> Result<(), DownloadError> {
    let file = File::open(path).map_err(io_err(path))?;
    let actual = hash_content(file).map_err(|e| match e {
        HashError::Io(source) => DownloadError::Io {
            path: path.to_path_buf(),
            source,
        },
        HashError::Corrupt(reason) => DownloadError::Corrupt {
            path: path.to_path_buf(),
            reason,
        },
    })?;
    if actual.eq_ignore_ascii_case(expected_sha256) {
        Ok(())
    } else {
        Err(DownloadError::Mismatch {
            path: path.to_path_buf(),
            expected: expected_sha256.to_ascii_lowercase(),
            actual,
        })
    }
}

/// Verifies the four MNIST files in `dir`, each found as `NAME.gz` or, failing that, as the
/// uncompressed `NAME`. Returns the paths checked, in [`MNIST_FILES`] order, or the first
/// failure.
pub fn verify_dir(dir: &Path) -> Result<Vec<PathBuf>, DownloadError> {
    let mut checked = Vec::with_capacity(MNIST_FILES.len());
    for (name, sha) in MNIST_FILES {
        let gz = dir.join(name);
        let raw = dir.join(name.trim_end_matches(".gz"));
        let path = if gz.is_file() {
            gz
        } else if raw.is_file() {
            raw
        } else {
            return Err(DownloadError::Missing { path: gz });
        };
        verify_file(&path, sha)?;
        checked.push(path);
    }
    Ok(checked)
}

/// Downloads (or finds already present and verified) the four MNIST files into `opts.dir`.
/// Stops at the first file no mirror could supply; files finished before stay.
pub fn download_mnist(mut opts: DownloadOptions) -> Result<DownloadSummary, DownloadError> {
    let mut files = Vec::with_capacity(MNIST_FILES.len());
    for (name, sha) in MNIST_FILES {
        files.push(download_file(&mut opts, name, sha)?);
    }
    Ok(DownloadSummary { files })
}

/// Downloads one file `name` into `opts.dir`, verifying it against `expected_sha256` (of the
/// decompressed content), unless a verified copy is already there. Mirrors are tried in order;
/// the error lists each mirror tried and why it failed.
pub fn download_file(
    opts: &mut DownloadOptions,
    name: &str,
    expected_sha256: &str,
) -> Result<FileOutcome, DownloadError> {
    let dir = opts.dir.clone();
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let path = dir.join(name);
    let mut replaced_bad_file = false;
    if path.exists() {
        match verify_file(&path, expected_sha256) {
            Ok(()) => {
                return Ok(FileOutcome {
                    name: name.to_string(),
                    path,
                    status: FileStatus::AlreadyPresent,
                })
            }
            // A bad or unreadable copy is fetched again and replaced by the rename.
            Err(DownloadError::Mismatch { .. } | DownloadError::Corrupt { .. }) => {
                replaced_bad_file = true;
            }
            Err(e) => return Err(e),
        }
    }
    if opts.mirrors.is_empty() {
        return Err(DownloadError::NoMirrors {
            file: name.to_string(),
        });
    }
    let partial = dir.join(format!(".{name}.partial"));
    let agent = make_agent(opts.timeout);
    let mut failures = Vec::new();
    for mirror in opts.mirrors.clone() {
        let url = join_url(&mirror, name);
        let mut fetch = Fetch {
            agent: &agent,
            url: &url,
            file: name,
            partial: &partial,
            progress: &mut opts.progress,
        };
        match fetch.run(expected_sha256) {
            Ok((bytes, resumed)) => {
                fs::rename(&partial, &path).map_err(io_err(&path))?;
                sync_dir(&dir).map_err(io_err(&dir))?;
                return Ok(FileOutcome {
                    name: name.to_string(),
                    path,
                    status: FileStatus::Downloaded {
                        url,
                        bytes,
                        resumed,
                        replaced_bad_file,
                    },
                });
            }
            Err(reason) => failures.push(MirrorFailure { url, reason }),
        }
    }
    Err(DownloadError::AllMirrorsFailed {
        file: name.to_string(),
        failures,
    })
}

fn make_agent(timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        // Statuses are inspected here: a 404 is a reason to try the next mirror, not an error
        // to bubble up.
        .http_status_as_error(false)
        .timeout_resolve(Some(timeout))
        .timeout_connect(Some(timeout))
        .timeout_send_request(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_per_read(Some(timeout))
        .user_agent(concat!("softnet/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::new_with_config(config)
}

fn join_url(mirror: &str, name: &str) -> String {
    if mirror.ends_with('/') {
        format!("{mirror}{name}")
    } else {
        format!("{mirror}/{name}")
    }
}

/// Makes a rename in `dir` durable. Directories cannot be opened for syncing on every
/// platform; where they cannot, the rename is as durable as the OS makes it.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// One file from one mirror.
struct Fetch<'a> {
    agent: &'a ureq::Agent,
    url: &'a str,
    file: &'a str,
    partial: &'a Path,
    progress: &'a mut Option<ProgressFn>,
}

/// What one transfer did, short of verification.
enum Transfer {
    /// The body was written; this many bytes came over the network; resumed or not.
    Done(u64, bool),
    /// The server did not honour the `Range` request usefully; start over without it.
    Restart,
}

impl Fetch<'_> {
    /// Fetches into the partial file and verifies it; on success the partial file is complete,
    /// synced and verified. Returns the bytes received and whether the transfer resumed.
    fn run(&mut self, expected: &str) -> Result<(u64, bool), FailureReason> {
        let mut may_resume = true;
        loop {
            let offset = if may_resume {
                fs::metadata(self.partial).map(|m| m.len()).unwrap_or(0)
            } else {
                0
            };
            let (bytes, resumed) = match self.transfer(offset)? {
                Transfer::Done(bytes, resumed) => (bytes, resumed),
                Transfer::Restart => {
                    may_resume = false;
                    continue;
                }
            };
            let verdict = File::open(self.partial)
                .map_err(FailureReason::Io)
                .and_then(|f| {
                    hash_content(f).map_err(|e| match e {
                        HashError::Io(e) => FailureReason::Io(e),
                        HashError::Corrupt(e) => FailureReason::Corrupt(e),
                    })
                })
                .and_then(|actual| {
                    if actual.eq_ignore_ascii_case(expected) {
                        Ok(())
                    } else {
                        Err(FailureReason::Checksum {
                            expected: expected.to_ascii_lowercase(),
                            actual,
                        })
                    }
                });
            match verdict {
                Ok(()) => return Ok((bytes, resumed)),
                Err(reason) => {
                    // A bad copy is never left behind to be mistaken for a good prefix.
                    let _ = fs::remove_file(self.partial);
                    if resumed {
                        // The prefix may have come from another mirror or an older file:
                        // try once more from scratch before blaming this mirror.
                        may_resume = false;
                        continue;
                    }
                    return Err(reason);
                }
            }
        }
    }

    /// Fetches `self.url` into the partial file, asking for bytes from `offset` on if it is
    /// non-zero. The partial file is synced before returning `Done`.
    fn transfer(&mut self, offset: u64) -> Result<Transfer, FailureReason> {
        let mut req = self.agent.get(self.url);
        if offset > 0 {
            req = req.header("Range", format!("bytes={offset}-"));
        }
        let resp = req
            .call()
            .map_err(|e| FailureReason::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let resumed = match status {
            200 => false,
            206 if offset > 0 && content_range_start(&resp) == Some(offset) => true,
            // A range we did not ask for, or one that does not start where we are, or "range
            // not satisfiable" (a complete partial file, or a changed one): start over.
            206 | 416 if offset > 0 => return Ok(Transfer::Restart),
            _ => return Err(FailureReason::Status(status)),
        };
        let start = if resumed { offset } else { 0 };
        let body = resp.into_body();
        let total = body.content_length().map(|n| n + start);
        if total.is_some_and(|t| t > MAX_DOWNLOAD_BYTES) {
            return Err(FailureReason::TooLarge {
                limit: MAX_DOWNLOAD_BYTES,
            });
        }
        let mut out = if resumed {
            OpenOptions::new().append(true).open(self.partial)
        } else {
            File::create(self.partial)
        }
        .map_err(FailureReason::Io)?;
        let mut reader = body
            .into_with_config()
            .limit(MAX_DOWNLOAD_BYTES - start + 1)
            .reader();
        let mut buf = vec![0u8; CHUNK];
        let mut done = start;
        self.report(done, total);
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Keep what arrived: the next attempt resumes from it. Flush so the
                    // length on disk is the length received.
                    let _ = out.flush();
                    return Err(FailureReason::Transport(e.to_string()));
                }
            };
            out.write_all(&buf[..n]).map_err(FailureReason::Io)?;
            done += n as u64;
            if done > MAX_DOWNLOAD_BYTES {
                drop(out);
                let _ = fs::remove_file(self.partial);
                return Err(FailureReason::TooLarge {
                    limit: MAX_DOWNLOAD_BYTES,
                });
            }
            self.report(done, total);
        }
        out.sync_all().map_err(FailureReason::Io)?;
        Ok(Transfer::Done(done - start, resumed))
    }

    fn report(&mut self, downloaded: u64, total: Option<u64>) {
        if let Some(cb) = self.progress.as_mut() {
            cb(&Progress {
                file: self.file,
                url: self.url,
                downloaded,
                total,
            });
        }
    }
}

/// The first byte position of a `Content-Range: bytes START-END/TOTAL` header.
fn content_range_start(resp: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    let v = resp.headers().get("content-range")?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (start, _) = rest.split_once('-')?;
    start.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;

    fn gz(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    // SHA-256("abc"), from FIPS 180-2.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn hashes_raw_content() {
        assert_eq!(hash_content(&b"abc"[..]).ok().unwrap(), ABC);
    }

    #[test]
    fn hashes_decompressed_content_whatever_the_compression() {
        let a = gz(b"abc", 1);
        let mut b = gz(b"ab", 9);
        // Two gzip members, as pigz writes: read as one stream.
        b.extend(gz(b"c", 0));
        assert_ne!(a, b);
        assert_eq!(hash_content(&a[..]).ok().unwrap(), ABC);
        assert_eq!(hash_content(&b[..]).ok().unwrap(), ABC);
    }

    #[test]
    fn truncated_gzip_is_corrupt() {
        let a = gz(&[7u8; 1000], 6);
        match hash_content(&a[..a.len() / 2]) {
            Err(HashError::Corrupt(_)) => {}
            _ => panic!("a truncated gzip stream must be reported as corrupt"),
        }
    }

    #[test]
    fn empty_and_one_byte_inputs_hash_raw() {
        assert_eq!(
            hash_content(&b""[..]).ok().unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hash_content(&[0x1fu8][..]).ok().unwrap(),
            hex(&Sha256::digest([0x1fu8]))
        );
    }

    #[test]
    fn verify_file_reports_path_and_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gz");
        fs::write(&p, gz(b"abd", 6)).unwrap();
        let err = verify_file(&p, &ABC.to_uppercase()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("x.gz"), "{msg}");
        assert!(msg.contains(ABC), "{msg}");
        assert!(msg.contains(&hex(&Sha256::digest(b"abd"))), "{msg}");
        fs::write(&p, gz(b"abc", 6)).unwrap();
        verify_file(&p, &ABC.to_uppercase()).unwrap();
    }

    #[test]
    fn verify_dir_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = verify_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&err, DownloadError::Missing { path } if path.ends_with(MNIST_FILES[0].0))
        );
        assert!(err
            .to_string()
            .contains("train-images-idx3-ubyte.gz: missing"));
    }

    #[test]
    fn content_range_parsing() {
        let r = |v: &str| {
            let resp = ureq::http::Response::builder()
                .header("content-range", v)
                .body(ureq::Body::builder().data(""))
                .unwrap();
            content_range_start(&resp)
        };
        assert_eq!(r("bytes 100-199/200"), Some(100));
        assert_eq!(r("bytes 0-0/1"), Some(0));
        assert_eq!(r("bytes */200"), None);
        assert_eq!(r("items 1-2/3"), None);
    }

    #[test]
    fn url_joining() {
        assert_eq!(join_url("http://a/b/", "f.gz"), "http://a/b/f.gz");
        assert_eq!(join_url("http://a/b", "f.gz"), "http://a/b/f.gz");
    }

    #[test]
    fn constants_are_lowercase_hex_sha256() {
        for (name, sha) in MNIST_FILES {
            assert!(name.ends_with(".gz"));
            assert_eq!(sha.len(), 64);
            assert!(sha
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
    }
}
