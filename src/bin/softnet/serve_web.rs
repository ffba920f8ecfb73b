//! `softnet serve-web`: serves the digit pad (`web/`: the page, its WebAssembly classifier
//! and the models `web/build.sh` trains) over HTTP on this machine. A static file server on
//! std::net, one thread per connection, GET and HEAD only, nothing outside the folder.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

/// Flags of `softnet serve-web`.
#[derive(Debug, clap::Args)]
pub struct ServeWebArgs {
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8028)]
    port: u16,
    /// Address to listen on. The default serves this machine only; 0.0.0.0 serves the
    /// network (the pad then works from a phone on the same network).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Folder to serve: the page, softnet_web.wasm and models/ (built by web/build.sh).
    #[arg(long, value_name = "DIR", default_value = "web")]
    dir: PathBuf,
}

/// Longest request head (request line and headers) read before giving up on a client.
const MAX_HEAD: u64 = 16 * 1024;

pub fn run(args: ServeWebArgs) -> anyhow::Result<()> {
    let root = args
        .dir
        .canonicalize()
        .with_context(|| format!("{}: cannot serve this folder (run softnet serve-web from the repository root, or give --dir)", args.dir.display()))?;
    anyhow::ensure!(
        root.join("index.html").is_file(),
        "{}: no index.html in this folder (the digit pad is web/ in the repository)",
        root.display()
    );
    if !root.join("softnet_web.wasm").is_file() {
        eprintln!(
            "warning: {}: no softnet_web.wasm yet; build it and the models with web/build.sh",
            root.display()
        );
    }
    let listener = TcpListener::bind(SocketAddr::new(args.bind, args.port))
        .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
    let addr = listener.local_addr()?;
    // The first line is what scripts read to find the port (with --port 0).
    println!(
        "serving {} at http://{addr}/ (Ctrl-C stops)",
        root.display()
    );
    std::io::stdout().flush()?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let root = root.clone();
        std::thread::spawn(move || {
            // A client that goes away mid-answer is its own business.
            let _ = serve(stream, &root);
        });
    }
    Ok(())
}

/// Answers one request on `stream` from the files under `root` (canonical).
fn serve(stream: TcpStream, root: &Path) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(std::io::Read::take(stream.try_clone()?, MAX_HEAD));
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers: nothing in them changes the answer.
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut stream = stream;
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"GET or HEAD only\n",
            true,
        );
    }
    let head_only = method == "HEAD";
    match resolve(root, target) {
        Some(path) => match std::fs::read(&path) {
            Ok(body) => respond(
                &mut stream,
                "200 OK",
                content_type(&path),
                &body,
                !head_only,
            ),
            Err(_) => not_found(&mut stream, target, head_only),
        },
        None => not_found(&mut stream, target, head_only),
    }
}

fn not_found(stream: &mut TcpStream, target: &str, head_only: bool) -> std::io::Result<()> {
    let body = format!("not found: {target}\n");
    respond(
        stream,
        "404 Not Found",
        "text/plain; charset=utf-8",
        body.as_bytes(),
        !head_only,
    )
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    // no-store: a rebuilt model or module is what the next reload gets.
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if with_body {
        stream.write_all(body)?;
    }
    stream.flush()
}

/// The file a request target names under `root`, or `None` for anything outside it (`..`,
/// absolute paths, symbolic links leading out), undecodable, or not a regular file. `/` and
/// folders give their index.html.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let path = percent_decode(path.strip_prefix('/')?)?;
    let mut file = root.to_path_buf();
    for component in Path::new(&path).components() {
        match component {
            Component::Normal(part) => file.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if file.is_dir() {
        file.push("index.html");
    }
    let file = file.canonicalize().ok()?;
    (file.starts_with(root) && file.is_file()).then_some(file)
}

/// `%XX` escapes decoded; `None` if they are malformed or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "wasm" => "application/wasm",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn site() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<p>pad</p>").unwrap();
        std::fs::create_dir(dir.path().join("models")).unwrap();
        std::fs::write(dir.path().join("models/a b.safetensors"), [1u8, 2, 3]).unwrap();
        dir
    }

    #[test]
    fn targets_resolve_inside_the_folder_only() {
        let dir = site();
        let root = dir.path().canonicalize().unwrap();
        assert_eq!(resolve(&root, "/"), Some(root.join("index.html")));
        assert_eq!(
            resolve(&root, "/index.html?v=2"),
            Some(root.join("index.html"))
        );
        assert_eq!(
            resolve(&root, "/models/a%20b.safetensors"),
            Some(root.join("models/a b.safetensors"))
        );
        for bad in [
            "/../etc/passwd",
            "/models/../../x",
            "//etc/passwd",
            "index.html",
            "/%2e%2e/x",
            "/%zz",
            "/nope",
        ] {
            assert_eq!(resolve(&root, bad), None, "{bad}");
        }
    }

    #[test]
    fn serves_files_with_their_type_and_refuses_the_rest() {
        let dir = site();
        let root = dir.path().canonicalize().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(4) {
                serve(stream.unwrap(), &root).unwrap();
            }
        });
        let ask = |request: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(request.as_bytes()).unwrap();
            let mut answer = Vec::new();
            s.read_to_end(&mut answer).unwrap();
            answer
        };
        let page = String::from_utf8(ask("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).unwrap();
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(page.ends_with("\r\n\r\n<p>pad</p>"), "{page}");
        let model = ask("GET /models/a%20b.safetensors HTTP/1.1\r\n\r\n");
        assert!(model.ends_with(b"Content-Length: 3\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n\x01\x02\x03"));
        let missing = String::from_utf8(ask("GET /../secret HTTP/1.1\r\n\r\n")).unwrap();
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        let post = String::from_utf8(ask("POST / HTTP/1.1\r\n\r\n")).unwrap();
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    }
}
