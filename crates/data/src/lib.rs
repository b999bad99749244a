//! Taper's data files: where they live (`--data-dir`, `TAPER_DATA_DIR`, a cache directory),
//! checksummed downloads, and the file formats the experiments read (IDX). No tensors here: the
//! experiments turn bytes into data sets; a user of the training loop alone does not compile an
//! HTTP client.

// A library returns errors: no `unwrap`/`expect` outside tests.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod download;
pub mod idx;

use std::path::{Path, PathBuf};

pub use download::{data_dir, fetch, Checksum, Remote};

/// Errors of the data crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// A data file that is missing, corrupt or malformed.
    #[error("data: {0}")]
    Data(String),
}

/// Result with the data crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |error| Error::Io { path: path.to_path_buf(), error }
}
