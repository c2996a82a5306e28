//! Every connection costs a file descriptor: with a soft limit of 1024 (common), a few
//! hundred idle connections left nothing for deliveries, the stand-ins or the database. At
//! start the soft limit is raised toward the hard one (as Go and many servers do), and the
//! connection cap is kept well under whatever limit results.

/// Descriptors kept free for everything but the intake's connections.
const HEADROOM: u64 = 256;

/// The connection cap to use: `wanted`, or less when even the raised limit cannot hold it.
pub fn fit_connections(wanted: usize) -> usize {
    let limit = raise_soft_limit(wanted as u64 * 2 + HEADROOM);
    match limit {
        Some(limit) if limit < wanted as u64 + HEADROOM => {
            let cap = (limit.saturating_sub(HEADROOM) / 2).max(16) as usize;
            tracing::warn!(
                limit,
                wanted,
                cap,
                "the open-file limit is low (ulimit -n): fewer webhook connections at once"
            );
            cap
        }
        _ => wanted,
    }
}

/// Raises the soft open-file limit to `want` (at most the hard limit); returns the limit
/// now in force, `None` when unlimited or unknown.
#[cfg(unix)]
fn raise_soft_limit(want: u64) -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    let current = now.current?;
    if current >= want {
        return Some(current);
    }
    let target = now.maximum.map_or(want, |max| want.min(max));
    if target > current
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: now.maximum,
            },
        )
        .is_ok()
    {
        return Some(target);
    }
    Some(current)
}

#[cfg(not(unix))]
fn raise_soft_limit(_want: u64) -> Option<u64> {
    None
}
