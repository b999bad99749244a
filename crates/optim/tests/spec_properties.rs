//! Property tests of the spec parser: random strings and mutations of valid specs never panic,
//! and every accepted spec round-trips through its canonical form.

use proptest::prelude::*;
use taper_optim::{canonical, schedule, OptimSpec};

/// Valid specs, one or more per optimizer, to mutate.
const VALID: &[&str] = &[
    "sgd:lr=0.05,momentum=0.9,dampening=0.1,weight_decay=0.01",
    "sgd:lr=0.05,momentum=0.9,nesterov=true",
    "adagrad:lr=0.1,lr_decay=0.01,initial_accumulator_value=0.1,eps=1e-10",
    "rmsprop:lr=0.01,alpha=0.9,centered=true,momentum=0.9,weight_decay=0.01",
    "rmsprop:lr=0.4,gamma=0.9,eps=1e-6,eps_in_sqrt=true",
    "adadelta:lr=1.0,rho=0.9,eps=1e-6",
    "adam:lr=0.001,beta1=0.9,beta2=0.999,amsgrad=true",
    "adamw:lr=0.01,weight_decay=0.1",
    "step:step_size=10,gamma=0.5",
    "cosine:t_max=100,eta_min=0.001",
];

/// Characters a mutation inserts: the spec syntax, digits, letters, and a few strangers.
const ALPHABET: &[char] = &[
    'a', 'e', 'l', 'r', 's', '_', '0', '1', '9', '.', '-', '+', ',', ':', '=', ' ', 'E', 'n', 'i', 'f', 't',
    'é', '\u{0}', '∞',
];

/// A mutation: delete, insert or replace one character at a position (taken modulo the length).
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = prop::sample::select(ALPHABET);
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), c.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        (any::<usize>(), c).prop_map(|(i, c)| Edit::Replace(i, c)),
    ]
}

fn apply(base: &str, edits: &[Edit]) -> String {
    let mut s: Vec<char> = base.chars().collect();
    for e in edits {
        let n = s.len().max(1);
        match *e {
            Edit::Delete(i) if !s.is_empty() => {
                s.remove(i % n);
            }
            Edit::Insert(i, c) => s.insert(i % (s.len() + 1), c),
            Edit::Replace(i, c) if !s.is_empty() => s[i % n] = c,
            _ => {}
        }
    }
    s.into_iter().collect()
}

/// Parses with every entry point; an accepted optimizer spec must round-trip.
fn check(s: &str) -> Result<bool, TestCaseError> {
    let _ = OptimSpec::parse(s);
    let _ = OptimSpec::parse_list(s);
    let _ = schedule::parse(s);
    let _ = taper_optim::checked_list(s);
    match canonical(s) {
        Ok(c) => {
            let text = c.to_string();
            let again = canonical(&text).map_err(|e| TestCaseError::fail(format!("{s} -> {text}: {e}")))?;
            prop_assert_eq!(&again, &c, "{} -> {} did not round-trip", s, text);
            prop_assert_eq!(OptimSpec::parse(&text).ok(), Some(c), "the canonical text parses to itself");
            Ok(true)
        }
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            Ok(false)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_never_panic(s in "\\PC{0,64}") {
        check(&s)?;
    }

    #[test]
    fn spec_shaped_strings_never_panic_and_round_trip(
        s in "[a-z_]{1,9}(:[a-z_0-9]{1,12}=[-+0-9a-z.e]{1,8}(,[a-z_0-9]{1,12}=[-+0-9a-z.e]{1,8}){0,5})?"
    ) {
        check(&s)?;
    }

    #[test]
    fn mutated_valid_specs_never_panic_and_round_trip(
        base in prop::sample::select(VALID),
        edits in prop::collection::vec(edit(), 0..4),
    ) {
        check(&apply(base, &edits))?;
    }
}

#[test]
fn the_mutations_reach_accepted_and_refused_specs() {
    // The property above is only worth something if both outcomes occur.
    let accepted = VALID.iter().filter(|s| canonical(s).is_ok()).count();
    assert!(accepted >= 8, "{accepted}");
    assert!(canonical(&apply(VALID[0], &[Edit::Replace(5, '=')])).is_err());
}
