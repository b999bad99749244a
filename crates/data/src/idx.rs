//! The IDX format (MNIST's, Fashion-MNIST's), gzip-compressed or raw: magic numbers, sizes and
//! labels are checked, and any malformed file is an error, never a panic.

use std::io::Read;

use crate::{Error, Result};

/// The largest decompressed file read (a bound against corrupt or hostile gzip streams); MNIST's
/// training images are 47 MB.
const MAX_BYTES: u64 = 1 << 30;

/// Parsed IDX images: `count` images of `rows × cols` bytes, row-major, one after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count · rows · cols` pixel bytes.
    pub pixels: Vec<u8>,
}

fn gunzip_if_needed(bytes: Vec<u8>, what: &str) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .take(MAX_BYTES)
            .read_to_end(&mut out)
            .map_err(|e| Error::Data(format!("{what}: corrupt gzip stream ({e})")))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// The big-endian `u32` at `at` (0 past the end: callers check lengths first).
fn be_u32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Parses an IDX image file (magic `0x00000803`); `what` names it in errors.
pub fn parse_images(bytes: Vec<u8>, what: &str) -> Result<Images> {
    let b = gunzip_if_needed(bytes, what)?;
    if b.len() < 16 {
        return Err(Error::Data(format!("{what}: truncated IDX header ({} bytes)", b.len())));
    }
    let magic = be_u32(&b, 0);
    if magic != 0x0803 {
        return Err(Error::Data(format!(
            "{what}: wrong IDX magic number {magic:#010x}, expected 0x00000803 (images)"
        )));
    }
    let (n, r, c) = (be_u32(&b, 4) as usize, be_u32(&b, 8) as usize, be_u32(&b, 12) as usize);
    let need = n.checked_mul(r).and_then(|x| x.checked_mul(c)).and_then(|x| x.checked_add(16));
    if need != Some(b.len()) {
        return Err(Error::Data(format!(
            "{what}: {n} images of {r}x{c} need {} bytes, the file has {}",
            need.map_or("more than 2^64".to_string(), |x| x.to_string()),
            b.len()
        )));
    }
    Ok(Images { count: n, rows: r, cols: c, pixels: b[16..].to_vec() })
}

/// Parses an IDX label file (magic `0x00000801`) of digit labels 0–9.
pub fn parse_labels(bytes: Vec<u8>, what: &str) -> Result<Vec<u8>> {
    let b = gunzip_if_needed(bytes, what)?;
    if b.len() < 8 {
        return Err(Error::Data(format!("{what}: truncated IDX header ({} bytes)", b.len())));
    }
    let magic = be_u32(&b, 0);
    if magic != 0x0801 {
        return Err(Error::Data(format!(
            "{what}: wrong IDX magic number {magic:#010x}, expected 0x00000801 (labels)"
        )));
    }
    let n = be_u32(&b, 4) as usize;
    if Some(b.len()) != n.checked_add(8) {
        return Err(Error::Data(format!(
            "{what}: {n} labels need {} bytes, the file has {}",
            n.saturating_add(8),
            b.len()
        )));
    }
    if let Some(bad) = b[8..].iter().find(|&&l| l > 9) {
        return Err(Error::Data(format!("{what}: label {bad} is not a digit")));
    }
    Ok(b[8..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_images(n: u32) -> Vec<u8> {
        let mut b = vec![0, 0, 8, 3];
        for v in [n, 2, 2] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend((0..n * 4).map(|i| (i * 50 % 256) as u8));
        b
    }

    #[test]
    fn parses_raw_and_gzip_and_rejects_bad_files() {
        let raw = idx_images(3);
        let mut gz = Vec::new();
        {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
            e.write_all(&raw).unwrap();
        }
        assert_eq!(parse_images(raw.clone(), "raw").unwrap(), parse_images(gz, "gz").unwrap());
        let im = parse_images(raw.clone(), "raw").unwrap();
        assert_eq!((im.count, im.rows, im.cols, im.pixels.len()), (3, 2, 2, 12));
        let mut wrong = raw.clone();
        wrong[3] = 1;
        assert!(parse_images(wrong, "x").unwrap_err().to_string().contains("magic"));
        assert!(parse_images(raw[..20].to_vec(), "x").unwrap_err().to_string().contains("bytes"));
        assert!(parse_images(raw[..10].to_vec(), "x").unwrap_err().to_string().contains("truncated"));
        assert!(parse_images(vec![0x1f, 0x8b, 1, 2, 3], "x").unwrap_err().to_string().contains("gzip"));
        let labels = vec![0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 9];
        assert_eq!(parse_labels(labels.clone(), "l").unwrap(), [1, 2, 9]);
        let mut bad = labels.clone();
        bad[10] = 12;
        assert!(parse_labels(bad, "l").is_err());
        assert!(parse_labels(raw, "l").unwrap_err().to_string().contains("magic"));
    }
}
