//! The push service stand-in (`push_service.py`): a browser vendor's push
//! service, implemented independently of Herald (Python's `cryptography` and
//! `http_ece`), that checks VAPID, decrypts every push and records it.
//!
//! It runs on the Python of `HERALD_TEST_PUSH_PYTHON`, or of the venv
//! `.herald/push-venv` that `scripts/test` creates from
//! `crates/test-support/push-requirements.txt`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct PushService {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    child: Child,
    http: reqwest::Client,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("HERALD_TEST_PUSH_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".herald/push-venv/bin/python");
    assert!(
        venv.exists(),
        "the push service stand-in needs Python with http_ece and cryptography: run scripts/test \
         (it creates .herald/push-venv from crates/test-support/push-requirements.txt), or set \
         HERALD_TEST_PUSH_PYTHON"
    );
    venv
}

impl PushService {
    pub fn start() -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("push_service.py");
        let mut child = Command::new(python())
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the push service stand-in starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("it prints its port");
        let port: u16 = line.trim().parse().expect("a port number");
        Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
            http: reqwest::Client::new(),
        }
    }

    /// A new subscription, as a browser's `PushSubscription.toJSON()`.
    pub async fn subscription(&self) -> Value {
        self.post("/subscriptions", &serde_json::json!({})).await
    }

    /// `n` new subscriptions at once, sharing one key pair (for loads).
    pub async fn subscriptions(&self, n: usize) -> Vec<Value> {
        match self
            .post("/subscriptions", &serde_json::json!({ "count": n }))
            .await
        {
            Value::Array(subs) => subs,
            other => panic!("not a list of subscriptions: {other}"),
        }
    }

    /// How many pushes were received so far (cheaper to poll than
    /// [`Self::received`] under a load).
    pub async fn count(&self) -> usize {
        self.get("/count").await["received"].as_u64().expect("a count") as usize
    }

    /// How many connections that carried a push are still open: 0 once a
    /// killed sender's connections are all closed (and what it had sent
    /// before it died is recorded).
    pub async fn push_connections(&self) -> u64 {
        self.get("/connections").await["push"].as_u64().expect("a count")
    }

    /// The stand-in's process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every push received so far.
    pub async fn received(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/received", self.url))
            .send()
            .await
            .expect("the stand-in answers")
            .json()
            .await
            .expect("a JSON list")
    }

    /// How the next pushes are answered (see `push_service.py`).
    pub async fn set_mode(&self, mode: Value) {
        self.post("/mode", &mode).await;
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("the stand-in answers")
            .json()
            .await
            .expect("JSON")
    }

    async fn post(&self, path: &str, body: &Value) -> Value {
        self.http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .expect("the stand-in answers")
            .json()
            .await
            .expect("JSON")
    }
}

impl Drop for PushService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
