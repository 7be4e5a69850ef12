//! Chat management: who may change a chat, who is told, and membership as the access boundary.

mod boundary;
mod delete;
mod members;
mod rename;

use serde_json::Value;

use crate::helpers::{polled_of, until_message, Event, Sse, TestApp};

/// Some user ids.
type Users = &'static [&'static str];

/// Users watching for pushes both ways: a live SSE stream each, and a poll cursor taken before
/// the action.
struct Watchers {
    watching: Vec<(String, Sse, i64)>,
}

impl Watchers {
    async fn open(app: &TestApp, users: &[&str]) -> Watchers {
        let mut watching = Vec::new();
        for &user in users {
            let since = app.cursor(user).await;
            let sse = app.events(user, "snapshot=0", None).await;
            watching.push((user.to_string(), sse, since));
        }
        Watchers { watching }
    }

    fn stream(&mut self, user: &str) -> (&mut Sse, i64) {
        let (_, sse, since) = self
            .watching
            .iter_mut()
            .find(|(u, ..)| u == user)
            .expect("a watched user");
        (sse, *since)
    }

    /// The `kind` event `user` got on the stream; asserts it is stored and that a poll from the
    /// cursor returns exactly it.
    async fn got(&mut self, app: &TestApp, user: &str, kind: &str) -> Value {
        let (sse, since) = self.stream(user);
        let live = sse.next_of(kind).await;
        assert!(live.id.is_some(), "{kind} to {user} is a stored event");
        let polled = polled_of(app, user, since, kind).await;
        assert_eq!(polled, [live.data().clone()], "{kind} polled by {user}");
        live.data().clone()
    }

    /// Asserts `user` got no `kind` event: none on the stream before the `message` with id
    /// `sentinel` (sent after the action), none on a poll from the cursor.
    async fn got_no(&mut self, app: &TestApp, user: &str, kind: &str, sentinel: &Value) {
        let (sse, since) = self.stream(user);
        let before = until_message(sse, sentinel).await;
        let pushed: Vec<&Event> = before.iter().filter(|e| e.event == kind).collect();
        assert!(
            pushed.is_empty(),
            "{user} got {kind} on the stream: {pushed:?}"
        );
        let polled = polled_of(app, user, since, kind).await;
        assert!(polled.is_empty(), "{user} got {kind} on a poll: {polled:?}");
    }
}
