//! Integration-test helpers: start the real services in-process on port 0
//! against real Postgres and Redis, mint tokens, publish and stream.
//!
//! Each test gets its own database (from `#[sqlx::test]`) and its own Redis
//! channel prefix, so tests run in parallel and never see each other.

pub mod push;
pub mod raw;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use herald_bus::cluster::topology::{self, Topology};
use herald_bus::{Bus, LocalBus};
use herald_domain::sse::{ParsedEvent, Parser};
use herald_domain::Envelope;
use herald_platform::config::{RedisServers, Secret};
use herald_platform::Settings;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-secret-not-for-production";

/// The Redis the tests share (`HERALD_TEST_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("HERALD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Test settings: port 0 everywhere, a unique Redis prefix, fast polling.
pub fn settings(redis_url: &str) -> Settings {
    let prefix = format!("test-{}", uuid::Uuid::now_v7().simple());
    let map: HashMap<&str, String> = HashMap::from([
        ("HERALD_REDIS_URL", redis_url.to_owned()),
        ("HERALD_REDIS_PREFIX", prefix),
        ("HERALD_JWT_SECRET", SECRET.to_owned()),
        ("HERALD_API_ADDR", "127.0.0.1:0".into()),
        ("HERALD_GATEWAY_ADDR", "127.0.0.1:0".into()),
        ("HERALD_WORKER_ADDR", "127.0.0.1:0".into()),
        ("HERALD_WORKER_POLL", "50ms".into()),
        ("HERALD_SHUTDOWN_GRACE", "0ms".into()),
        // `HERALD_TEST_REPLAY_WINDOW_BYTES=0` runs the tests with every resume
        // replayed from Postgres (scripts/test does both).
        (
            "HERALD_REPLAY_WINDOW_BYTES",
            std::env::var("HERALD_TEST_REPLAY_WINDOW_BYTES")
                .unwrap_or_else(|_| (32 * 1024 * 1024).to_string()),
        ),
    ]);
    Settings::from_lookup(&|k| map.get(k).cloned()).expect("test settings are valid")
}

/// A running service: its address and how to stop it.
pub struct Service {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    join: Option<JoinHandle<std::io::Result<()>>>,
}

impl Service {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful stop (SIGTERM equivalent); returns once it has exited.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(join) = self.join.take() {
            let _ = join.await;
        }
    }

    /// Cancels the service's task mid-flight: the in-process analogue of a
    /// crash (open transactions roll back, nothing after the await point runs).
    pub async fn abort(&mut self) {
        if let Some(join) = self.join.take() {
            join.abort();
            let _ = join.await;
        }
        self.shutdown.cancel();
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

pub async fn start_api(settings: &Settings, pool: PgPool) -> Service {
    let app = herald_api::Application::build(settings.clone(), pool)
        .await
        .expect("api builds");
    let addr = app.local_addr();
    let shutdown = CancellationToken::new();
    let join = Some(tokio::spawn(app.run_until_stopped(shutdown.clone())));
    Service { addr, shutdown, join }
}

pub async fn start_worker(settings: &Settings, pool: PgPool, bus: &Bus) -> Service {
    let worker = herald_worker::Worker::build_on(settings, pool, bus.clone())
        .await
        .expect("worker builds");
    let addr = worker.local_addr();
    let shutdown = CancellationToken::new();
    let join = Some(tokio::spawn(worker.run_until_stopped(shutdown.clone())));
    Service { addr, shutdown, join }
}

pub async fn start_gateway(settings: &Settings, pool: PgPool, bus: &Bus) -> Service {
    let gateway = herald_gateway::Gateway::build_on(settings.clone(), pool, bus.clone())
        .await
        .expect("gateway builds");
    let addr = gateway.local_addr();
    let shutdown = CancellationToken::new();
    let join = Some(tokio::spawn(gateway.run_until_stopped(shutdown.clone())));
    let service = Service { addr, shutdown, join };
    wait_ready(&service.url()).await;
    service
}

/// Waits until `GET {url}/readyz` answers 200 (at most 10 s).
pub async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{url}/readyz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not become ready");
}

