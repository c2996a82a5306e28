//! Every setting of the connector, read from environment variables (a `cosell.toml` may set
//! the same keys; the environment wins) and validated once at start-up. A bad setting stops
//! start-up with one line that names it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::duration_text::parse_duration;
use crate::partner_center::webhook_verify::TrustRoots;
use crate::secret::Secret;

/// Microsoft's host for webhook signing certificates (from the delivery headers in the docs).
pub const DEFAULT_CERT_HOSTS: &str = "3psostorageacct.blob.core.windows.net";

/// The organization on Microsoft's webhook signing certificate.
pub const DEFAULT_CERT_ORGANIZATION: &str = "Microsoft Corporation";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing setting {name}: {hint}")]
    Missing {
        name: &'static str,
        hint: &'static str,
    },
    #[error("bad setting {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
}

/// Logical names of the connector's columns on the opportunity. Every org has its own
/// publisher prefix, so each is a setting; the defaults use the `cosell_` prefix of the
/// columns this project's solution defines.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnNames {
    pub sync_flag: String,
    pub referral_id: String,
    pub referral_link: String,
    pub help_needed: String,
    pub solutions: String,
    pub audit: String,
    /// The seller's answer to a received referral (accept / decline choice).
    pub decision: String,
    /// Whether the deal is shared with Microsoft's sellers ("Referral Visibility" choice):
    /// read by `[deal_type.visibility]`; once shared it cannot go back.
    pub visibility: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub authority_url: Url,
    pub tenant_id: String,
    /// Overrides the token endpoint derived from authority and tenant, per service (for the
    /// local stand-ins, which each issue their own tokens).
    pub pc_token_url: Option<Url>,
    pub dv_token_url: Option<Url>,
    pub pc_client_id: String,
    pub pc_client_secret: Secret,
    /// When set, Partner Center tokens come from the refresh-token grant (app + user).
    pub pc_refresh_token: Option<Secret>,
    pub pc_api_url: Url,
    pub pc_webhook_api_url: Url,
    pub webhook_cert_hosts: Vec<String>,
    /// Subject organizations (O=) accepted on the signing certificate.
    pub webhook_cert_organizations: Vec<String>,
    /// Roots the signing certificate must chain to, from `COSELL_WEBHOOK_CERT_ROOTS` (a PEM
    /// file) instead of the built-in Mozilla roots; a local stand-in's test CA goes here.
    pub webhook_cert_roots: Option<TrustRoots>,
    pub dataverse_url: Url,
    pub dv_client_id: String,
    pub dv_client_secret: Secret,
    pub columns: ColumnNames,
    pub mapping_file: Option<PathBuf>,
    /// The Services co-sell taxonomy to check creates against instead of the shipped one.
    pub services_taxonomy_file: Option<PathBuf>,
    pub sync_cosell_only: bool,
    pub checkmark: bool,
    pub listen: SocketAddr,
    /// The public URL of the webhook endpoint; the local runner registers it with Partner
    /// Center at start when set.
    pub webhook_url: Option<Url>,
    pub poll_interval: Duration,
    /// Local runner: how often referrals are swept for missed webhooks.
    pub sweep_interval: Duration,
    /// How long a local worker holds a pair's message (its queue visibility) before another
    /// may take it: longer than one reconcile, whose in-call retries stop before it ends.
    pub sync_lease: Duration,
    /// Failed attempts of one message, whatever the error, before it goes to the
    /// dead-letter queue with its last reason.
    pub sync_max_attempts: u32,
    pub data_dir: PathBuf,
    pub http_timeout: Duration,
    pub max_retries: u32,
    /// Limits of the local runner's HTTP server.
    pub server: ServerLimits,
}

/// What one client may hold of the local runner's HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// A connection whose request headers have not all arrived by then is closed (this also
    /// ends idle keep-alive connections).
    pub header_timeout: Duration,
    /// A request not answered by then gets a 408 (slow bodies included).
    pub request_timeout: Duration,
    /// Connections held at once; more wait in the listen backlog. Keep it under the open-file
    /// limit (`ulimit -n`).
    pub max_connections: usize,
    /// Requests handled at once; more get a 503 at once.
    pub max_requests: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_requests: 128,
        }
    }
}

/// Looks a variable up by name.
type Lookup = Box<dyn Fn(&str) -> Option<String>>;

