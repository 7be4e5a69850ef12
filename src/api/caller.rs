//! Who is calling: a client token verified, and the user recorded (with their profile and their
//! support chat) the first time this process sees them or their profile changes.

use std::hash::{Hash, Hasher};

use crate::app::App;
use crate::error::{Error, Result};
use crate::model::{Profile, User, UserId};
use crate::store;

/// Verifies a client token and stores the user (and their profile, if the token has one) the
/// first time this process sees them or their profile changes.
pub async fn authenticate(app: &App, token: &str) -> Result<UserId> {
    let leeway = app.config.token_leeway.as_secs();
    let claims = app
        .keys
        .verify(token, leeway)
        .map_err(Error::TokenInvalid)?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    claims.profile.hash(&mut h);
    let hash = h.finish();
    let known = app.seen.lock().unwrap().get(&claims.user) == Some(&hash);
    if !known {
        see_user(app, &claims.user, claims.profile.clone()).await?;
        app.seen.lock().unwrap().insert(claims.user.clone(), hash);
    }
    Ok(claims.user)
}

/// Records that `user` exists, with the profile fields given (absent ones keep their value),
/// and gives them their support chat when there is a support user; returns their public
/// profile. Runs in the writer, so concurrent first requests still make one support chat.
pub async fn see_user(app: &App, user: &UserId, profile: Option<Profile>) -> Result<User> {
    let user = user.clone();
    let support = app.config.support_user.clone();
    app.store
        .write(move |tx| {
            match &profile {
                Some(p) => store::users::upsert_profile(tx, &user, p)?,
                None => store::users::ensure(tx, &user)?,
            }
            if let Some(support) = support.filter(|s| s != &user) {
                super::chats::ensure_support_chat(tx, &user, &support)?;
            }
            Ok(store::users::profiles(tx, [user.as_str()])?.remove(0))
        })
        .await
}
