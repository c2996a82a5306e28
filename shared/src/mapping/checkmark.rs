//! The ✔ / ✘ suffix the "display check mark in the opportunity name" option puts on the
//! opportunity name. It is the connector's own decoration, so it is never a user edit.

const OK: &str = "✔";
const FAILED: &str = "✘";

/// The name without a trailing checkmark (and the space before it). Strips repeatedly, so a
/// name decorated twice by an older run comes back clean.
pub fn strip_checkmark(name: &str) -> &str {
    let mut s = name.trim_end();
    loop {
        let next = s
            .strip_suffix(OK)
            .or_else(|| s.strip_suffix(FAILED))
            // U+FE0F (emoji presentation) may follow the mark when a user pasted it.
            .or_else(|| {
                s.strip_suffix('\u{FE0F}')
                    .and_then(|t| t.strip_suffix(OK).or_else(|| t.strip_suffix(FAILED)))
            });
        match next {
            Some(t) => s = t.trim_end(),
            None => return s,
        }
    }
}

/// The name with exactly one checkmark: ✔ when the last sync succeeded, ✘ when it failed.
pub fn with_checkmark(name: &str, ok: bool) -> String {
    format!("{} {}", strip_checkmark(name), if ok { OK } else { FAILED })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_and_append() {
        let cases = [
            ("Contoso deal ✔", "Contoso deal"),
            ("Contoso deal ✘", "Contoso deal"),
            ("Contoso deal✔", "Contoso deal"),
            ("Contoso deal ✔ ✘", "Contoso deal"),
            ("Contoso deal ✔\u{FE0F}", "Contoso deal"),
            ("Contoso deal", "Contoso deal"),
            ("✔ Contoso deal", "✔ Contoso deal"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(strip_checkmark(input), want, "{input:?}");
        }
        assert_eq!(with_checkmark("Deal", true), "Deal ✔");
        assert_eq!(with_checkmark("Deal ✔", false), "Deal ✘");
        assert_eq!(with_checkmark("Deal ✘ ", true), "Deal ✔");
    }
}
