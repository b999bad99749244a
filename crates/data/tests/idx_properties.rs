//! Property tests of the IDX parser: random bytes, random headers, damaged files and random gzip
//! streams give an error or a consistent parse, never a panic.

use proptest::prelude::*;
use taper_data::idx::{parse_images, parse_labels};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    let mut e = flate2::write::GzEncoder::new(&mut out, flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    drop(e);
    out
}

fn images(n: u32, r: u32, c: u32) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for v in [n, r, c] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend((0..n * r * c).map(|i| (i % 251) as u8));
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_images(bytes.clone(), "random");
        let _ = parse_labels(bytes.clone(), "random");
        let mut gz = vec![0x1f, 0x8b];
        gz.extend(&bytes);
        let _ = parse_images(gz, "random gzip");
    }

    #[test]
    fn random_headers_parse_consistently(n in any::<u32>(), r in any::<u32>(), c in any::<u32>(), tail in 0usize..40) {
        let mut b = vec![0, 0, 8, 3];
        for v in [n, r, c] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend(std::iter::repeat_n(7u8, tail));
        if let Ok(im) = parse_images(b, "header") {
            prop_assert_eq!(im.pixels.len(), im.count * im.rows * im.cols);
            prop_assert_eq!(im.pixels.len(), tail);
        }
    }

    #[test]
    fn damaged_files_are_refused_or_consistent(
        n in 1u32..5, cut in any::<usize>(), flip in any::<usize>(), bit in 0u8..8, zipped in any::<bool>(),
    ) {
        let good = images(n, 3, 2);
        let raw = if zipped { gzip(&good) } else { good.clone() };
        let truncated = raw[..cut % raw.len()].to_vec();
        prop_assert!(parse_images(truncated, "truncated").is_err());
        let mut flipped = raw.clone();
        let at = flip % flipped.len();
        flipped[at] ^= 1 << bit;
        if let Ok(im) = parse_images(flipped, "flipped") {
            prop_assert_eq!(im.pixels.len(), im.count * im.rows * im.cols);
        }
    }
}
