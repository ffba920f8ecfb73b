//! `softnet::download` against a tiny HTTP server on 127.0.0.1 serving the real MNIST files
//! (from `../shared/data/mnist`), corrupted and re-compressed copies of them, and cut-off
//! transfers. Nothing here reaches beyond 127.0.0.1.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};
use softnet::download::{
    download_file, download_mnist, verify_dir, verify_file, DownloadError, DownloadOptions,
    FailureReason, FileStatus, MNIST_FILES,
};

const LABELS: &str = "t10k-labels-idx1-ubyte.gz";

fn labels_sha() -> &'static str {
    MNIST_FILES.iter().find(|(n, _)| *n == LABELS).unwrap().1
}

/// The real MNIST files the server hands out (a test that calls it is ignored where they
/// are absent: see `common`).
fn mnist_dir() -> PathBuf {
    crate::common::real_mnist_dir()
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(b).read_to_end(&mut out).unwrap();
    out
}

fn gzip(b: &[u8], level: u32) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn sha_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// How the test server answers one path.
#[derive(Clone)]
struct Route {
    body: Arc<Vec<u8>>,
    /// Honour `Range: bytes=N-` with a 206.
    ranges: bool,
    /// On the first request only: send the full `Content-Length` but close after this many
    /// bytes, like a dropped connection.
    cut_first_after: Option<usize>,
}

impl Route {
    fn new(body: Vec<u8>) -> Self {
        Route {
            body: Arc::new(body),
            ranges: true,
            cut_first_after: None,
        }
    }
}

/// A one-thread HTTP/1.1 server: GET only, one request per connection, 404 for unknown paths.
/// It stops when dropped, and on its own after a minute so a failing test cannot hang.
struct Server {
    base: String,
    stop: Arc<AtomicBool>,
    /// Each request as `"PATH range=HEADER"`.
    log: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(routes: HashMap<String, Route>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stop2, log2) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            let mut routes = routes;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = serve(stream, &mut routes, &log2);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Server {
            base,
            stop,
            log,
            thread: Some(thread),
        }
    }

    fn url(&self, prefix: &str) -> String {
        format!("{}/{prefix}/", self.base)
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    routes: &mut HashMap<String, Route>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    log.lock()
        .unwrap()
        .push(format!("{path} range={}", range.as_deref().unwrap_or("-")));
    let mut out = stream;
    let Some(route) = routes.get_mut(&path) else {
        out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    };
    let body = route.body.clone();
    let start = match (&range, route.ranges) {
        (Some(r), true) => r
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok()),
        _ => None,
    };
    let (status, slice, extra) = match start {
        Some(s) if s < body.len() => (
            "206 Partial Content",
            &body[s..],
            format!(
                "Content-Range: bytes {s}-{}/{}\r\n",
                body.len() - 1,
                body.len()
            ),
        ),
        Some(_) => (
            "416 Range Not Satisfiable",
            &body[..0],
            format!("Content-Range: bytes */{}\r\n", body.len()),
        ),
        None => ("200 OK", &body[..], String::new()),
    };
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        slice.len()
    )?;
    match route.cut_first_after.take() {
        Some(cut) => out.write_all(&slice[..cut.min(slice.len())])?,
        None => out.write_all(slice)?,
    }
    out.flush()
}

fn opts(dir: &Path, mirrors: &[String]) -> DownloadOptions {
    let mut o = DownloadOptions::new(dir);
    o.mirrors = mirrors.to_vec();
    o.timeout = Duration::from_secs(5);
    o
}

