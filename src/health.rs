//! The process's own checks: `chinwag health` (asks a running server's `/healthz`, for container
//! health checks where the image has no curl) and raising the open-file limit at start.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Asks `GET /healthz` of the server listening on `listen`; Ok when it answers 200. An
/// unspecified address (`0.0.0.0`, `::`) means this machine's loopback.
pub fn check(listen: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let mut conn = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| anyhow::anyhow!("cannot reach {addr}: {e}"))?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    write!(
        conn,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    conn.take(64 * 1024)
        .read_to_end(&mut answer)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                anyhow::anyhow!("no answer from {addr} within {timeout:?}")
            }
            _ => anyhow::anyhow!("no answer from {addr}: {e}"),
        })?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        println!("ok: {addr} is healthy");
        Ok(())
    } else {
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        anyhow::bail!("{addr} is not healthy: {status} {body}")
    }
}

/// This process's soft and hard limits on open files.
#[cfg(unix)]
pub fn open_files() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed to it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // rlim_t is u64 on the platforms served, not on every one.
    #[allow(clippy::unnecessary_cast)]
    Ok((limit.rlim_cur as u64, limit.rlim_max as u64))
}

/// Sets this process's soft and hard limits on open files. Only setrlimit runs (it is
/// async-signal-safe), so a parent may call it between fork and exec to limit a child.
#[cfg(unix)]
pub fn set_open_files(soft: u64, hard: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit only reads the struct passed to it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// This process's soft limit on open files, if it can tell.
pub fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        open_files().ok().map(|(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises this process's soft limit on open files to its hard limit and logs the figure: every
/// stream is a socket, and containers often start at 1,024.
pub fn raise_open_files_limit() {
    #[cfg(unix)]
    {
        let Ok((before, hard)) = open_files() else {
            tracing::warn!("cannot read the open-file limit");
            return;
        };
        if before < hard {
            if let Err(e) = set_open_files(hard, hard) {
                tracing::warn!("open-file limit: {before}; raising it to {hard} failed: {e}");
                return;
            }
        }
        tracing::info!("open-file limit: {hard} (was {before}); each open stream takes one");
    }
}
