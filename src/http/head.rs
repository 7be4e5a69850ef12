//! The bounds of a request's head (its target and header fields), answered in the error envelope
//! well below the HTTP layer's own hard limits, which can only answer with an empty body.

use http::Request;

use crate::error::{Error, Result};

/// The longest request target (path and query) Chinwag reads: its longest real one (a history
/// page with every parameter) is under 200 bytes.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;
/// The most header fields a request may carry. Browsers send about 20.
pub const MAX_HEADER_FIELDS: usize = 100;
/// The most bytes of header names and values a request may carry (a token is under 1 KiB).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// The HTTP layer's own limit on header fields, past which it answers `431` with no body.
pub const HARD_MAX_HEADER_FIELDS: usize = 2 * MAX_HEADER_FIELDS;

/// Refuses a request whose target or headers are over the bounds above: `414 uri_too_long` or
/// `431 headers_too_large`.
pub fn check<B>(req: &Request<B>) -> Result<()> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_TARGET_BYTES {
        return Err(Error::UriTooLong {
            size: target,
            limit: MAX_TARGET_BYTES,
        });
    }
    let headers = req.headers();
    if headers.len() > MAX_HEADER_FIELDS {
        return Err(Error::HeadersTooLarge(format!(
            "the request has {} header fields, over the limit of {MAX_HEADER_FIELDS}",
            headers.len()
        )));
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(Error::HeadersTooLarge(format!(
            "the request has {bytes} bytes of headers, over the limit of {MAX_HEADER_BYTES}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, headers: &[(&str, String)]) -> Request<()> {
        let mut req = Request::get(target);
        for (name, value) in headers {
            req = req.header(*name, value.as_str());
        }
        req.body(()).unwrap()
    }

    fn reason(req: &Request<()>) -> Option<&'static str> {
        check(req).err().map(|e| e.response_parts().1)
    }

    #[test]
    fn an_ordinary_request_passes() {
        let token = "x".repeat(1000);
        let req = request(
            "/v1/messages?chatId=1",
            &[("authorization", format!("Bearer {token}"))],
        );
        assert_eq!(reason(&req), None);
    }

    #[test]
    fn a_long_target_is_414_and_one_at_the_limit_passes() {
        let at = format!("/v1/poll?x={}", "a".repeat(MAX_TARGET_BYTES - 11));
        assert_eq!(at.len(), MAX_TARGET_BYTES);
        assert_eq!(reason(&request(&at, &[])), None);
        let over = format!("{at}a");
        assert_eq!(reason(&request(&over, &[])), Some("uri_too_long"));
    }

    #[test]
    fn too_many_fields_or_bytes_are_431() {
        let names: Vec<String> = (0..=MAX_HEADER_FIELDS).map(|i| format!("x-h{i}")).collect();
        let many: Vec<(&str, String)> = names.iter().map(|n| (n.as_str(), "1".into())).collect();
        assert_eq!(reason(&request("/", &many[1..])), None);
        assert_eq!(reason(&request("/", &many)), Some("headers_too_large"));
        let big = [("x-big", "v".repeat(MAX_HEADER_BYTES))];
        assert_eq!(reason(&request("/", &big)), Some("headers_too_large"));
    }
}
