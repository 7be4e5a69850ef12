//! Bodies larger than one NATS message through edges: a 3 MB upload and its download (and a
//! range of it), a 1.2 MB answer.

use serde_json::{json, Value};

use super::*;

#[tokio::test]
async fn files_larger_than_a_nats_message_go_up_and_down_through_edges() {
    let Some((_cluster, s)) = scene().await else {
        return;
    };
    // 3 MB: three times what one NATS message carries by default.
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let res = http_client()
        .post(format!("{}/v1/files?name=big.bin", s.a))
        .bearer_auth(&s.alice)
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let file: Value = res.json().await.unwrap();
    let id = file["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(file["data"]["size"], 3_000_000);
    let data = json!({"messages": [{"chatId": s.chat, "clientMessageId": "f", "type": "file", "fileId": id}]});
    let (status, body) = post(&s.a, &s.alice, "message", data).await;
    assert_eq!(status, 200, "{body}");

    let res = http_client()
        .get(format!("{}/v1/files/{id}?token={}", s.b, s.bob))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], "3000000");
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        &bytes[..],
        "the same bytes"
    );
    // A range of it, as a player asks.
    let res = http_client()
        .get(format!("{}/v1/files/{id}?token={}", s.b, s.bob))
        .header("Range", "bytes=1000000-1000009")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        &bytes[1_000_000..1_000_010]
    );
}

#[tokio::test]
async fn an_answer_larger_than_a_nats_message_comes_through_an_edge_whole() {
    let Some((_cluster, s)) = scene().await else {
        return;
    };
    // 20 messages of 60,000 characters: their history is about 1.2 MB of JSON, in one frame.
    let long = "x".repeat(60_000);
    for i in 0..20 {
        send(
            &s.a,
            &s.alice,
            s.chat,
            &format!("l{i}"),
            &format!("{i} {long}"),
        )
        .await;
    }
    let (status, body) = post(
        &s.b,
        &s.bob,
        "history",
        json!({"chatId": s.chat, "limit": 20}),
    )
    .await;
    assert_eq!(status, 200);
    let texts: Vec<&str> = (body["data"]["messages"].as_array().unwrap())
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 20);
    assert!(texts
        .iter()
        .enumerate()
        .all(|(i, t)| *t == format!("{i} {long}")));
}
