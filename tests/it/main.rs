#[cfg(feature = "download")]
mod download;
