//! `softnet download`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use softnet::download::{download_mnist, DownloadOptions, FileStatus, Progress};

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
    let mut opts = DownloadOptions::new(&args.dir);
    if !args.mirrors.is_empty() {
        opts.mirrors = args.mirrors;
    }
    opts.timeout = Duration::from_secs(args.timeout);
    if std::io::stderr().is_terminal() && !args.quiet {
        opts.progress = Some(progress_bars());
    }
    let summary = download_mnist(opts)?;
    if !args.quiet {
        for f in &summary.files {
            match &f.status {
                FileStatus::AlreadyPresent => {
                    println!("{}: already present, sha-256 verified", f.path.display())
                }
                FileStatus::Downloaded {
                    url,
                    bytes,
                    resumed,
                    ..
                } => println!(
                    "{}: {bytes} bytes from {url}{}, sha-256 verified",
                    f.path.display(),
                    if *resumed { " (resumed)" } else { "" }
                ),
            }
        }
    }
    Ok(())
}
