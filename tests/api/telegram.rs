//! Support over Telegram, through the real binary against a fake Bot API: a user's support
//! message reaches the staff's group naming the user and the chat, a staff reply to it comes
//! back into the support chat as the support user, a restart neither loses nor repeats a reply,
//! and an outage or flood control loses no support message.

use std::process::Child;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::helpers::binary::{post, serve_capturing, terminate};
use crate::helpers::telegram::{FakeBot, Mode, BOT_TOKEN, GROUP};
use crate::helpers::{http_client, now_s, wait_for, Sse, SECRET};

/// A token for `user` with a profile name.
fn token_named(user: &str, first: &str, last: &str) -> String {
    chinwag::auth::mint_claims(
        SECRET,
        &json!({"sub": user, "exp": now_s() + 3600,
                "profile": {"firstName": first, "lastName": last}}),
    )
}

/// The server's log so far.
type Log = Arc<Mutex<String>>;

/// Starts the binary in `cwd` with the bridge pointed at `bot` and bot token `token`.
fn serve_bridged(cwd: &std::path::Path, bot: &FakeBot, token: &str) -> (Child, String, Log) {
    let group = GROUP.to_string();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--secret",
        SECRET,
        "--support-user",
        "support",
        "--telegram-bot-token",
        token,
        "--telegram-chat-id",
        group.as_str(),
        "--telegram-api-url",
        bot.url.as_str(),
    ];
    serve_capturing(cwd, &args, &[("RUST_LOG", "chinwag=info")])
}

/// Waits until the server's log says `what`.
async fn logged(log: &Log, what: &str) {
    let said = || log.lock().unwrap().contains(what);
    let waited = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        wait_for(&format!("the log to say {what:?}"), 10.0, || {
            std::future::ready(said().then_some(()))
        })
        .await
    })
    .await;
    assert!(
        waited.is_ok() && said(),
        "the log never said {what:?}: {}",
        log.lock().unwrap()
    );
}

