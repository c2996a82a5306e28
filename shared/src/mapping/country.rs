//! Country codes: Partner Center and the co-sell solution both want ISO 3166 alpha-2.
//! A CRM often holds alpha-3; this table converts the larger markets. Anything else that is
//! not two letters is reported rather than guessed.

/// ISO 3166-1 alpha-3 → alpha-2 for the larger markets.
const ALPHA3: &[(&str, &str)] = &[
    ("ARE", "AE"),
    ("ARG", "AR"),
    ("AUS", "AU"),
    ("AUT", "AT"),
    ("BEL", "BE"),
    ("BRA", "BR"),
    ("CAN", "CA"),
    ("CHE", "CH"),
    ("CHL", "CL"),
    ("CHN", "CN"),
    ("COL", "CO"),
    ("CZE", "CZ"),
    ("DEU", "DE"),
    ("DNK", "DK"),
    ("EGY", "EG"),
    ("ESP", "ES"),
    ("FIN", "FI"),
    ("FRA", "FR"),
    ("GBR", "GB"),
    ("GRC", "GR"),
    ("HKG", "HK"),
    ("HUN", "HU"),
    ("IDN", "ID"),
    ("IND", "IN"),
    ("IRL", "IE"),
    ("ISR", "IL"),
    ("ITA", "IT"),
    ("JPN", "JP"),
    ("KOR", "KR"),
    ("MEX", "MX"),
    ("MYS", "MY"),
    ("NGA", "NG"),
    ("NLD", "NL"),
    ("NOR", "NO"),
    ("NZL", "NZ"),
    ("PER", "PE"),
    ("PHL", "PH"),
    ("POL", "PL"),
    ("PRT", "PT"),
    ("ROU", "RO"),
    ("SAU", "SA"),
    ("SGP", "SG"),
    ("SWE", "SE"),
    ("THA", "TH"),
    ("TUR", "TR"),
    ("TWN", "TW"),
    ("UKR", "UA"),
    ("USA", "US"),
    ("VNM", "VN"),
    ("ZAF", "ZA"),
];

/// The alpha-2 code for a two-letter code (any case) or a known alpha-3 code.
pub fn to_iso2(raw: &str) -> Result<String, String> {
    let code = raw.trim().to_ascii_uppercase();
    if code.len() == 2 && code.chars().all(|c| c.is_ascii_alphabetic()) {
        return Ok(code);
    }
    ALPHA3
        .iter()
        .find(|(a3, _)| *a3 == code)
        .map(|(_, a2)| a2.to_string())
        .ok_or_else(|| format!("'{raw}' is not an ISO 3166 two-letter country code"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let cases = [
            ("us", Ok("US")),
            (" DE ", Ok("DE")),
            ("USA", Ok("US")),
            ("gbr", Ok("GB")),
            ("ZAF", Ok("ZA")),
            ("XYZ", Err(())),
            ("United States", Err(())),
            ("U1", Err(())),
            ("", Err(())),
        ];
        for (input, want) in cases {
            let got = to_iso2(input);
            match want {
                Ok(w) => assert_eq!(got.as_deref(), Ok(w), "{input}"),
                Err(()) => assert!(got.is_err(), "{input} gave {got:?}"),
            }
        }
        assert!(ALPHA3.len() >= 40);
    }
}
