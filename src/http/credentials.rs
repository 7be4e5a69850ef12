//! Who is calling: the bearer credential of a request, a client's token checked (with their
//! request rate), or the host backend's service key.

use http::header;

use super::query;
use crate::api;
use crate::app::App;
use crate::error::{Error, Result};
use crate::model::UserId;

/// The bearer credential of `Authorization`, if there is one. Two `Authorization` headers are
/// refused: a proxy and the client could each have added one, and which one counts is a guess.
pub fn bearer(req: &super::In) -> Result<Option<&str>> {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match req.headers().contains_key(header::AUTHORIZATION) {
            true => Err(Error::TokenInvalid(
                "more than one Authorization header: send exactly one".into(),
            )),
            false => Ok(None),
        };
    };
    let Some((scheme, token)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return Ok(None);
    };
    Ok(scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()))
}

/// The caller of a client endpoint, from `Authorization: Bearer` or (streams only) `?token=`.
pub async fn caller(app: &App, req: &super::In, query_token: bool) -> Result<UserId> {
    let token = token(req, query_token)?;
    let user = api::caller::authenticate(app, &token).await?;
    tracing::Span::current().record("user", user.as_str());
    app.limits.check_user(&user)?;
    Ok(user)
}

/// The client token of a request, from `Authorization: Bearer` or (streams only) `?token=`.
pub fn token(req: &super::In, query_token: bool) -> Result<String> {
    let from_query = query_token.then(|| query(req).remove("token")).flatten();
    Ok(match (bearer(req)?, from_query.as_deref()) {
        (Some(t), _) => t.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => {
            return Err(Error::TokenInvalid(if query_token {
                "no token: send Authorization: Bearer <token> or ?token=<token>".into()
            } else {
                "no token: send Authorization: Bearer <token>".into()
            }))
        }
    })
}

/// Checks that the caller presents the host backend's service key.
pub fn service_key(app: &App, req: &super::In) -> Result<()> {
    match bearer(req)? {
        Some(key) if app.keys.is_service_key(key) => Ok(()),
        Some(_) => Err(Error::TokenInvalid("the service key does not match".into())),
        None => Err(Error::TokenInvalid(
            "this endpoint needs Authorization: Bearer <service key>".into(),
        )),
    }
}
