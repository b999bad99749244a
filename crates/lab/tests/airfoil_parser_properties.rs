//! Property tests of the airfoil parser: random text and damaged files give an error or
//! well-formed rows, never a panic.

use proptest::prelude::*;
use taper_lab::experiments::airfoil::{parse, ROWS};

fn good_text(rows: usize) -> String {
    (0..rows)
        .map(|i| format!("{}\t{}\t0.3048\t71.3\t0.00266337\t{}.{}\r\n", 800 + i, i % 7, 120 + i % 9, i % 10))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(parse(&text).is_err(), "far fewer than {} rows", ROWS);
    }

    #[test]
    fn damaged_files_give_an_error_or_well_formed_rows(at in any::<usize>(), bit in 0u8..7, cut in any::<usize>()) {
        let mut bytes = good_text(ROWS + 3).into_bytes();
        let i = at % bytes.len();
        bytes[i] ^= 1 << bit; // ASCII stays ASCII
        bytes.truncate(ROWS * 30 + cut % (bytes.len() - ROWS * 30));
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(rows) = parse(&text) {
            prop_assert!(rows.len() >= ROWS);
        }
    }
}
