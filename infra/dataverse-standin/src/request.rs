//! Reading a Web API request: the `Prefer` header and the OData query options.

use http::HeaderMap;

/// Largest page Dataverse serves.
pub const MAX_PAGE: usize = 5000;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Prefs {
    pub representation: bool,
    pub track_changes: bool,
    pub max_page_size: Option<usize>,
}

pub fn prefs(headers: &HeaderMap) -> Prefs {
    let mut p = Prefs::default();
    for value in headers.get_all("prefer") {
        let Ok(text) = value.to_str() else { continue };
        for part in text.split(',').map(str::trim) {
            let lower = part.to_ascii_lowercase();
            if lower == "return=representation" {
                p.representation = true;
            } else if lower == "odata.track-changes" {
                p.track_changes = true;
            } else if let Some(n) = lower.strip_prefix("odata.maxpagesize=") {
                p.max_page_size = n.trim().parse::<usize>().ok().map(|n| n.clamp(1, MAX_PAGE));
            }
        }
    }
    p
}

/// The query options, decoded, in order.
#[derive(Debug, Default, Clone)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(query: Option<&str>) -> Self {
        Params(
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `$select` as lower-case column names.
    pub fn select(&self) -> Option<Vec<String>> {
        self.get("$select").map(|s| {
            s.split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty())
                .collect()
        })
    }

    /// The query string without `skip` options, plus `extra` appended. Option names keep
    /// their literal `$`, as in Dataverse's links; values are percent-encoded.
    pub fn encode_without(&self, skip: &[&str], extra: &[(&str, &str)]) -> String {
        let pairs = self
            .0
            .iter()
            .filter(|(k, _)| !skip.iter().any(|s| s.eq_ignore_ascii_case(k)))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().copied());
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        pairs
            .map(|(k, v)| {
                let key = match k.strip_prefix('$') {
                    Some(rest) => format!("${}", encode(rest)),
                    None => encode(k),
                };
                format!("{key}={}", encode(v))
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_values_are_combined_and_capped() {
        let mut h = HeaderMap::new();
        h.insert(
            "prefer",
            "odata.track-changes, odata.maxpagesize=9000"
                .parse()
                .unwrap(),
        );
        h.append("prefer", "return=representation".parse().unwrap());
        let p = prefs(&h);
        assert!(p.track_changes && p.representation);
        assert_eq!(p.max_page_size, Some(5000));
    }
}