/// The user's support chat.
async fn support_chat(addr: &str, token: &str) -> i64 {
    let (status, body) = post(addr, token, "chats", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let chats = body["data"]["chats"].as_array().unwrap();
    let chat = chats
        .iter()
        .find(|c| c["kind"] == "support")
        .expect("a support chat");
    chat["id"].as_i64().unwrap()
}

/// Sends `text` to `chat` as the token's user; returns the stored message.
async fn say(addr: &str, token: &str, chat: i64, id: &str, text: &str) -> Value {
    let messages = json!({"messages": [{"clientMessageId": id, "chatId": chat, "text": text}]});
    let (status, body) = post(addr, token, "message", messages).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["messages"][0].clone()
}

/// The support chat's history, oldest first: each message's author and text.
async fn history(addr: &str, token: &str, chat: i64) -> Vec<(String, String)> {
    let (status, body) = post(
        addr,
        token,
        "history",
        json!({"chatId": chat, "limit": 100}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut out: Vec<(i64, String, String)> = body["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let author = m["userId"].as_str().unwrap_or("system").to_string();
            let text = m["text"].as_str().unwrap().to_string();
            (m["id"].as_i64().unwrap(), author, text)
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, a, t)| (a, t)).collect()
}

/// Waits until the support chat's history holds `n` messages by the support user.
async fn replies(addr: &str, token: &str, chat: i64, n: usize) -> Vec<String> {
    wait_for(
        &format!("{n} replies in the support chat"),
        15.0,
        || async {
            let from_support: Vec<String> = history(addr, token, chat)
                .await
                .into_iter()
                .filter(|(author, _)| author == "support")
                .map(|(_, text)| text)
                .collect();
            (from_support.len() >= n).then_some(from_support)
        },
    )
    .await
}

/// Opens the user's SSE stream.
async fn stream(addr: &str, token: &str) -> Sse {
    let res = http_client()
        .get(format!("{addr}/v1/events?token={token}"))
        .send()
        .await
        .unwrap();
    Sse::new(res)
}

// Two workers: the fake Bot API answers while the test waits for the banner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_support_conversation_runs_user_to_telegram_and_back_and_survives_a_restart() {
    let bot = FakeBot::start().await;
    let cwd = tempfile::tempdir().unwrap();
    let (mut server, addr, log) = serve_bridged(cwd.path(), &bot, BOT_TOKEN);
    logged(
        &log,
        "the Telegram bot @support_test_bot bridges support chats",
    )
    .await;
    let alice = token_named("alice", "Anna", "Petrova");
    let chat = support_chat(&addr, &alice).await;
    let mut sse = stream(&addr, &alice).await;

    // User → Telegram: the bot posts it to the group, naming the user and the chat.
    say(&addr, &alice, chat, "a1", "My order is late").await;
    let sent = bot.wait_sent(1, 10.0).await;
    assert_eq!(sent[0].method, "sendMessage");
    assert_eq!(sent[0].chat_id, GROUP.to_string());
    let heading = format!("Petrova Anna (user alice) · support chat {chat}");
    assert!(sent[0].text.starts_with(&heading), "{:?}", sent[0].text);
    assert!(
        sent[0].text.ends_with("My order is late"),
        "{:?}",
        sent[0].text
    );

    // Telegram → user: a staff reply to that post reaches the user's stream as the support user.
    bot.staff_writes("It is on its way", Some(sent[0].message_id));
    let got = sse
        .next_of_within("message", 15.0)
        .await
        .expect("the reply");
    let got = if got.data()["userId"] == "alice" {
        sse.next_of_within("message", 15.0)
            .await
            .expect("the reply")
    } else {
        got
    };
    assert_eq!(got.data()["userId"], "support");
    assert_eq!(got.data()["chatId"], chat);
    assert_eq!(got.data()["text"], "It is on its way");
    assert_eq!(got.data()["params"]["telegramStaff"], "Ivan Petrov");

    // A message in the group that replies to nothing gets the bot's help, as a reply to it.
    let before = bot.sent().len();
    bot.staff_writes("who handles refunds?", None);
    let sent = bot.wait_sent(before + 1, 10.0).await;
    let help = sent.last().unwrap();
    assert!(
        help.text.contains("reply to the message"),
        "{:?}",
        help.text
    );
    assert!(
        help.reply_to.is_some(),
        "the help answers the message it is about"
    );

    // An image goes as a photo with the heading as its caption.
    let png = crate::files::png(30, 20);
    let res = http_client()
        .post(format!("{addr}/v1/files?name=receipt.png"))
        .bearer_auth(&alice)
        .body(png.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let file: Value = res.json().await.unwrap();
    let file_id = file["data"]["id"].as_str().unwrap().to_string();
    let image = json!({"messages": [{"clientMessageId": "a2", "chatId": chat, "type": "image",
                                     "text": "the receipt", "fileId": file_id}]});
    let (status, body) = post(&addr, &alice, "message", image).await;
    assert_eq!(status, 200, "{body}");
    let sent = bot.wait_sent(before + 2, 10.0).await;
    let photo = sent.last().unwrap();
    assert_eq!(photo.method, "sendPhoto");
    assert_eq!(photo.file, Some(("receipt.png".to_string(), png.len())));
    assert!(photo.text.starts_with(&heading) && photo.text.ends_with("the receipt"));
    let photo_id = photo.message_id;

    // A restart in the middle: a reply written while the server is down arrives once after it,
    // and the reply read before the restart is not posted again.
    let handled = bot.offsets().last().copied().unwrap();
    assert_eq!(terminate(&mut server).code(), Some(0));
    let asked_before = bot.offsets().len();
    bot.staff_writes("Thanks, got the receipt", Some(photo_id));
    let (mut server, addr, _) = serve_bridged(cwd.path(), &bot, BOT_TOKEN);
    let texts = replies(&addr, &alice, chat, 2).await;
    assert_eq!(texts, ["It is on its way", "Thanks, got the receipt"]);
    let first_after = bot.offsets()[asked_before];
    assert!(
        first_after >= handled,
        "the restarted server asks from offset {first_after}, before {handled}: the offset was not kept"
    );
    // Give a repeat the chance to show: one more round trip of updates after the reply.
    bot.staff_writes("ping", None);
    bot.wait_sent(before + 3, 10.0).await;
    assert_eq!(
        replies(&addr, &alice, chat, 2).await.len(),
        2,
        "no reply twice"
    );
    // The user's own messages and the help answers are all the bot ever posted: none twice.
    let posted: Vec<String> = bot.sent().iter().map(|s| s.method.clone()).collect();
    assert_eq!(
        posted,
        ["sendMessage", "sendMessage", "sendPhoto", "sendMessage"]
    );
    terminate(&mut server);
}

// Two workers: the fake Bot API answers while the test waits for the banner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_photo_reply_reaches_the_user_as_an_image_they_can_download() {
    let bot = FakeBot::start().await;
    let cwd = tempfile::tempdir().unwrap();
    let (mut server, addr, _) = serve_bridged(cwd.path(), &bot, BOT_TOKEN);
    let dana = token_named("dana", "Daria", "Lebedeva");
    let chat = support_chat(&addr, &dana).await;
    say(
        &addr,
        &dana,
        chat,
        "d1",
        "Where do I find the order number?",
    )
    .await;
    let asked = bot.wait_sent(1, 10.0).await[0].message_id;

    let png = crate::files::png(30, 20);
    bot.staff_sends_photo(png.clone(), "Here, top right", asked);
    let reply = wait_for("the photo reply in the history", 15.0, || async {
        let query = json!({"chatId": chat, "limit": 10});
        let (_, body) = post(&addr, &dana, "history", query).await;
        let messages = body["data"]["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        messages.into_iter().find(|m| m["userId"] == "support")
    })
    .await;
    assert_eq!(reply["type"], "image");
    assert_eq!(reply["text"], "Here, top right");
    assert_eq!(reply["params"]["telegramStaff"], "Ivan Petrov");
    let file = &reply["file"];
    assert_eq!(file["mimeType"], "image/png");
    assert!(
        file["thumbnail"].is_string(),
        "a thumbnail like any image: {file}"
    );
    let res = http_client()
        .get(format!("{addr}{}", file["url"].as_str().unwrap()))
        .bearer_auth(&dana)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        png.as_slice(),
        "the photo's own bytes"
    );
    terminate(&mut server);
}

// Two workers: the fake Bot API answers while the test waits for the banner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_read_before_the_bot_has_recorded_its_post_still_reaches_the_user() {
    // Arrange: Telegram takes the post at once but answers the bot late, so the staff's reply
    // to it is read before the bridge knows the post's id.
    let bot = FakeBot::start().await;
    let cwd = tempfile::tempdir().unwrap();
    let (mut server, addr, _) = serve_bridged(cwd.path(), &bot, BOT_TOKEN);
    let erik = token_named("erik", "Erik", "Sorokin");
    let chat = support_chat(&addr, &erik).await;
    bot.set_mode(Mode::SlowSends(1500));
    say(&addr, &erik, chat, "e1", "Is my refund through?").await;
    let asked = bot.wait_sent(1, 10.0).await[0].message_id;

    // Act
    bot.staff_writes("Yes, this morning", Some(asked));

    // Assert
    let answers = replies(&addr, &erik, chat, 1).await;
    assert_eq!(answers, ["Yes, this morning"]);
    let helped = bot
        .sent()
        .iter()
        .any(|s| s.text.contains("reply to the message"));
    assert!(!helped, "the reply was taken for a stray message");
    terminate(&mut server);
}

