//! The NASA airfoil self-noise data exactly as d2l's `get_data_ch7` prepares it: tab-separated
//! (CRLF or LF), every column standardized to mean 0 and population std 1 over all 1503 rows,
//! the first 1500 rows kept; 5 features, the label is the last column.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::data::Dataset;
use crate::download::{self, Checksum, Remote};
use crate::{Error, Result};

/// The file, where d2l and UCI serve it, and its SHA-1.
pub const REMOTE: Remote = Remote {
    name: "airfoil_self_noise.dat",
    urls: &[
        "https://d2l-data.s3-accelerate.amazonaws.com/airfoil_self_noise.dat",
        "https://archive.ics.uci.edu/ml/machine-learning-databases/00291/airfoil_self_noise.dat",
    ],
    checksum: Checksum::Sha1("76e5be1548fd8222e5074cf0faae75edff8cf93f"),
};

/// Rows kept (d2l: `data[:1500]`).
pub const ROWS: usize = 1500;

/// Parses the file's text into rows of 6 numbers.
pub fn parse(text: &str) -> Result<Vec<[f64; 6]>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 6 {
            return Err(Error::Data(format!(
                "airfoil line {}: expected 6 tab-separated columns, got {}",
                i + 1,
                fields.len()
            )));
        }
        let mut row = [0.0; 6];
        for (j, f) in fields.iter().enumerate() {
            row[j] = f.trim().parse().map_err(|_| {
                Error::Data(format!("airfoil line {}, column {}: `{f}` is not a number", i + 1, j + 1))
            })?;
        }
        rows.push(row);
    }
    if rows.len() < ROWS {
        return Err(Error::Data(format!("airfoil: {} rows, expected at least {ROWS}", rows.len())));
    }
    Ok(rows)
}

/// Standardizes every column over all rows and keeps the first 1500: `(features [1500, 5],
/// labels [1500])`.
pub fn prepare(rows: &[[f64; 6]], dtype: DType, device: &Device) -> Result<Dataset> {
    let n = rows.len() as f64;
    let mut mean = [0.0; 6];
    let mut std = [0.0; 6];
    for j in 0..6 {
        mean[j] = rows.iter().map(|r| r[j]).sum::<f64>() / n;
        std[j] = (rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n).sqrt();
    }
    let z = |r: &[f64; 6], j: usize| (r[j] - mean[j]) / std[j];
    let x: Vec<f64> = rows[..ROWS].iter().flat_map(|r| (0..5).map(move |j| z(r, j))).collect();
    let y: Vec<f64> = rows[..ROWS].iter().map(|r| z(r, 5)).collect();
    let x = Tensor::from_vec(x, (ROWS, 5), &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?;
    let y = Tensor::from_vec(y, ROWS, &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?;
    Dataset::new(x, y)
}

/// Loads (and, when allowed, downloads) the prepared data set from `dir`.
pub fn load(dir: &Path, download: bool, dtype: DType, device: &Device) -> Result<Dataset> {
    let bytes = download::fetch(&REMOTE, dir, download)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Data("airfoil file is not text".into()))?;
    prepare(&parse(&text)?, dtype, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_crlf_and_lf_and_standardizes() {
        let mut text = String::new();
        for i in 0..1503 {
            let end = if i % 2 == 0 { "\r\n" } else { "\n" };
            text.push_str(&format!("{i}\t1\t2\t3\t{}\t{}{end}", i % 7, 2 * i));
        }
        let rows = parse(&text).unwrap();
        assert_eq!(rows.len(), 1503);
        let d = prepare(&rows, DType::F64, &Device::Cpu).unwrap();
        assert_eq!(d.x.dims(), [1500, 5]);
        // Column 0 is 0..1503: standardized over all 1503 rows, its mean over them is 0.
        let first = d.x.narrow(1, 0, 1).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let mean = 751.0;
        let std = ((1503.0f64 * 1503.0 - 1.0) / 12.0).sqrt();
        assert!((first[0] - (0.0 - mean) / std).abs() < 1e-12);
        // Constant columns standardize to NaN, as NumPy's do; the real file has none.
        assert!(parse("1\t2\t3\n").is_err());
        assert!(parse(&"1\t2\tx\t4\t5\t6\n".repeat(1500)).unwrap_err().to_string().contains("`x`"));
    }
}
