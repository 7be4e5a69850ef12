//! A real `nats-server` on a free loopback port for the bus tests, ended when dropped, and a
//! bus client that sends seed 001's frames and reads the replies.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A running `nats-server`.
pub struct Nats {
    pub port: u16,
    token: Option<String>,
    child: Child,
}

impl Nats {
    /// Starts one on a free port (with an auth token when given); `None` where nats-server is
    /// not installed outside CI (the test is then skipped).
    pub fn start(token: Option<&str>) -> Option<Nats> {
        if !super::available("nats-server", &["--version"]) {
            eprintln!("skipped: nats-server is not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Some(Nats::on(port, token))
    }

    /// Starts one on `port`, waiting until it takes connections.
    pub fn on(port: u16, token: Option<&str>) -> Nats {
        let mut cmd = Command::new("nats-server");
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
        if let Some(t) = token {
            cmd.args(["--auth", t]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        // Not `wait_for`: this is synchronous (its callers do not await it), and bounded alike.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats {
            port,
            token: token.map(str::to_string),
            child,
        }
    }

    /// Its address for `--bus-url`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Ends it (SIGKILL) and waits for it.
    pub fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }

    /// Ends it (SIGKILL) and starts it again on the same port once `away` has run.
    pub async fn restart_after<F: std::future::Future<Output = ()>>(&mut self, away: F) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        away.await;
        let again = Nats::on(self.port, self.token.as_deref());
        *self = again;
    }

    /// A client of this server.
    pub async fn client(&self) -> async_nats::Client {
        let mut options = async_nats::ConnectOptions::new();
        if let Some(t) = &self.token {
            options = options.token(t.clone());
        }
        options.connect(self.url()).await.expect("a bus client")
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bus config of a test server on `nats`: topic `topic`, quick reconnects.
pub fn bus(url: String, topic: &str, token: Option<&str>) -> chinwag::config::Bus {
    chinwag::config::Bus {
        url,
        topic: topic.into(),
        token: token.map(str::to_string),
        timeout: Duration::from_secs(1),
        reconnect: Duration::from_millis(200),
    }
}

/// Sends `payload` on `topic` and reads the reply frame as (status, body); `None` when nothing
/// answers within 2 s.
pub async fn ask_raw(
    client: &async_nats::Client,
    topic: &str,
    payload: Vec<u8>,
) -> Option<(u16, Value)> {
    let asked = client.request(topic.to_string(), payload.into());
    let reply = tokio::time::timeout(Duration::from_secs(2), asked)
        .await
        .ok()?
        .ok()?;
    let frame: Value = serde_json::from_slice(&reply.payload).expect("a JSON reply frame");
    let status = frame["status"].as_u64().expect("a status") as u16;
    Some((status, frame["body"].clone()))
}

/// Sends the frame `{method, path, body}` and reads the reply; panics when nothing answers.
pub async fn ask(
    client: &async_nats::Client,
    topic: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let frame = json!({"method": method, "path": path, "body": body});
    ask_raw(client, topic, frame.to_string().into_bytes())
        .await
        .unwrap_or_else(|| panic!("no answer on the bus to {method} {path}"))
}

/// A TCP relay to a NATS server that the test can cut and heal: a network partition between
/// one node and NATS while the others stay connected.
pub struct Partition {
    pub port: u16,
    cut: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Partition {
    /// Relays connections on a free loopback port to the NATS server on `to`.
    pub async fn to(to: u16) -> Partition {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, watch) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                // While cut, a connection is closed as soon as it comes.
                if *watch.borrow() {
                    continue;
                }
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watch.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Partition { port, cut, task }
    }

    /// The address nodes behind it connect to.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Cuts every connection through it, and refuses new ones until [`Partition::heal`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn heal(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.task.abort();
    }
}