// Two workers: the fake Bot API answers while the test waits for the banner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_and_flood_control_lose_no_support_message_and_keep_their_order() {
    let bot = FakeBot::start().await;
    let cwd = tempfile::tempdir().unwrap();
    bot.set_mode(Mode::Down);
    let (mut server, addr, log) = serve_bridged(cwd.path(), &bot, BOT_TOKEN);
    logged(&log, "the bridge keeps trying").await;
    let bob = token_named("bob", "Boris", "Orlov");
    let chat = support_chat(&addr, &bob).await;
    for i in 1..=3 {
        say(&addr, &bob, chat, &format!("b{i}"), &format!("message {i}")).await;
    }
    wait_for("the bot to try to send, twice, and fail", 10.0, || {
        std::future::ready((bot.refused().len() >= 2).then_some(()))
    })
    .await;
    assert!(bot.sent().is_empty());

    // Telegram is back: everything queued arrives, in order, once.
    bot.set_mode(Mode::Up);
    let sent = bot.wait_sent(3, 30.0).await;
    let texts: Vec<&str> = sent
        .iter()
        .map(|s| s.text.rsplit('\n').next().unwrap())
        .collect();
    assert_eq!(texts, ["message 1", "message 2", "message 3"]);

    // Flood control: the next send is refused with retry_after 2; the bot waits that long.
    bot.set_mode(Mode::FloodOnce(2));
    say(&addr, &bob, chat, "b4", "message 4").await;
    let sent = bot.wait_sent(4, 20.0).await;
    assert_eq!(sent[3].text.rsplit('\n').next(), Some("message 4"));
    let refused_at = *bot.refused().last().unwrap();
    let waited = sent[3].at.duration_since(refused_at);
    assert!(
        waited.as_secs_f64() >= 1.9,
        "retry_after was not honoured: {waited:?}"
    );
    assert_eq!(bot.sent().len(), 4, "nothing sent twice");
    terminate(&mut server);
}