/// The bus the tests run on: Redis (the default), or the in-process bus of
/// the single-node binary when `HERALD_TEST_BUS=local`.
pub fn test_bus(settings: &Settings) -> Bus {
    match std::env::var("HERALD_TEST_BUS").as_deref() {
        Ok("local") => Bus::Local(LocalBus::default()),
        _ => Bus::from_settings(&settings.bus),
    }
}

/// api + worker + gateway on one fresh database and a private Redis prefix
/// (or one in-process bus).
pub struct TestApp {
    pub pool: PgPool,
    pub settings: Settings,
    pub bus: Bus,
    pub api: Service,
    pub worker: Option<Service>,
    pub gateway: Service,
    pub http: reqwest::Client,
}

impl TestApp {
    pub async fn spawn(pool: PgPool) -> Self {
        Self::spawn_with(pool, settings(&redis_url())).await
    }

    pub async fn spawn_with(pool: PgPool, settings: Settings) -> Self {
        let bus = test_bus(&settings);
        Self::spawn_on(pool, settings, bus).await
    }

    pub async fn spawn_on(pool: PgPool, settings: Settings, bus: Bus) -> Self {
        let api = start_api(&settings, pool.clone()).await;
        let worker = start_worker(&settings, pool.clone(), &bus).await;
        let gateway = start_gateway(&settings, pool.clone(), &bus).await;
        Self {
            pool,
            settings,
            bus,
            api,
            worker: Some(worker),
            gateway,
            http: reqwest::Client::new(),
        }
    }

    /// Whether this app runs on the in-process bus.
    pub fn local_bus(&self) -> bool {
        matches!(self.bus, Bus::Local(_))
    }

    pub fn api_url(&self) -> String {
        self.api.url()
    }

    pub fn gateway_url(&self) -> String {
        self.gateway.url()
    }

    /// Starts (another) worker on the same database and prefix.
    pub async fn start_worker(&mut self) {
        assert!(self.worker.is_none(), "a worker is already running");
        self.worker = Some(start_worker(&self.settings, self.pool.clone(), &self.bus).await);
    }

    /// A second gateway sharing the database and the bus.
    pub async fn another_gateway(&self) -> Service {
        start_gateway(&self.settings, self.pool.clone(), &self.bus).await
    }

    pub async fn publish(&self, topic: &str, event_type: &str, data: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/events", self.api_url()))
            .bearer_auth(service_token())
            .json(&json!({"topic": topic, "type": event_type, "data": data}))
            .send()
            .await
            .expect("api answers")
    }