/// Entries of `dir` (names), sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A port with nothing listening on it: bind, note the port, close.
fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/mnist/")
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn downloads_all_four_verified_then_skips_them() {
    let src = mnist_dir();
    let routes = MNIST_FILES
        .iter()
        .map(|(n, _)| {
            (
                format!("/m/{n}"),
                Route::new(fs::read(src.join(n)).unwrap()),
            )
        })
        .collect();
    let server = Server::start(routes);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut o = opts(&dir, &[server.url("m")]);
    // Last progress report per file: (downloaded, total).
    type Seen = Arc<Mutex<HashMap<String, (u64, Option<u64>)>>>;
    let last: Seen = Arc::default();
    let last2 = last.clone();
    o.progress = Some(Box::new(move |p| {
        last2
            .lock()
            .unwrap()
            .insert(p.file.to_string(), (p.downloaded, p.total));
    }));
    let summary = download_mnist(o).unwrap();
    assert_eq!(summary.files.len(), 4);
    for (f, (name, _)) in summary.files.iter().zip(MNIST_FILES) {
        let want = fs::read(src.join(name)).unwrap();
        assert_eq!(f.name, name);
        assert_eq!(f.path, dir.join(name));
        assert_eq!(
            f.status,
            FileStatus::Downloaded {
                url: format!("{}{name}", server.url("m")),
                bytes: want.len() as u64,
                resumed: false,
                replaced_bad_file: false,
            }
        );
        assert_eq!(fs::read(&f.path).unwrap(), want, "{name}");
        let n = want.len() as u64;
        assert_eq!(last.lock().unwrap()[name], (n, Some(n)), "{name}");
    }
    // Nothing but the four files: no partial files left over.
    let mut names: Vec<String> = MNIST_FILES.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(listing(&dir), names);

    let requests = server.log().len();
    assert_eq!(requests, 4);
    let again = download_mnist(opts(&dir, &[server.url("m")])).unwrap();
    assert!(again
        .files
        .iter()
        .all(|f| f.status == FileStatus::AlreadyPresent));
    assert_eq!(
        server.log().len(),
        requests,
        "a verified file is not fetched again"
    );
    // `verify_dir` finds the raw form too; here the gz form, in MNIST_FILES order.
    let firsts: Vec<PathBuf> = MNIST_FILES.iter().map(|(n, _)| dir.join(n)).collect();
    fs::remove_file(&firsts[0]).unwrap();
    let err = verify_dir(&dir).unwrap_err();
    assert!(
        matches!(&err, DownloadError::Missing { path } if *path == firsts[0]),
        "{err}"
    );
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn corrupted_copy_is_refused_and_nothing_is_left_behind() {
    let src = mnist_dir();
    let good = fs::read(src.join(LABELS)).unwrap();
    // Valid gzip whose content differs in one label: only the checksum can catch it.
    let mut raw = gunzip(&good);
    raw[100] = (raw[100] + 1) % 10;
    let bad_sha = sha_hex(&raw);
    let path = format!("/bad/{LABELS}");
    let server = Server::start(HashMap::from([(path, Route::new(gzip(&raw, 6)))]));
    let tmp = tempfile::tempdir().unwrap();
    let err = download_file(
        &mut opts(tmp.path(), &[server.url("bad")]),
        LABELS,
        labels_sha(),
    )
    .unwrap_err();
    let url = format!("{}{LABELS}", server.url("bad"));
    match &err {
        DownloadError::AllMirrorsFailed { file, failures } => {
            assert_eq!(file, LABELS);
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].url, url);
            match &failures[0].reason {
                FailureReason::Checksum { expected, actual } => {
                    assert_eq!(expected, labels_sha());
                    assert_eq!(actual, &bad_sha);
                }
                other => panic!("expected a checksum failure, got {other:?}"),
            }
        }
        other => panic!("expected AllMirrorsFailed, got {other:?}"),
    }
    let msg = err.to_string();
    for part in [LABELS, url.as_str(), labels_sha(), bad_sha.as_str()] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    assert!(listing(tmp.path()).is_empty(), "{:?}", listing(tmp.path()));
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn damaged_gzip_bytes_are_refused_and_nothing_is_left_behind() {
    let src = mnist_dir();
    let mut bytes = fs::read(src.join(LABELS)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    let server = Server::start(HashMap::from([(format!("/x/{LABELS}"), Route::new(bytes))]));
    let tmp = tempfile::tempdir().unwrap();
    let err = download_file(
        &mut opts(tmp.path(), &[server.url("x")]),
        LABELS,
        labels_sha(),
    )
    .unwrap_err();
    let DownloadError::AllMirrorsFailed { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(
            failures[0].reason,
            FailureReason::Corrupt(_) | FailureReason::Checksum { .. }
        ),
        "{err}"
    );
    assert!(listing(tmp.path()).is_empty());
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn falls_back_to_the_next_mirror_when_the_first_404s() {
    let src = mnist_dir();
    let good = fs::read(src.join(LABELS)).unwrap();
    let server = Server::start(HashMap::from([(
        format!("/m2/{LABELS}"),
        Route::new(good.clone()),
    )]));
    let tmp = tempfile::tempdir().unwrap();
    let mirrors = [server.url("m1"), server.url("m2")];
    let out = download_file(&mut opts(tmp.path(), &mirrors), LABELS, labels_sha()).unwrap();
    assert_eq!(
        out.status,
        FileStatus::Downloaded {
            url: format!("{}{LABELS}", mirrors[1]),
            bytes: good.len() as u64,
            resumed: false,
            replaced_bad_file: false,
        }
    );
    assert_eq!(
        server.log(),
        [
            format!("/m1/{LABELS} range=-"),
            format!("/m2/{LABELS} range=-")
        ]
    );
    assert_eq!(fs::read(tmp.path().join(LABELS)).unwrap(), good);
}

#[test]
fn all_mirrors_failing_lists_each_and_why() {
    // Needs no MNIST files: nothing is served.
    let server = Server::start(HashMap::new());
    let tmp = tempfile::tempdir().unwrap();
    let mirrors = [closed_port_url(), server.url("nothing"), closed_port_url()];
    let t0 = Instant::now();
    let err = download_file(&mut opts(tmp.path(), &mirrors), LABELS, labels_sha()).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    let DownloadError::AllMirrorsFailed { file, failures } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(file, LABELS);
    let urls: Vec<String> = mirrors.iter().map(|m| format!("{m}{LABELS}")).collect();
    assert_eq!(
        failures.iter().map(|f| f.url.clone()).collect::<Vec<_>>(),
        urls
    );
    assert!(matches!(failures[0].reason, FailureReason::Transport(_)));
    assert!(matches!(failures[1].reason, FailureReason::Status(404)));
    assert!(matches!(failures[2].reason, FailureReason::Transport(_)));
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("{LABELS}: no mirror gave a verified copy:\n  ")),
        "{msg}"
    );
    // One mirror a line, in the order tried.
    let lines: Vec<&str> = msg.lines().skip(1).collect();
    assert_eq!(lines.len(), urls.len(), "{msg}");
    for (line, u) in lines.iter().zip(&urls) {
        assert!(line.starts_with(&format!("  {u}: ")), "{msg}");
    }
    assert!(msg.contains("http status 404"), "{msg}");
    assert!(listing(tmp.path()).is_empty());
}

