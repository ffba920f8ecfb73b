#[cfg(feature = "download")]
mod download;
#[cfg(feature = "render")]
mod preprocess;
