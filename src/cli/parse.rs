//! The command line's value parsers: durations, sizes, rates, keys, addresses and user ids,
//! each refusing a bad value with a message clap shows as it is.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config;

pub(super) fn parse_user(s: &str) -> Result<crate::model::UserId, String> {
    crate::model::UserId::parse(s)
}

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 7d, 12h, 90s)"))
}

/// A duration, or a bare number of milliseconds (seed 001's `BUS_TIMEOUT=1000`).
pub(super) fn parse_millis(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => parse_duration(s),
    }
    .and_then(|d| positive(d, s))
}

/// A duration, or a bare number of seconds (seed 001's `RECONNECT_TO_SERVICE=15`).
pub(super) fn parse_seconds(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => parse_duration(s),
    }
    .and_then(|d| positive(d, s))
}

fn positive(d: Duration, s: &str) -> Result<Duration, String> {
    if d.is_zero() {
        Err(format!("{s:?} must be more than zero"))
    } else {
        Ok(d)
    }
}

/// A NATS subject to listen on: dot-separated tokens, no spaces, no wildcards.
pub(super) fn parse_subject(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.split('.').all(|t| !t.is_empty())
        && !s.contains(|c: char| c.is_whitespace() || c == '*' || c == '>');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a NATS subject: dot-separated words without spaces or wildcards, e.g. chinwag.host"
        ))
    }
}

/// A secret or key given on the command line or in the environment: never empty or blank (an
/// empty HS256 key would let anyone mint tokens; `CHINWAG_SECRET=` is an easy slip).
pub(super) fn parse_key(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err(
            "must not be empty: leave it unset to use the one kept in the data directory".into(),
        );
    }
    Ok(s.to_string())
}

/// Requests a second: a number, 0 or more (0 turns the limit off).
pub(super) fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!(
            "not a rate: {s:?} (requests a second, e.g. 20 or 0.5; 0 for no limit)"
        )),
    }
}

pub(super) fn parse_retention(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s: events need to stay resumable for a while".into());
    }
    Ok(d)
}

pub(super) fn parse_stall_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than 0: a client needs some time to accept data".into());
    }
    Ok(d)
}

pub(super) fn parse_body_limit(s: &str) -> Result<usize, String> {
    let n = config::parse_size(s)?;
    if n < 1024 {
        return Err(format!(
            "{n} bytes is too small for any request: use at least 1KiB"
        ));
    }
    Ok(n)
}

pub(super) fn parse_upload_limit(s: &str) -> Result<usize, String> {
    match config::parse_size(s)? {
        0 => Err("must be at least 1 byte".into()),
        n => Ok(n),
    }
}

/// A token lifetime: a bare number is seconds (as before), anything else a duration.
pub(super) fn parse_ttl(s: &str) -> Result<Duration, String> {
    let ttl = match s.trim().parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => parse_duration(s)?,
    };
    if ttl.as_secs() == 0 {
        return Err("a token must live at least one second".into());
    }
    Ok(ttl)
}

/// `HOST:PORT`, `[IPv6]:PORT`, a name that resolves (`localhost:8080`), or `:PORT` for every
/// interface (the form of the seed's `WEBSOCKET_PORT`).
pub(super) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let full = match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_string(),
    };
    if let Ok(addr) = full.parse::<SocketAddr>() {
        return Ok(addr);
    }
    std::net::ToSocketAddrs::to_socket_addrs(&full)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            format!("not an address: {s:?} (use HOST:PORT, e.g. 127.0.0.1:8080, or :8080)")
        })
}