    /// Publishes and asserts it was accepted.
    pub async fn publish_ok(&self, topic: &str, n: u64) {
        let r = self.publish(topic, "test.event", json!({ "n": n })).await;
        assert_eq!(
            r.status(),
            202,
            "publish failed: {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// Opens a stream on this app's gateway.
    pub async fn stream(&self, token: &str, topics: &str, last_event_id: Option<&str>) -> SseClient {
        SseClient::connect(&self.gateway_url(), token, topics, last_event_id).await
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs arbitrary claims with the test secret (HS256).
pub fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("claims serialize")
}

/// A user's access token.
pub fn user_token(sub: &str) -> String {
    sign(&json!({"sub": sub, "aud": "herald", "exp": now() + 3600}))
}

/// A user token with a `topics` claim.
pub fn user_token_with_topics(sub: &str, topics: &[&str]) -> String {
    sign(&json!({"sub": sub, "aud": "herald", "exp": now() + 3600, "topics": topics}))
}

/// A service token with the `publish` scope.
pub fn service_token() -> String {
    sign(&json!({"sub": "svc-test", "aud": "herald", "exp": now() + 3600, "scope": "publish"}))
}

/// A service token allowed to read every topic.
pub fn admin_token() -> String {
    sign(&json!({"sub": "admin-test", "aud": "herald", "exp": now() + 3600, "scope": "admin"}))
}

/// A minimal SSE client over reqwest, parsing frames with the conforming
/// parser from `herald_domain::sse`.
pub struct SseClient {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    body: Option<futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    parser: Parser,
    pending: std::collections::VecDeque<ParsedEvent>,
    returned_id: String,
    pub raw: String,
    pub ended: bool,
}

impl SseClient {
    pub async fn connect(base: &str, token: &str, topics: &str, last_event_id: Option<&str>) -> Self {
        let mut req = reqwest::Client::new().get(format!("{base}/v1/stream"));
        if !topics.is_empty() {
            req = req.query(&[("topics", topics)]);
        }
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        Self::from_request(req).await
    }

    pub async fn from_request(req: reqwest::RequestBuilder) -> Self {
        let resp = req.send().await.expect("gateway answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Self {
            status,
            headers,
            body: Some(resp.bytes_stream().boxed()),
            parser: Parser::new(),
            pending: Default::default(),
            returned_id: String::new(),
            raw: String::new(),
            ended: false,
        }
    }

    /// The response body of a refused stream (problem+json).
    pub async fn problem(mut self) -> Value {
        let mut buf = Vec::new();
        if let Some(mut body) = self.body.take() {
            while let Some(Ok(chunk)) = body.next().await {
                buf.extend_from_slice(&chunk);
            }
        }
        serde_json::from_slice(&buf).unwrap_or(Value::Null)
    }

    /// The next dispatched event, or `None` on timeout or end of stream.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<ParsedEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.pending.pop_front() {
                self.returned_id = e.id.clone();
                return Some(e);
            }
            let body = self.body.as_mut()?;
            match tokio::time::timeout_at(deadline, body.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => {
                    self.ended = true;
                    self.body = None;
                    return None;
                }
                Ok(Some(Ok(chunk))) => {
                    self.raw.push_str(&String::from_utf8_lossy(&chunk));
                    self.pending.extend(self.parser.feed(&chunk));
                }
            }
        }
    }

    /// Collects `n` envelopes (skipping nothing: control events panic).
    pub async fn envelopes(&mut self, n: usize, timeout: Duration) -> Vec<Envelope> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(e) = self.next_event(left).await else {
                break;
            };
            assert!(!e.event.starts_with("herald."), "unexpected control event {e:?}");
            let env: Envelope = serde_json::from_str(&e.data).expect("data is an envelope");
            assert_eq!(e.id, env.seq.to_string(), "SSE id is the envelope's seq");
            assert_eq!(e.event, env.event_type, "SSE event is the envelope's type");
            out.push(env);
        }
        out
    }

    /// The client's resume position (what a browser sends as Last-Event-ID).
    /// Events parsed but not yet returned do not count: the caller has not
    /// seen them.
    pub fn last_event_id(&self) -> String {
        if self.pending.is_empty() {
            self.parser.last_event_id().to_owned()
        } else {
            self.returned_id.clone()
        }
    }

    /// Waits until the server ends the stream; true if it did within `timeout`.
    pub async fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return self.ended;
            }
            if self.next_event(left).await.is_none() && self.ended {
                return true;
            }
        }
    }
}

/// A private `redis-server` on a free port, for tests that kill or restart
/// Redis without disturbing other tests.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = free_port();
        let mut s = Self { port, child: None };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// SIGKILLs the server.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills every client connection of `kind` (`pubsub` or `normal`).
    pub async fn kill_clients(&self, kind: &str) -> i64 {
        let client = redis::Client::open(self.url()).expect("url");
        let mut c = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis answers");
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg(kind)
            .arg("SKIPME")
            .arg("yes")
            .query_async(&mut c)
            .await
            .expect("CLIENT KILL")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private Redis Cluster of three masters (no replicas) from Debian's
/// `redis-server`, on free ports, torn down on drop. Each node keeps its
/// `nodes-<port>.conf` in a private directory, so a restarted node rejoins
/// with its identity and slots.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    bus_ports: Vec<u16>,
    dir: std::path::PathBuf,
    children: Vec<Option<Child>>,
}

