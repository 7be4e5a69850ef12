//! Groups and their size: membership deltas, capped member lists and paging, the group size
//! limit, presence and receipts in large groups, and message events replayed as messages now are.

mod deltas;
mod large;
mod presence;
mod receipts;
mod replays;

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Event, Sse};

/// The ids of a list of objects with an `id` (members, users), in the order given.
fn ids_of(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|m| m["id"].as_str().expect("a string id").to_string())
        .collect()
}

/// Every event that arrives on `sse` within `secs` seconds.
async fn events_within(sse: &mut Sse, secs: f64) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return seen;
        }
        match sse.next_within(left.as_secs_f64()).await {
            Some(e) => seen.push(e),
            None => return seen,
        }
    }
}