// Two workers: the fake Bot API answers while the test waits for the banner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_reported_at_start_and_support_chats_work_without_the_bridge() {
    let bot = FakeBot::start().await;
    let cwd = tempfile::tempdir().unwrap();
    let (mut server, addr, log) = serve_bridged(cwd.path(), &bot, "4242:revoked");
    logged(&log, "the Telegram bot token was refused").await;
    logged(&log, "the bridge is off").await;
    let carol = token_named("carol", "Clara", "Sokolova");
    let chat = support_chat(&addr, &carol).await;
    say(&addr, &carol, chat, "c1", "hello?").await;
    assert_eq!(history(&addr, &carol, chat).await.len(), 1);
    // Nothing is read or sent with a refused token: the server asked who the bot is, and no
    // more. (A running bridge would have called getUpdates at once; give it a moment to show.)
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(bot.calls(), ["getMe"]);

    // With a good token after a restart, the message that waited is posted.
    terminate(&mut server);
    let (mut server, _, _) = serve_bridged(cwd.path(), &bot, BOT_TOKEN);
    let sent = bot.wait_sent(1, 10.0).await;
    assert!(sent[0].text.ends_with("hello?"), "{:?}", sent[0].text);
    terminate(&mut server);
}

#[test]
fn the_bridge_needs_a_support_user_and_a_well_formed_group() {
    let cwd = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(crate::helpers::binary::BIN)
            .arg("serve")
            .args(args)
            .current_dir(cwd.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let no_support = run(&["--telegram-bot-token", "1:x", "--telegram-chat-id", "-100"]);
    assert!(no_support.contains("--support-user"), "{no_support}");
    let bad_group = run(&[
        "--support-user",
        "help",
        "--telegram-bot-token",
        "1:x",
        "--telegram-chat-id",
        "staff room",
    ]);
    assert!(bad_group.contains("--telegram-chat-id"), "{bad_group}");
    let no_group = run(&["--support-user", "help", "--telegram-bot-token", "1:x"]);
    assert!(no_group.contains("--telegram-chat-id"), "{no_group}");
}