impl RedisCluster {
    /// Starts three nodes, creates the cluster and waits for `cluster_state:ok`.
    ///
    /// Ports come from below the kernel's ephemeral range, so neither an
    /// outgoing connection nor another test's `free_port` can take one
    /// between our check and the server's bind (which matters most when a
    /// node restarts on its port); a clash with a concurrent cluster is
    /// detected and retried with other ports.
    pub fn start() -> Self {
        let mut attempt = 0;
        let cluster = loop {
            attempt += 1;
            let dir = std::env::temp_dir().join(format!("herald-cluster-{}", uuid::Uuid::now_v7().simple()));
            std::fs::create_dir_all(&dir).expect("a temporary directory");
            let mut cluster = Self {
                ports: (0..3).map(|_| quiet_port()).collect(),
                bus_ports: (0..3).map(|_| quiet_port()).collect(),
                children: (0..3).map(|_| None).collect(),
                dir,
            };
            if (0..3).all(|i| cluster.try_start_node(i)) {
                break cluster;
            }
            assert!(attempt < 10, "could not start three redis-server nodes");
            drop(cluster); // kills what started; try other ports
        };
        let nodes: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_ok();
        cluster
    }

    /// The seed URLs, comma-separated, as `HERALD_REDIS_URL` takes them.
    pub fn url(&self) -> String {
        self.seeds().join(",")
    }

