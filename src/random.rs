//! Random values from the OS random source (file ids, temporary file names, host messages' client
//! ids, generated secrets): the one place where a failure of that source becomes an error, a 500
//! whose cause is logged, instead of a fixed value or a panic.

use crate::error::{Error, Result};

/// `bytes` bytes from the OS random source as `2 * bytes` lowercase hex characters.
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| {
        Error::Internal(
            anyhow::anyhow!("the OS random source failed: {e}")
                .context(format!("drawing {bytes} random bytes")),
        )
    })?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_of_the_asked_length_and_fresh_each_time() {
        let a = random_hex(16).unwrap();
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{a}"
        );
        assert_ne!(a, random_hex(16).unwrap());
        assert_eq!(random_hex(0).unwrap(), "");
    }
}
