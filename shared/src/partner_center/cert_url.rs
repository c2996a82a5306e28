//! Which `x-ms-certificate-url` values may be fetched at all. The check reads the header's own
//! text, not a parser's normalised form: WHATWG parsing turns `0x7f.0.0.1`, `2130706433` and
//! `127.1` into `127.0.0.1`, and a trusted name must match as written. Nothing is fetched for
//! a URL that fails here.

use std::net::IpAddr;

use url::Url;

/// Longest certificate URL considered (Microsoft's is under 100 characters).
const MAX_URL_LEN: usize = 1024;
/// Longest host kept for a log line.
const MAX_LOGGED_HOST: usize = 64;

/// What a certificate is cached under: the query and fragment never reach the fetch, so
/// they cannot make distinct entries either.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertKey {
    pub scheme: &'static str,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl CertKey {
    /// The URL that is fetched: scheme, host, port and path only.
    pub fn fetch_url(&self) -> Url {
        let host = match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => self.host.clone(),
        };
        Url::parse(&format!(
            "{}://{host}:{}{}",
            self.scheme, self.port, self.path
        ))
        .expect("built from checked parts")
    }
}

/// Why a URL is refused; `host` is sanitised and bounded for logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntrustedUrl {
    pub host: String,
}

/// Accepts `https://<listed host>[:443]/<path>`, and `http://<listed loopback IP>:<any
/// port>/<path>` for a local stand-in. Everything else (userinfo, other ports, other
/// schemes, numeric host spellings, hosts the URL parser reads differently) is refused.
pub fn check(raw: &str, allowed_hosts: &[String]) -> Result<CertKey, UntrustedUrl> {
    let refuse = |host: &str| UntrustedUrl {
        host: loggable_host(host),
    };
    if raw.len() > MAX_URL_LEN || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(refuse(""));
    }
    let (scheme, rest) = raw.split_once("://").ok_or_else(|| refuse(""))?;
    let scheme: &'static str = match scheme.to_ascii_lowercase().as_str() {
        "https" => "https",
        "http" => "http",
        _ => return Err(refuse("")),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains(['@', '\\', '%']) {
        return Err(refuse(""));
    }
    let (host, port) = split_host_port(authority).ok_or_else(|| refuse(authority))?;
    let host = host.to_ascii_lowercase();
    if !allowed_hosts.contains(&host) {
        return Err(refuse(&host));
    }
    let ip = host.parse::<IpAddr>().ok();
    let port = match (scheme, port) {
        ("https", None | Some(443)) => 443,
        // Plain http only for a local stand-in: a listed loopback IP, on any port.
        ("http", Some(p)) if ip.is_some_and(|ip| ip.is_loopback()) => p,
        _ => return Err(refuse(&host)),
    };
    // The fetch goes where the URL parser says: it must agree with what was checked.
    let parsed = Url::parse(raw).map_err(|_| refuse(&host))?;
    let parsed_host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']']);
    if parsed_host != host || parsed.port_or_known_default() != Some(port) {
        return Err(refuse(&host));
    }
    Ok(CertKey {
        scheme,
        host,
        port,
        path: parsed.path().to_string(),
    })
}

/// `host[:port]` or `[v6][:port]`; a port is 1 to 5 digits without a leading zero.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None => None,
        Some(p)
            if (1..=5).contains(&p.len())
                && !p.starts_with('0')
                && p.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(p.parse::<u16>().ok().filter(|p| *p != 0)?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// A host as it may appear in a log line: host characters only, at most 64 of them.
pub fn loggable_host(host: &str) -> String {
    host.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        .take(MAX_LOGGED_HOST)
        .collect::<String>()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        vec!["certs.example.com".into(), "127.0.0.1".into(), "::1".into()]
    }

    #[test]
    fn accepts_https_on_443_and_loopback_http_on_any_port() {
        let k = check("https://Certs.Example.com/cert/a.cer?x=1#f", &hosts()).unwrap();
        assert_eq!(
            (k.scheme, k.host.as_str(), k.port, k.path.as_str()),
            ("https", "certs.example.com", 443, "/cert/a.cer")
        );
        assert_eq!(
            k.fetch_url().as_str(),
            "https://certs.example.com/cert/a.cer"
        );
        assert!(check("https://certs.example.com:443/a", &hosts()).is_ok());
        let k = check("http://127.0.0.1:7071/cert/standin.cer", &hosts()).unwrap();
        assert_eq!(k.port, 7071);
        let k = check("http://[::1]:9/c", &hosts()).unwrap();
        assert_eq!(k.fetch_url().as_str(), "http://[::1]:9/c");
    }

    #[test]
    fn refuses_other_ports_schemes_userinfo_and_numeric_spellings() {
        for raw in [
            "https://certs.example.com:8443/a",
            "https://certs.example.com:0443/a",
            "http://certs.example.com/a",
            "http://127.0.0.1/a",
            "ftp://127.0.0.1:21/a",
            "https://127.0.0.1@evil.example/a",
            "https://certs.example.com@evil.example/a",
            "https://evil.example/certs.example.com",
            "https://evil.example\\@certs.example.com/a",
            "http://0x7f.0.0.1:7071/a",
            "http://2130706433:7071/a",
            "http://127.1:7071/a",
            "http://0177.0.0.1:7071/a",
            "http://127.0.0.1.:7071/a",
            "https://certs%2eexample.com/a",
            "https://certs.example.com./a",
            "https://certs.example.com:/a",
            "https://certs.example.com:99999/a",
            "https:// certs.example.com/a",
            "not a url",
        ] {
            assert!(check(raw, &hosts()).is_err(), "{raw}");
        }
    }

    #[test]
    fn a_logged_host_is_bounded_and_plain() {
        assert_eq!(
            loggable_host("EVIL.example\n<script>"),
            "evil.examplescript"
        );
        assert_eq!(loggable_host(&"a".repeat(500)).len(), 64);
    }
}