    pub fn seeds(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// Test settings (a unique prefix) on this cluster.
    pub fn settings(&self) -> Settings {
        let seeds = self.seeds();
        let mut s = settings(&seeds[0]);
        s.bus.redis = Some(RedisServers::Cluster(
            seeds.into_iter().map(Secret::new).collect(),
        ));
        s
    }

    /// A `TestApp` on this cluster, under a unique prefix.
    pub async fn app(&self, pool: PgPool) -> TestApp {
        let settings = self.settings();
        let bus = Bus::from_settings(&settings.bus);
        TestApp::spawn_on(pool, settings, bus).await
    }

    /// Starts node `i` (again) on its port and waits until it answers.
    pub fn start_node(&mut self, i: usize) {
        assert!(
            self.try_start_node(i),
            "redis-server did not start on port {}",
            self.ports[i]
        );
    }

    /// Starts node `i`; false if it exited (its port was taken) or never answered.
    fn try_start_node(&mut self, i: usize) -> bool {
        let port = self.ports[i].to_string();
        let conf = self.dir.join(format!("nodes-{port}.conf"));
        let mut child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-port", &self.bus_ports[i].to_string()])
            .arg("--cluster-config-file")
            .arg(&conf)
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        for _ in 0..250 {
            if let Ok(Some(_)) = child.try_wait() {
                return false; // it could not bind
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.ports[i])).is_ok() {
                std::thread::sleep(Duration::from_millis(50));
                if let Ok(Some(_)) = child.try_wait() {
                    return false; // that was somebody else's server
                }
                self.children[i] = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// SIGKILLs node `i`.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills node `i` and starts it again; returns once every node reports
    /// `cluster_state:ok`.
    pub fn restart_node(&mut self, i: usize) {
        self.kill_node(i);
        self.start_node(i);
        self.wait_ok();
    }

    /// Waits (up to 60 s) until every node reports `cluster_state:ok`.
    pub fn wait_ok(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ok = self.ports.iter().all(|p| {
                Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "cluster", "info"])
                    .stdin(Stdio::null())
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
                    .unwrap_or(false)
            });
            if ok {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the cluster did not reach cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    async fn node(&self, port: u16) -> redis::aio::MultiplexedConnection {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("the node answers")
    }

    /// Kills the client connections of `kind` (`pubsub`, `normal`) on node `port`.
    pub async fn kill_clients(&self, port: u16, kind: &str) -> i64 {
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg(kind)
            .arg("SKIPME")
            .arg("yes")
            .query_async(&mut self.node(port).await)
            .await
            .expect("CLIENT KILL")
    }

    /// The current topology.
    pub async fn topology(&self) -> Topology {
        let seeds = topology::seeds(&self.seeds()).expect("seed URLs");
        Topology::fetch(&seeds).await.expect("CLUSTER SLOTS")
    }

    /// One topic `{kind}:{key}` per master, whose channel (under `prefix`)
    /// that master owns, with the master's port; in master order.
    pub async fn topic_per_shard(&self, prefix: &str, kind: &str) -> Vec<(String, u16)> {
        let topology = self.topology().await;
        let masters = topology.masters();
        (0..masters.len())
            .map(|m| {
                let topic = (0u32..)
                    .map(|i| format!("{kind}:k{i}"))
                    .find(|t| topology.master_of(&herald_bus::channel(prefix, t)) == Some(m))
                    .expect("some key lands on every master");
                (topic, masters[m].port)
            })
            .collect()
    }

    /// Moves `slot` (holding no keys) to the master on port `to`, the way
    /// `redis-cli --cluster reshard` does, and waits until every node agrees.
    pub async fn move_slot(&self, slot: u16, to: u16) {
        let topology = self.topology().await;
        let from = topology.masters()[topology.master_of_slot(slot).expect("an owned slot")].port;
        assert_ne!(from, to, "slot {slot} is already on {to}");
        let id = |port: u16| async move {
            redis::cmd("CLUSTER")
                .arg("MYID")
                .query_async::<String>(&mut self.node(port).await)
                .await
                .expect("CLUSTER MYID")
        };
        let (from_id, to_id) = (id(from).await, id(to).await);
        let setslot = |port: u16, args: Vec<String>| async move {
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(&args)
                .query_async::<()>(&mut self.node(port).await)
                .await
                .unwrap_or_else(|e| panic!("CLUSTER SETSLOT {slot} {args:?} on {port}: {e}"));
        };
        setslot(to, vec!["IMPORTING".into(), from_id.clone()]).await;
        setslot(from, vec!["MIGRATING".into(), to_id.clone()]).await;
        for port in std::iter::once(to)
            .chain(std::iter::once(from))
            .chain(self.ports.clone())
        {
            setslot(port, vec!["NODE".into(), to_id.clone()]).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let mut agreed = true;
            for &port in &self.ports {
                let seeds = topology::seeds(&[format!("redis://127.0.0.1:{port}")]).expect("url");
                let t = Topology::fetch(&seeds).await.expect("CLUSTER SLOTS");
                agreed &= t.master_of_slot(slot).map(|m| t.masters()[m].port) == Some(to);
            }
            if agreed {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the nodes did not agree on slot {slot}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many subscribers `channel` has on node `port` (`PUBSUB SHARDNUMSUB`).
    pub async fn shard_subscribers(&self, port: u16, channel: &str) -> i64 {
        let (_, n): (String, i64) = redis::cmd("PUBSUB")
            .arg("SHARDNUMSUB")
            .arg(channel)
            .query_async(&mut self.node(port).await)
            .await
            .expect("PUBSUB SHARDNUMSUB");
        n
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill_node(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port below the ephemeral range (20000–32767), picked at random.
fn quiet_port() -> u16 {
    loop {
        let r = uuid::Uuid::now_v7().as_u128() & 0xffff_ffff; // random bits of a v7
        let port = 20_000 + (r % 12_768) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Asserts `seqs` is strictly increasing.
/// The Prometheus text a service at `base` serves on `/metrics`.
pub async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body")
}

pub fn assert_strictly_increasing(seqs: &[i64]) {
    for w in seqs.windows(2) {
        assert!(
            w[0] < w[1],
            "not strictly increasing: {} then {} in {seqs:?}",
            w[0],
            w[1]
        );
    }
}

/// Signs `claims` (HS256) with another secret than the one Herald trusts.
pub fn sign_with_secret(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("claims serialize")
}

/// An unsigned token (`alg: none`) for `sub`.
pub fn alg_none_token(sub: &str) -> String {
    let enc = |v: &Value| base64url(&serde_json::to_vec(v).expect("json"));
    format!(
        "{}.{}.",
        enc(&json!({"alg": "none", "typ": "JWT"})),
        enc(&json!({"sub": sub, "aud": "herald", "exp": now() + 3600}))
    )
}

fn base64url(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// The classic bad tokens, each of which must be refused with 401.
pub fn bad_tokens(sub: &str) -> Vec<(&'static str, String)> {
    vec![
        ("missing", String::new()),
        (
            "expired",
            sign(&json!({"sub": sub, "aud": "herald", "exp": now() - 60})),
        ),
        (
            "bad signature",
            sign_with_secret(
                b"not-the-secret",
                &json!({"sub": sub, "aud": "herald", "exp": now() + 3600}),
            ),
        ),
        ("alg none", alg_none_token(sub)),
        (
            "wrong aud",
            sign(&json!({"sub": sub, "aud": "other", "exp": now() + 3600})),
        ),
        ("no exp", sign(&json!({"sub": sub, "aud": "herald"}))),
        (
            "nbf in the future",
            sign(&json!({"sub": sub, "aud": "herald", "exp": now() + 3600, "nbf": now() + 600})),
        ),
        ("malformed", "abc.def".to_owned()),
    ]
}

/// A test-only key pair from `crates/test-support/keys/`.
pub fn test_key(name: &str) -> String {
    let path = format!("{}/keys/{name}.pem", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Signs `claims` with a test private key for `alg`, optionally with a `kid`.
pub fn sign_with_key(
    alg: jsonwebtoken::Algorithm,
    private_pem: &str,
    kid: Option<&str>,
    claims: &Value,
) -> String {
    let key = match alg {
        jsonwebtoken::Algorithm::ES256 | jsonwebtoken::Algorithm::ES384 => {
            jsonwebtoken::EncodingKey::from_ec_pem(private_pem.as_bytes())
        }
        jsonwebtoken::Algorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(private_pem.as_bytes()),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()),
    }
    .expect("a valid test key");
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).expect("claims serialize")
}

/// The public JWK of a test private key, with `kid`.
pub fn public_jwk(alg: jsonwebtoken::Algorithm, private_pem: &str, kid: &str) -> Value {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("an RSA test key");
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, alg).expect("a JWK");
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(jwk).expect("JWK serializes")
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    now()
}

impl TestApp {
    /// Publishes `{"n": 1..=total}` to `topic` in the background, one at a
    /// time with `pause` between, asserting each is accepted.
    pub fn spawn_publisher(&self, topic: &str, total: u64, pause: Duration) -> JoinHandle<()> {
        let api = self.api_url();
        let topic = topic.to_owned();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 1..=total {
                let r = http
                    .post(format!("{api}/v1/events"))
                    .bearer_auth(service_token())
                    .json(&json!({"topic": topic, "type": "t.n", "data": {"n": n}}))
                    .send()
                    .await
                    .expect("api answers");
                assert_eq!(r.status(), 202, "publish {n}");
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        })
    }
}

/// Replaces the event log's partitions, on a fresh database (no event
/// yet), with `count` partitions of `size` insertion numbers each: rows
/// inserted afterwards land partition by partition (the first `size` in the
/// first, and so on), so a test decides where the partitions retention
/// drops begin and end. The worker still makes its own ahead of these.
pub async fn event_partitions(pool: &PgPool, size: i64, count: i32) {
    drop_event_partitions(pool).await;
    sqlx::raw_sql(&format!(
        "UPDATE event_log SET partition_size = {size};
         SELECT herald_event_partitions_ahead({count});"
    ))
    .execute(pool)
    .await
    .expect("partitions of the test's size");
}

/// Detaches and drops every partition of the event log, on a fresh
/// database: nothing can take an event until `herald_event_partitions_ahead`
/// makes one.
pub async fn drop_event_partitions(pool: &PgPool) {
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM event_partitions ORDER BY lo")
        .fetch_all(pool)
        .await
        .expect("event partitions");
    for name in names {
        sqlx::raw_sql(&format!(
            "ALTER TABLE events DETACH PARTITION \"{name}\"; DROP TABLE \"{name}\";
             DELETE FROM event_partitions WHERE name = '{name}'"
        ))
        .execute(pool)
        .await
        .expect("drop an empty partition");
    }
}

/// Puts the sequencer's head at `seq`, numbered and published, as the worker
/// leaves it once it has sequenced and published up to there: for a test
/// that wrote its sequenced events by hand (both positions, so a gateway
/// does not wait for a publish that never comes, and no step numbers from
/// below the rows already there).
pub async fn sequencer_at(pool: &PgPool, seq: i64) {
    sqlx::query("UPDATE sequencer SET last_seq = $1, published_seq = $1")
        .bind(seq)
        .execute(pool)
        .await
        .expect("move the sequencer's head");
}

/// Ages the events up to `upto` (their `created_at` a day back), and the
/// event log's record of the partitions holding them: a test's stand-in for
/// time passing, serialized with the worker's sealing (its advisory lock),
/// so a partition sealed before or after has the newest `created_at` it holds.
pub async fn age_events(pool: &PgPool, upto: i64) {
    sqlx::raw_sql(&format!(
        "BEGIN;
         SELECT pg_advisory_xact_lock(7243516001);
         UPDATE events SET created_at = now() - interval '1 day' WHERE seq <= {upto};
         UPDATE event_partitions p
            SET max_created = (SELECT max(e.created_at) FROM events e
                                WHERE e.pending_no >= p.lo AND e.pending_no < p.hi)
          WHERE p.sealed_at IS NOT NULL;
         COMMIT;"
    ))
    .execute(pool)
    .await
    .expect("age events");
}

/// Turns autovacuum off on every partition of the event log, so that dead
/// index entries and stale statistics stay as a test made them.
pub async fn autovacuum_off(pool: &PgPool) {
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM event_partitions")
        .fetch_all(pool)
        .await
        .expect("event partitions");
    for name in names {
        sqlx::raw_sql(&format!("ALTER TABLE \"{name}\" SET (autovacuum_enabled = off)"))
            .execute(pool)
            .await
            .expect("autovacuum off");
    }
}

/// The shared buffers one run of `sql` touched, by EXPLAIN (ANALYZE,
/// BUFFERS): a function's count includes what its own statements read.
///
/// It takes one connection, not a pool, because the count includes the
/// catalog pages a backend reads while its caches are cold (and a function
/// compiles and plans on its first calls): runs compared must share one
/// backend that ran each statement once before (from a pool, a comparison
/// flipped with whichever connection each run was given: 916 buffers
/// against 378 for the same page).
pub async fn buffers_touched(conn: &mut sqlx::PgConnection, sql: &str) -> i64 {
    let plan: Value = sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"))
        .fetch_one(conn)
        .await
        .expect("EXPLAIN");
    let top = &plan[0]["Plan"];
    let count = |k: &str| top[k].as_i64().expect("a buffer count");
    count("Shared Hit Blocks") + count("Shared Read Blocks")
}
