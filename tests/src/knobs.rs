//! Environment knobs that make the CI-sized suites run longer without code changes.

/// `COSELL_PROPTEST_CASES`, else `default` (the CI size).
pub fn proptest_cases(default: u32) -> u32 {
    env_number("COSELL_PROPTEST_CASES").unwrap_or(default)
}

/// A positive number from the environment; anything unparsable is ignored loudly.
pub fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    let raw = std::env::var(name).ok()?;
    match raw.trim().parse() {
        Ok(v) => Some(v),
        Err(_) => {
            eprintln!("ignoring {name}={raw:?}: not a number");
            None
        }
    }
}
