//! MNIST in IDX format (gzip or raw): images scaled to `[0, 1]` as `[n, 1, 28, 28]`, labels
//! `[n]` (u32). Magic numbers, sizes and checksums are checked.

use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::data::Dataset;
use crate::download::{self, Checksum, Remote};
use crate::{Error, Result};

macro_rules! remote {
    ($file:literal, $sum:expr) => {
        Remote {
            name: concat!("mnist/", $file),
            urls: &[
                concat!("https://ossci-datasets.s3.amazonaws.com/mnist/", $file),
                concat!("https://storage.googleapis.com/cvdf-datasets/mnist/", $file),
            ],
            checksum: $sum,
        }
    };
}

/// The four files; digests are torchvision's MD5s for the training files and SHA-1s for the test
/// files (as `../shared/data/README.md` gives them).
pub const TRAIN_IMAGES: Remote =
    remote!("train-images-idx3-ubyte.gz", Checksum::Md5("f68b3c2dcbeaaa9fbdd348bbdeb94873"));
/// Training labels.
pub const TRAIN_LABELS: Remote =
    remote!("train-labels-idx1-ubyte.gz", Checksum::Md5("d53e105ee54ea40749a09fcbcd1e9432"));
/// Test images.
pub const TEST_IMAGES: Remote =
    remote!("t10k-images-idx3-ubyte.gz", Checksum::Sha1("c3a25af1f52dad7f726cce8cacb138654b760d48"));
/// Test labels.
pub const TEST_LABELS: Remote =
    remote!("t10k-labels-idx1-ubyte.gz", Checksum::Sha1("763e7fa3757d93b0cdec073cef058b2004252c17"));

fn gunzip_if_needed(bytes: Vec<u8>, what: &str) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::Data(format!("{what}: corrupt gzip stream ({e})")))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses an IDX image file: `(count, rows, cols, pixels)`.
pub fn parse_images(bytes: Vec<u8>, what: &str) -> Result<(usize, usize, usize, Vec<u8>)> {
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
    let need = 16 + n * r * c;
    if b.len() != need {
        return Err(Error::Data(format!(
            "{what}: {n} images of {r}x{c} need {need} bytes, the file has {}",
            b.len()
        )));
    }
    Ok((n, r, c, b[16..].to_vec()))
}

/// Parses an IDX label file.
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
    if b.len() != 8 + n {
        return Err(Error::Data(format!(
            "{what}: {n} labels need {} bytes, the file has {}",
            8 + n,
            b.len()
        )));
    }
    if let Some(bad) = b[8..].iter().find(|&&l| l > 9) {
        return Err(Error::Data(format!("{what}: label {bad} is not a digit")));
    }
    Ok(b[8..].to_vec())
}

/// Builds the data set from parsed files: images `[n, 1, rows, cols]` in `[0, 1]`.
pub fn to_dataset(
    images: (usize, usize, usize, Vec<u8>),
    labels: Vec<u8>,
    dtype: DType,
    device: &Device,
) -> Result<Dataset> {
    let (n, r, c, pixels) = images;
    if labels.len() != n {
        return Err(Error::Data(format!("{n} images but {} labels", labels.len())));
    }
    let x = Tensor::from_vec(pixels, (n, 1, r, c), &Device::Cpu)?
        .to_dtype(DType::F32)?
        .affine(1.0 / 255.0, 0.0)?;
    let y: Vec<u32> = labels.into_iter().map(u32::from).collect();
    Dataset::new(x.to_dtype(dtype)?.to_device(device)?, Tensor::from_vec(y, n, device)?)
}

/// Which split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// 60,000 training images.
    Train,
    /// 10,000 test images.
    Test,
}

/// Loads (and, when allowed, downloads) one split from `dir` (files under `dir/mnist/`).
pub fn load(dir: &Path, split: Split, download: bool, dtype: DType, device: &Device) -> Result<Dataset> {
    let (im, lb) = match split {
        Split::Train => (TRAIN_IMAGES, TRAIN_LABELS),
        Split::Test => (TEST_IMAGES, TEST_LABELS),
    };
    let images = parse_images(download::fetch(&im, dir, download)?, im.name)?;
    let labels = parse_labels(download::fetch(&lb, dir, download)?, lb.name)?;
    to_dataset(images, labels, dtype, device)
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
        let (n, r, c, px) = parse_images(raw.clone(), "raw").unwrap();
        assert_eq!((n, r, c, px.len()), (3, 2, 2, 12));
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
        let d =
            to_dataset(parse_images(idx_images(3), "i").unwrap(), vec![1, 2, 3], DType::F32, &Device::Cpu)
                .unwrap();
        assert_eq!(d.x.dims(), [3, 1, 2, 2]);
        let max = d.x.max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(max <= 1.0 && max > 0.5);
    }
}
