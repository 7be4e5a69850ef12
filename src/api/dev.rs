//! Development sign-in (`--dev` only): a client token for any user name, so the demo app can be
//! tried without a host backend. Never on in production: anyone could be anyone.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::App;
use crate::model::UserId;

/// How long a development token lasts: a day, as `chinwag token`'s default.
const TTL: u64 = 86_400;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequest {
    user_id: UserId,
}

/// `POST /v1/dev/token`: a token for the user, its profile's first name the user id (so the
/// demo shows a name), `{token, userId, expiresAt}`.
pub fn token(app: &Arc<App>, req: TokenRequest) -> Value {
    let exp = crate::time::now_ms() / 1000 + TTL as i64;
    let claims = json!({
        "sub": req.user_id.as_str(),
        "exp": exp,
        "profile": {"firstName": req.user_id.as_str()},
    });
    let token = app.keys.mint_claims(&claims);
    json!({
        "token": token,
        "userId": req.user_id.as_str(),
        "expiresAt": crate::time::rfc3339(exp * 1000),
    })
}
