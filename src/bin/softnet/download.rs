//! `softnet download`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use softnet::download::{download_mnist, DownloadOptions, DownloadSummary, FileStatus, Progress};

/// Flags of `softnet download`.
#[derive(Debug, clap::Args)]
pub struct DownloadArgs {
    /// Folder to put the four MNIST files in (created if missing).
    #[arg(long, value_name = "DIR", default_value = "data/mnist")]
    dir: PathBuf,
    /// URL prefix of a mirror to fetch from, tried in the order given; replaces the built-in
    /// list (the file name is appended).
    #[arg(long = "mirror", value_name = "URL")]
    mirrors: Vec<String>,
    /// Seconds to wait for a connection, a response or each read.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

/// A progress bar per file, on stderr, when it is a terminal.
fn progress_bars() -> softnet::download::ProgressFn {
    let mut current: Option<(String, indicatif::ProgressBar)> = None;
    Box::new(move |p: &Progress<'_>| {
        if current.as_ref().is_none_or(|(file, _)| file != p.file) {
            if let Some((_, old)) = current.take() {
                old.finish();
            }
            let bar = indicatif::ProgressBar::new(p.total.unwrap_or(0));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:28} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .expect("a valid template"),
            );
            bar.set_message(p.file.to_string());
            current = Some((p.file.to_string(), bar));
        }
        if let Some((_, bar)) = &current {
            bar.set_position(p.downloaded);
            if p.total == Some(p.downloaded) {
                bar.finish();
            }
        }
    })
}

pub fn run(args: DownloadArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout);
    let summary = fetch(&args.dir, &args.mirrors, timeout, !args.quiet)?;
    if !args.quiet {
        for line in outcomes(&summary) {
            println!("{line}");
        }
    }
    Ok(())
}

/// Downloads the four files into `dir` from `mirrors` (none: the built-in list), with
/// progress bars when `progress` and stderr is a terminal. A folder this call created is
/// removed again if the download fails and left it empty.
pub fn fetch(
    dir: &Path,
    mirrors: &[String],
    timeout: Duration,
    progress: bool,
) -> anyhow::Result<DownloadSummary> {
    let mut opts = DownloadOptions::new(dir);
    if !mirrors.is_empty() {
        opts.mirrors = mirrors.to_vec();
    }
    opts.timeout = timeout;
    if progress && std::io::stderr().is_terminal() {
        opts.progress = Some(progress_bars());
    }
    // The folders the download will create: `dir` and its missing parents.
    let created: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    let result = download_mnist(opts);
    if result.is_err() {
        for d in &created {
            // Fails unless empty: a partial file stays, for the next attempt to resume.
            if std::fs::remove_dir(d).is_err() {
                break;
            }
        }
    }
    Ok(result?)
}

/// One line per file: where it came from, or that it was already there.
pub fn outcomes(summary: &DownloadSummary) -> Vec<String> {
    summary
        .files
        .iter()
        .map(|f| match &f.status {
            FileStatus::AlreadyPresent => {
                format!("{}: already present, sha-256 verified", f.path.display())
            }
            FileStatus::Downloaded {
                url,
                bytes,
                resumed,
                ..
            } => format!(
                "{}: {bytes} bytes from {url}{}, sha-256 verified",
                f.path.display(),
                if *resumed { " (resumed)" } else { "" }
            ),
        })
        .collect()
}