/// Where settings come from: the environment first, then the file's keys.
pub struct Source {
    file: BTreeMap<String, String>,
    env: Lookup,
}

impl Source {
    pub fn from_env() -> Self {
        Source {
            file: BTreeMap::new(),
            env: Box::new(|k| std::env::var(k).ok()),
        }
    }

    /// A fixed set of values, for tests and the local runner.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Source {
            file: BTreeMap::new(),
            env: Box::new(move |k| map.get(k).cloned()),
        }
    }

    /// The environment with `overrides` on top: values read at start-up from elsewhere (a
    /// secret store) win over variables of the same name.
    pub fn from_env_with<I, K, V>(overrides: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map: BTreeMap<String, String> = overrides
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Source {
            file: BTreeMap::new(),
            env: Box::new(move |k| map.get(k).cloned().or_else(|| std::env::var(k).ok())),
        }
    }

    /// Adds a TOML file whose top-level keys are the variable names (`COSELL_TENANT_ID = "..."`).
    pub fn with_file(mut self, path: &Path) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        // The parser's message quotes the offending line, which may hold a secret: name
        // the line and its key only.
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err(toml_error_place(&text, e.span())))?;
        for (k, v) in table {
            let value = match v {
                toml::Value::String(s) => s,
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Integer(i) => i.to_string(),
                _ => {
                    return Err(err(format!(
                        "{k}: unsupported value type (use a string, boolean or integer)"
                    )))
                }
            };
            self.file.insert(k, value);
        }
        Ok(self)
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.env)(name)
            .or_else(|| self.file.get(name).cloned())
            .filter(|v| !v.trim().is_empty())
    }
}