#[test]
fn empty_mirror_list_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = download_file(&mut opts(tmp.path(), &[]), LABELS, labels_sha()).unwrap_err();
    assert_eq!(err.to_string(), format!("no mirrors given for {LABELS}"));
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn a_recompressed_mirror_passes() {
    let src = mnist_dir();
    let good = fs::read(src.join(LABELS)).unwrap();
    let recompressed = gzip(&gunzip(&good), 1);
    assert_ne!(recompressed, good);
    let server = Server::start(HashMap::from([(
        format!("/r/{LABELS}"),
        Route::new(recompressed.clone()),
    )]));
    let tmp = tempfile::tempdir().unwrap();
    let out = download_file(
        &mut opts(tmp.path(), &[server.url("r")]),
        LABELS,
        labels_sha(),
    )
    .unwrap();
    assert!(matches!(out.status, FileStatus::Downloaded { .. }));
    assert_eq!(fs::read(&out.path).unwrap(), recompressed);
    verify_file(&out.path, labels_sha()).unwrap();
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn an_interrupted_transfer_resumes_with_a_range_request() {
    let src = mnist_dir();
    let good = fs::read(src.join(LABELS)).unwrap();
    let cut = 1500;
    let mut route = Route::new(good.clone());
    route.cut_first_after = Some(cut);
    let server = Server::start(HashMap::from([(format!("/m/{LABELS}"), route)]));
    let tmp = tempfile::tempdir().unwrap();
    let mirrors = [server.url("m")];

    let err = download_file(&mut opts(tmp.path(), &mirrors), LABELS, labels_sha()).unwrap_err();
    let DownloadError::AllMirrorsFailed { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(failures[0].reason, FailureReason::Transport(_)),
        "{err}"
    );
    // What arrived is kept for the next attempt; the final name does not exist yet.
    let partial = tmp.path().join(format!(".{LABELS}.partial"));
    assert_eq!(fs::read(&partial).unwrap(), &good[..cut]);
    assert!(!tmp.path().join(LABELS).exists());

    let out = download_file(&mut opts(tmp.path(), &mirrors), LABELS, labels_sha()).unwrap();
    assert_eq!(
        out.status,
        FileStatus::Downloaded {
            url: format!("{}{LABELS}", mirrors[0]),
            bytes: (good.len() - cut) as u64,
            resumed: true,
            replaced_bad_file: false,
        }
    );
    assert_eq!(
        server.log(),
        [
            format!("/m/{LABELS} range=-"),
            format!("/m/{LABELS} range=bytes={cut}-")
        ]
    );
    assert_eq!(fs::read(&out.path).unwrap(), good);
    assert_eq!(listing(tmp.path()), [LABELS]);
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn a_server_ignoring_range_gets_a_fresh_full_transfer() {
    let src = mnist_dir();
    let good = fs::read(src.join(LABELS)).unwrap();
    let mut route = Route::new(good.clone());
    route.ranges = false;
    let server = Server::start(HashMap::from([(format!("/m/{LABELS}"), route)]));
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join(format!(".{LABELS}.partial")), &good[..1000]).unwrap();
    let out = download_file(
        &mut opts(tmp.path(), &[server.url("m")]),
        LABELS,
        labels_sha(),
    )
    .unwrap();
    let FileStatus::Downloaded { bytes, resumed, .. } = out.status else {
        panic!("{:?}", out.status)
    };
    assert_eq!((bytes, resumed), (good.len() as u64, false));
    assert_eq!(fs::read(&out.path).unwrap(), good);
    assert_eq!(listing(tmp.path()), [LABELS]);
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn a_stale_partial_file_of_other_bytes_is_discarded_and_refetched() {
    let src = mnist_dir();
    let good = fs::read(src.join(LABELS)).unwrap();
    let server = Server::start(HashMap::from([(
        format!("/m/{LABELS}"),
        Route::new(good.clone()),
    )]));
    let tmp = tempfile::tempdir().unwrap();
    // E.g. the prefix of a differently compressed copy from another mirror.
    fs::write(
        tmp.path().join(format!(".{LABELS}.partial")),
        vec![0xAB; 700],
    )
    .unwrap();
    let out = download_file(
        &mut opts(tmp.path(), &[server.url("m")]),
        LABELS,
        labels_sha(),
    )
    .unwrap();
    let FileStatus::Downloaded { bytes, resumed, .. } = out.status else {
        panic!("{:?}", out.status)
    };
    assert_eq!((bytes, resumed), (good.len() as u64, false));
    assert_eq!(
        server.log(),
        [
            format!("/m/{LABELS} range=bytes=700-"),
            format!("/m/{LABELS} range=-")
        ]
    );
    assert_eq!(fs::read(&out.path).unwrap(), good);
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn a_bad_existing_file_is_replaced() {
    let src = mnist_dir();
    let good = fs::read(src.join(LABELS)).unwrap();
    let server = Server::start(HashMap::from([(
        format!("/m/{LABELS}"),
        Route::new(good.clone()),
    )]));
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join(LABELS), b"not mnist").unwrap();
    let out = download_file(
        &mut opts(tmp.path(), &[server.url("m")]),
        LABELS,
        labels_sha(),
    )
    .unwrap();
    assert!(matches!(
        out.status,
        FileStatus::Downloaded {
            replaced_bad_file: true,
            ..
        }
    ));
    assert_eq!(fs::read(&out.path).unwrap(), good);
}

#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn verify_accepts_the_shared_files_and_their_uncompressed_form() {
    let src = mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    // Labels only, to keep it quick: the gz and the raw form against the same constant.
    let raw = gunzip(&fs::read(src.join(LABELS)).unwrap());
    let raw_path = tmp.path().join(LABELS.trim_end_matches(".gz"));
    fs::write(&raw_path, &raw).unwrap();
    verify_file(&src.join(LABELS), labels_sha()).unwrap();
    verify_file(&raw_path, labels_sha()).unwrap();
    let err = verify_file(&raw_path, MNIST_FILES[0].1).unwrap_err();
    assert!(matches!(err, DownloadError::Mismatch { .. }), "{err}");
}

/// `softnet download` and `--verify`, through the built binary.
#[cfg(feature = "cli")]
mod cli {
    use super::*;

    #[test]
    #[cfg_attr(
        any(softnet_no_mnist, not(feature = "gz")),
        ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
    )]
    fn cli_download_fetches_verifies_and_the_data_then_trains_with_verify() {
        let src = mnist_dir();
        let routes = MNIST_FILES
            .iter()
            .map(|(n, _)| {
                (
                    format!("/m/{n}"),
                    Route::new(fs::read(src.join(n)).unwrap()),
                )
            })
            .collect();
        let server = Server::start(routes);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        // A dead mirror first: the second one is used.
        let out = crate::cli::run_ok(
            crate::cli::softnet()
                .args(["download", "--dir"])
                .arg(&dir)
                .args(["--mirror", &closed_port_url(), "--mirror", &server.url("m")]),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().count(), 4, "{stdout}");
        assert!(
            stdout.contains(&format!("{}/m/{LABELS}, sha-256 verified", server.base)),
            "{stdout}"
        );
        for (n, _) in MNIST_FILES {
            assert_eq!(
                fs::read(dir.join(n)).unwrap(),
                fs::read(src.join(n)).unwrap()
            );
        }
        // Again: nothing fetched.
        let out = crate::cli::softnet()
            .args(["download", "--dir"])
            .arg(&dir)
            .args(["--mirror", &closed_port_url()])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout)
                .matches("already present, sha-256 verified")
                .count(),
            4
        );
        crate::cli::run_ok(
            crate::cli::softnet()
                .args([
                    "train",
                    "--steps",
                    "1",
                    "--eval-every",
                    "0",
                    "-q",
                    "--verify",
                    "--data",
                ])
                .arg(&dir),
        );
        // A flipped label: --verify refuses the folder, naming the file.
        let labels = dir.join(LABELS);
        let mut raw = gunzip(&fs::read(&labels).unwrap());
        raw[100] = (raw[100] + 1) % 10;
        fs::write(&labels, gzip(&raw, 6)).unwrap();
        let out = crate::cli::softnet()
            .args(["train", "--steps", "1", "-q", "--verify", "--data"])
            .arg(&dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with(&format!(
                "error: {}: checksum mismatch: sha-256 of the decompressed content is {}, expected {}",
                labels.display(),
                sha_hex(&raw),
                labels_sha()
            )),
            "{err}"
        );
    }

    #[test]
    #[cfg_attr(
        any(softnet_no_mnist, not(feature = "gz")),
        ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
    )]
    fn cli_download_refuses_a_corrupted_copy_and_reports_dead_mirrors() {
        let src = mnist_dir();
        let mut raw = gunzip(&fs::read(src.join(LABELS)).unwrap());
        raw[8] = (raw[8] + 1) % 10;
        let mut routes: HashMap<String, Route> = MNIST_FILES
            .iter()
            .map(|(n, _)| {
                (
                    format!("/bad/{n}"),
                    Route::new(fs::read(src.join(n)).unwrap()),
                )
            })
            .collect();
        routes.insert(format!("/bad/{LABELS}"), Route::new(gzip(&raw, 6)));
        let server = Server::start(routes);
        let tmp = tempfile::tempdir().unwrap();
        let dead = closed_port_url();
        let out = crate::cli::softnet()
            .args(["download", "--dir"])
            .arg(tmp.path())
            .args(["--mirror", &server.url("bad"), "--mirror", &dead])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with(&format!(
                "error: {LABELS}: no mirror gave a verified copy:\n  {}{LABELS}: checksum mismatch: \
                 sha-256 of the decompressed content is {}, expected {}\n  {dead}{LABELS}: ",
                server.url("bad"),
                sha_hex(&raw),
                labels_sha()
            )),
            "{err}"
        );
        // The files before came and were verified; the bad labels were not kept.
        assert_eq!(
            listing(tmp.path()),
            [
                "t10k-images-idx3-ubyte.gz",
                "train-images-idx3-ubyte.gz",
                "train-labels-idx1-ubyte.gz"
            ]
        );
    }

    /// The README's first command on a fresh machine: no data anywhere, so `softnet train`
    /// fetches the four files into ./data/mnist (from a loopback mirror standing in for the
    /// internet), verifies them and trains; the second run finds them.
    #[test]
    #[cfg_attr(
        any(softnet_no_mnist, not(feature = "gz")),
        ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
    )]
    fn train_on_a_fresh_machine_downloads_then_trains() {
        let src = mnist_dir();
        let routes = MNIST_FILES
            .iter()
            .map(|(n, _)| {
                (
                    format!("/m/{n}"),
                    Route::new(fs::read(src.join(n)).unwrap()),
                )
            })
            .collect();
        let server = Server::start(routes);
        let home = tempfile::tempdir().unwrap();
        let fresh = || {
            let mut cmd = crate::cli::softnet();
            cmd.current_dir(home.path()).env_remove("SOFTNET_OFFLINE");
            cmd.args(["train", "--steps", "20", "--eval-every", "0"]);
            cmd
        };
        // Offline: today's error, and nothing created.
        let out = fresh().arg("--offline").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with("error: MNIST data not found in data/mnist."),
            "{err}"
        );
        assert!(
            err.contains("Not downloaded: --offline or SOFTNET_OFFLINE=1 is set."),
            "{err}"
        );
        assert!(!home.path().join("data").exists());

        let out = crate::cli::run_ok(fresh().args(["--mirror", &server.url("m")]));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stdout
                .lines()
                .last()
                .unwrap_or("")
                .starts_with("Accuracy: 0."),
            "{stdout}"
        );
        assert!(
            stderr.starts_with("MNIST is not here yet: downloading the four files into data/mnist"),
            "{stderr}"
        );
        assert_eq!(stderr.matches(", sha-256 verified").count(), 4, "{stderr}");
        for (n, _) in MNIST_FILES {
            assert_eq!(
                fs::read(home.path().join("data/mnist").join(n)).unwrap(),
                fs::read(src.join(n)).unwrap()
            );
        }
        // The second run reads them: no request reaches the mirror.
        let requests = server.log().len();
        let again = crate::cli::run_ok(&mut fresh());
        assert_eq!(server.log().len(), requests);
        assert_eq!(again.stdout, out.stdout, "the same run, the same accuracy");
    }
}

/// A failed download leaves no empty folder behind. Needs no MNIST files: nothing answers.
#[cfg(feature = "cli")]
#[test]
fn cli_download_that_fails_removes_the_folder_it_made() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new/mnist");
    let (dead1, dead2) = (closed_port_url(), closed_port_url());
    let out = crate::cli::softnet()
        .args(["download", "--timeout", "5", "--dir"])
        .arg(&dir)
        .args(["--mirror", &dead1, "--mirror", &dead2])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[1].starts_with(&format!("  {dead1}train-images")),
        "{err}"
    );
    assert!(
        lines[2].starts_with(&format!("  {dead2}train-images")),
        "{err}"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
}
