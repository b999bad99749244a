//! Finding data files: in a data directory (`--data-dir`, else `TAPER_DATA_DIR`, else a cache
//! directory), downloaded when missing, and always checked against a known checksum.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use md5::Md5;
use sha1::{Digest, Sha1};

use crate::{io_err, Error, Result};

/// A file's expected digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// SHA-1, lowercase hex.
    Sha1(&'static str),
    /// MD5, lowercase hex (torchvision's digests for MNIST).
    Md5(&'static str),
    /// SHA-256, lowercase hex.
    Sha256(&'static str),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Checksum {
    /// Whether `bytes` have this digest.
    pub fn verify(&self, bytes: &[u8]) -> std::result::Result<(), String> {
        let (want, got) = match self {
            Checksum::Sha1(w) => (*w, hex(&Sha1::digest(bytes))),
            Checksum::Md5(w) => (*w, hex(&Md5::digest(bytes))),
            Checksum::Sha256(w) => (*w, hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes))),
        };
        if want == got {
            Ok(())
        } else {
            Err(format!("checksum mismatch: expected {want}, got {got}"))
        }
    }
}

/// A data file: its name in the data directory, where to download it and its digest.
#[derive(Debug, Clone, Copy)]
pub struct Remote {
    /// File name (may contain one `/`, e.g. `mnist/t10k-labels-idx1-ubyte.gz`).
    pub name: &'static str,
    /// Download URLs, tried in order.
    pub urls: &'static [&'static str],
    /// Expected digest.
    pub checksum: Checksum,
}

/// Where data files live: the explicit directory, else `TAPER_DATA_DIR`, else
/// `$XDG_CACHE_HOME/taper` or `~/.cache/taper`.
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(d) = explicit {
        return d.to_path_buf();
    }
    if let Some(d) = std::env::var_os("TAPER_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("."));
    cache.join("taper")
}

/// Returns the verified bytes of `remote` in `dir`, downloading it first when it is missing and
/// `download` is true. A missing file offline, a failed download and a checksum mismatch are
/// errors that say what to do.
pub fn fetch(remote: &Remote, dir: &Path, download: bool) -> Result<Vec<u8>> {
    let path = dir.join(remote.name);
    if !path.exists() {
        if !download {
            return Err(Error::Data(format!(
                "{} is missing: put it there, point --data-dir or TAPER_DATA_DIR at a directory holding `{}`, \
                 or allow the download",
                path.display(),
                remote.name
            )));
        }
        download_to(remote, &path)?;
    }
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    remote.checksum.verify(&bytes).map_err(|m| Error::Data(format!("{}: {m}", path.display())))?;
    Ok(bytes)
}

/// Downloads `remote` to `path` (atomically: a temporary file renamed into place once its
/// checksum is right).
pub fn download_to(remote: &Remote, path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let mut errors = Vec::new();
    for url in remote.urls {
        match get(url) {
            Ok(bytes) => match remote.checksum.verify(&bytes) {
                Ok(()) => {
                    let tmp = path.with_extension(format!("part{}", std::process::id()));
                    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
                    f.write_all(&bytes).and_then(|_| f.sync_all()).map_err(io_err(&tmp))?;
                    std::fs::rename(&tmp, path).map_err(io_err(path))?;
                    return Ok(());
                }
                Err(m) => errors.push(format!("{url}: {m}")),
            },
            Err(m) => errors.push(format!("{url}: {m}")),
        }
    }
    Err(Error::Data(format!("could not download {}: {}", remote.name, errors.join("; "))))
}

fn get(url: &str) -> std::result::Result<Vec<u8>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(120)))
        .build()
        .into();
    let resp = agent.get(url).call().map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    resp.into_body()
        .into_with_config()
        .limit(512 * 1024 * 1024)
        .reader()
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-file HTTP server on loopback that answers `count` requests.
    fn serve(body: Vec<u8>, status: &'static str, count: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(count) {
                let mut s = stream.unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
            }
        });
        format!("http://{addr}/file")
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    #[test]
    fn downloads_verifies_and_caches_over_loopback() {
        let body = b"hello taper".to_vec();
        let url = leak(serve(body.clone(), "200 OK", 1));
        let dir = std::env::temp_dir().join(format!("taper-dl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sha = leak(hex(&Sha1::digest(&body)));
        let remote =
            Remote { name: "sub/file.bin", urls: leak_urls(vec![url]), checksum: Checksum::Sha1(sha) };
        assert!(fetch(&remote, &dir, false).unwrap_err().to_string().contains("TAPER_DATA_DIR"));
        assert_eq!(fetch(&remote, &dir, true).unwrap(), body);
        // Cached: the server is gone, the file is read from disk.
        assert_eq!(fetch(&remote, &dir, true).unwrap(), body);
        // A corrupted cache is caught.
        std::fs::write(dir.join("sub/file.bin"), b"hellO taper").unwrap();
        assert!(fetch(&remote, &dir, true).unwrap_err().to_string().contains("checksum mismatch"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn leak_urls(v: Vec<&'static str>) -> &'static [&'static str] {
        Box::leak(v.into_boxed_slice())
    }

    #[test]
    fn a_wrong_download_or_a_server_error_is_not_kept() {
        let dir = std::env::temp_dir().join(format!("taper-dl-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let bad = leak(serve(b"not the file".to_vec(), "200 OK", 1));
        let missing = leak(serve(Vec::new(), "404 Not Found", 1));
        let remote = Remote {
            name: "f.bin",
            urls: leak_urls(vec![missing, bad]),
            checksum: Checksum::Md5("9fb629c4189551a2d022fa330f9573f3"),
        };
        let err = fetch(&remote, &dir, true).unwrap_err().to_string();
        assert!(err.contains("404") && err.contains("checksum mismatch"), "{err}");
        assert!(!dir.join("f.bin").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sha256_digests_are_checked() {
        // SHA-256 of "abc" (FIPS 180-2's example).
        let c = Checksum::Sha256("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(c.verify(b"abc").is_ok());
        assert!(c.verify(b"abd").unwrap_err().contains("checksum mismatch"));
    }

    #[test]
    fn data_dir_precedence() {
        assert_eq!(data_dir(Some(Path::new("/x"))), PathBuf::from("/x"));
    }
}