impl Config {
    /// Reads the environment, and `COSELL_CONFIG_FILE` (or `./cosell.toml` when present).
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut source = Source::from_env();
        let file = std::env::var("COSELL_CONFIG_FILE")
            .ok()
            .map(PathBuf::from)
            .or_else(|| {
                let p = PathBuf::from("cosell.toml");
                p.exists().then_some(p)
            });
        if let Some(path) = file {
            source = source.with_file(&path)?;
        }
        Self::load(&source)
    }

    pub fn load(src: &Source) -> Result<Self, ConfigError> {
        let url = |name: &'static str, default: Option<&str>| -> Result<Url, ConfigError> {
            let raw = match (src.get(name), default) {
                (Some(v), _) => v,
                (None, Some(d)) => d.to_string(),
                (None, None) => {
                    return Err(ConfigError::Missing {
                        name,
                        hint: "an https:// URL is required",
                    })
                }
            };
            let parsed = Url::parse(raw.trim()).map_err(|e| ConfigError::Invalid {
                name,
                reason: format!("'{raw}' is not a URL ({e})"),
            })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(ConfigError::Invalid {
                    name,
                    reason: format!("'{raw}' must be an http(s) URL with a host"),
                });
            }
            // Tokens and client secrets travel to these URLs: plain http only on loopback.
            if parsed.scheme() == "http" && !is_loopback_host(&parsed) {
                return Err(ConfigError::Invalid {
                    name,
                    reason: format!(
                        "'{raw}' must be https (plain http only for a loopback address such as 127.0.0.1)"
                    ),
                });
            }
            Ok(parsed)
        };
        let optional_url = |name: &'static str| -> Result<Option<Url>, ConfigError> {
            match src.get(name) {
                None => Ok(None),
                Some(_) => url(name, None).map(Some),
            }
        };
        let required = |name: &'static str, hint: &'static str| -> Result<String, ConfigError> {
            src.get(name)
                .map(|v| v.trim().to_string())
                .ok_or(ConfigError::Missing { name, hint })
        };
        let secret = |name: &'static str| -> Result<Secret, ConfigError> {
            src.get(name).map(Secret::new).ok_or(ConfigError::Missing {
                name,
                hint: "a client secret is required (keep it out of files checked into git)",
            })
        };
        let boolean = |name: &'static str, default: bool| -> Result<bool, ConfigError> {
            match src.get(name) {
                None => Ok(default),
                Some(v) => parse_bool(&v).ok_or_else(|| ConfigError::Invalid {
                    name,
                    reason: format!("'{v}' is not a boolean (use true/false, yes/no, 1/0)"),
                }),
            }
        };
        let duration = |name: &'static str, default: &str| -> Result<Duration, ConfigError> {
            let raw = src.get(name).unwrap_or_else(|| default.to_string());
            let d = parse_duration(&raw).map_err(|reason| ConfigError::Invalid { name, reason })?;
            if d.is_zero() {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "must be greater than zero".into(),
                });
            }
            Ok(d)
        };
        let column = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            let v = src.get(name).unwrap_or_else(|| default.to_string());
            if v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                Ok(v.to_ascii_lowercase())
            } else {
                Err(ConfigError::Invalid {
                    name,
                    reason: format!("'{v}' is not a Dataverse logical name (letters, digits, _)"),
                })
            }
        };

        let tenant_id = required("COSELL_TENANT_ID", "the Entra tenant id (GUID or domain)")?;
        if tenant_id.contains('/') || tenant_id.contains(char::is_whitespace) {
            return Err(ConfigError::Invalid {
                name: "COSELL_TENANT_ID",
                reason: "must be a tenant GUID or domain".into(),
            });
        }
        let webhook_cert_hosts: Vec<String> = src
            .get("COSELL_WEBHOOK_CERT_HOSTS")
            .unwrap_or_else(|| DEFAULT_CERT_HOSTS.to_string())
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if webhook_cert_hosts.is_empty() {
            return Err(ConfigError::Invalid {
                name: "COSELL_WEBHOOK_CERT_HOSTS",
                reason: "needs at least one host".into(),
            });
        }
        let webhook_cert_organizations: Vec<String> = src
            .get("COSELL_WEBHOOK_CERT_ORGS")
            .unwrap_or_else(|| DEFAULT_CERT_ORGANIZATION.to_string())
            .split(',')
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty())
            .collect();
        let listen_raw = src
            .get("COSELL_LISTEN")
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_raw.parse().map_err(|_| ConfigError::Invalid {
            name: "COSELL_LISTEN",
            reason: format!("'{listen_raw}' is not host:port (e.g. 127.0.0.1:8080)"),
        })?;
        let attempts_raw = src
            .get("COSELL_SYNC_MAX_ATTEMPTS")
            .unwrap_or_else(|| "8".into());
        let sync_max_attempts = attempts_raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ConfigError::Invalid {
                name: "COSELL_SYNC_MAX_ATTEMPTS",
                reason: format!("'{attempts_raw}' is not a whole number from 1 to 100"),
            })?;
        let max_retries_raw = src.get("COSELL_MAX_RETRIES").unwrap_or_else(|| "5".into());
        let max_retries = max_retries_raw
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= 20)
            .ok_or_else(|| ConfigError::Invalid {
                name: "COSELL_MAX_RETRIES",
                reason: format!("'{max_retries_raw}' is not a whole number from 0 to 20"),
            })?;
        let webhook_cert_roots = match src.get("COSELL_WEBHOOK_CERT_ROOTS") {
            None => None,
            Some(p) => Some(
                TrustRoots::from_file(Path::new(p.trim())).map_err(|reason| {
                    ConfigError::Invalid {
                        name: "COSELL_WEBHOOK_CERT_ROOTS",
                        reason: format!("{}: {reason}", p.trim()),
                    }
                })?,
            ),
        };
        let count = |name: &'static str, default: usize| -> Result<usize, ConfigError> {
            match src.get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
                    .ok_or_else(|| ConfigError::Invalid {
                        name,
                        reason: format!("'{v}' is not a whole number from 1 to 1000000"),
                    }),
            }
        };
        let limits = ServerLimits::default();
        let server = ServerLimits {
            header_timeout: duration("COSELL_HEADER_TIMEOUT", "10s")?,
            request_timeout: duration("COSELL_REQUEST_TIMEOUT", "30s")?,
            max_connections: count("COSELL_MAX_CONNECTIONS", limits.max_connections)?,
            max_requests: count("COSELL_MAX_REQUESTS", limits.max_requests)?,
        };
        let existing_file = |name: &'static str| -> Result<Option<PathBuf>, ConfigError> {
            let path = src.get(name).map(PathBuf::from);
            match &path {
                Some(p) if !p.is_file() => Err(ConfigError::Invalid {
                    name,
                    reason: format!("no file at {}", p.display()),
                }),
                _ => Ok(path),
            }
        };
        let mapping_file = existing_file("COSELL_MAPPING_FILE")?;
        let services_taxonomy_file = existing_file("COSELL_SERVICES_TAXONOMY_FILE")?;

        Ok(Config {
            authority_url: url(
                "COSELL_AUTHORITY_URL",
                Some("https://login.microsoftonline.com"),
            )?,
            tenant_id,
            pc_token_url: optional_url("COSELL_PC_TOKEN_URL")?,
            dv_token_url: optional_url("COSELL_DV_TOKEN_URL")?,
            pc_client_id: required("COSELL_PC_CLIENT_ID", "the Partner Center app's client id")?,
            pc_client_secret: secret("COSELL_PC_CLIENT_SECRET")?,
            pc_refresh_token: src.get("COSELL_PC_REFRESH_TOKEN").map(Secret::new),
            pc_api_url: url(
                "COSELL_PC_API_URL",
                Some("https://api.partner.microsoft.com"),
            )?,
            pc_webhook_api_url: url(
                "COSELL_PC_WEBHOOK_API_URL",
                Some("https://api.partnercenter.microsoft.com"),
            )?,
            webhook_cert_hosts,
            webhook_cert_organizations,
            webhook_cert_roots,
            dataverse_url: url("COSELL_DATAVERSE_URL", None)?,
            dv_client_id: required("COSELL_DV_CLIENT_ID", "the Dataverse app's client id")?,
            dv_client_secret: secret("COSELL_DV_CLIENT_SECRET")?,
            columns: ColumnNames {
                sync_flag: column("COSELL_COL_SYNC", "cosell_syncwithpartnercenter")?,
                referral_id: column("COSELL_COL_REFERRAL_ID", "cosell_referralidentifier")?,
                referral_link: column("COSELL_COL_REFERRAL_LINK", "cosell_referrallink")?,
                help_needed: column("COSELL_COL_HELP", "cosell_howcanmicrosofthelp")?,
                solutions: column("COSELL_COL_SOLUTIONS", "cosell_solutions")?,
                audit: column("COSELL_COL_AUDIT", "cosell_audit")?,
                decision: column("COSELL_COL_DECISION", "cosell_referraldecision")?,
                visibility: column("COSELL_COL_VISIBILITY", "cosell_referralvisibility")?,
            },
            mapping_file,
            services_taxonomy_file,
            sync_cosell_only: boolean("COSELL_SYNC_COSELL_ONLY", false)?,
            checkmark: boolean("COSELL_CHECKMARK", true)?,
            listen,
            webhook_url: optional_url("COSELL_WEBHOOK_URL")?,
            poll_interval: duration("COSELL_POLL_INTERVAL", "60s")?,
            sweep_interval: duration("COSELL_SWEEP_INTERVAL", "15m")?,
            sync_lease: duration("COSELL_SYNC_LEASE", "120s")?,
            sync_max_attempts,
            data_dir: PathBuf::from(
                src.get("COSELL_DATA_DIR")
                    .unwrap_or_else(|| "./.cosell".into()),
            ),
            http_timeout: duration("COSELL_HTTP_TIMEOUT", "20s")?,
            max_retries,
            server,
        })
    }

    /// The token endpoint for Partner Center tokens.
    pub fn pc_token_url(&self) -> Url {
        self.pc_token_url
            .clone()
            .unwrap_or_else(|| self.token_url())
    }

    /// The token endpoint for Dataverse tokens.
    pub fn dv_token_url(&self) -> Url {
        self.dv_token_url
            .clone()
            .unwrap_or_else(|| self.token_url())
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`, as Entra ID serves it.
    pub fn token_url(&self) -> Url {
        let base = self.authority_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/{}/oauth2/v2.0/token", self.tenant_id))
            .expect("authority URL and tenant were validated")
    }
}

/// `line N` (and the key on it, when one can be read) of a TOML parse error.
fn toml_error_place(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return "not valid TOML".into();
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or_default();
    let key = line.split_once('=').map(|(k, _)| k.trim()).filter(|k| {
        !k.is_empty()
            && k.len() <= 64
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    match key {
        Some(k) => format!("line {line_no} (key {k}) is not valid TOML"),
        None => format!("line {line_no} is not valid TOML"),
    }
}

/// A loopback IP literal (127.0.0.0/8, ::1); names are not trusted to resolve there.
fn is_loopback_host(url: &Url) -> bool {
    url.host_str()
        .map(|h| h.trim_matches(['[', ']']))
        .and_then(|h| h.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}
