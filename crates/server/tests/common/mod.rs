//! Starting the real `sluice` binary on an ephemeral port, and raw HTTP against it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub endpoint: String,
    /// The HTTPS endpoint, when started with `--tls-listen`.
    pub tls_endpoint: Option<String>,
}

impl Server {
    pub fn spawn(data_dir: &Path, extra: &[&str]) -> Server {
        Self::spawn_with_env(data_dir, extra, &[])
    }

    pub fn spawn_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.arg("serve").arg("--listen").arg("127.0.0.1:0").arg("--data-dir").arg(data_dir);
        cmd.args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.env("SLUICE_LOG", "warn").stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start sluice");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read listening line");
        let endpoint = line
            .trim()
            .strip_prefix("sluice listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        let tls_endpoint = extra.contains(&"--tls-listen").then(|| {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read TLS listening line");
            line.trim().strip_prefix("sluice listening on ").expect("TLS line").to_owned()
        });
        Server { child, endpoint, tls_endpoint }
    }

    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) takes two integers and reads or writes none of our memory; the
        // child is not reaped yet, so the pid still names it.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "kill -TERM: {}", std::io::Error::last_os_error());
        exit_within(&mut self.child, Duration::from_secs(30)).expect("server did not stop after SIGTERM")
    }
}

/// The child's exit status once it exits, or `None` if it still runs after `limit`.
fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `sluice serve` on `data_dir` run to its exit, for starts that must be refused: its
/// status and output. A start that serves instead is killed after a minute, so that the
/// test fails instead of waiting forever.
pub fn serve_to_exit(data_dir: &Path) -> std::process::Output {
    // Output to files, not pipes: nothing reads while it runs, so a full pipe cannot stall it.
    let output = tempfile::tempdir().expect("a directory for its output");
    let (stdout, stderr) = (output.path().join("stdout"), output.path().join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("run sluice serve");
    let status = exit_within(&mut child, Duration::from_secs(60)).unwrap_or_else(|| {
        child.kill().expect("SIGKILL");
        child.wait().expect("reap")
    });
    std::process::Output {
        status,
        stdout: std::fs::read(&stdout).expect("its stdout"),
        stderr: std::fs::read(&stderr).expect("its stderr"),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

pub const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000";

/// A JSON 1.0 call: (status, body, x-amzn-query-error header).
pub fn json_call(agent: &ureq::Agent, endpoint: &str, action: &str, body: &str) -> (u16, String, Option<String>) {
    try_json_call(agent, endpoint, action, body).expect("request")
}

/// As [`json_call`], `None` when the connection fails (the server was killed).
pub fn try_json_call(
    agent: &ureq::Agent,
    endpoint: &str,
    action: &str,
    body: &str,
) -> Option<(u16, String, Option<String>)> {
    let mut resp = agent
        .post(endpoint)
        .header("X-Amz-Target", &format!("AmazonSQS.{action}"))
        .header("Content-Type", "application/x-amz-json-1.0")
        .header("Authorization", AUTH)
        .send(body)
        .ok()?;
    let status = resp.status().as_u16();
    let query_error = resp.headers().get("x-amzn-query-error").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut text = String::new();
    resp.body_mut().as_reader().read_to_string(&mut text).ok()?;
    Some((status, text, query_error))
}

/// A Kinesis JSON 1.1 call: (status, parsed body); `None` when the connection fails.
pub fn kinesis_call(
    agent: &ureq::Agent,
    endpoint: &str,
    action: &str,
    body: &serde_json::Value,
) -> Option<(u16, serde_json::Value)> {
    let mut resp = agent
        .post(endpoint)
        .header("X-Amz-Target", &format!("Kinesis_20131202.{action}"))
        .header("Content-Type", "application/x-amz-json-1.1")
        .header("Authorization", &AUTH.replace("/sqs/", "/kinesis/"))
        .send(body.to_string().as_str())
        .ok()?;
    let status = resp.status().as_u16();
    let mut text = String::new();
    resp.body_mut().as_reader().read_to_string(&mut text).ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)))
}

/// A Firehose JSON 1.1 call: (status, parsed body).
pub fn firehose_call(
    agent: &ureq::Agent,
    endpoint: &str,
    action: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut resp = agent
        .post(endpoint)
        .header("X-Amz-Target", &format!("Firehose_20150804.{action}"))
        .header("Content-Type", "application/x-amz-json-1.1")
        .send(body.to_string().as_str())
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// Every record of one shard from TRIM_HORIZON to the latest, as GetRecords returns them.
pub fn shard_records(agent: &ureq::Agent, endpoint: &str, stream: &str, shard: &str) -> Vec<serde_json::Value> {
    let request = serde_json::json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"});
    let (_, it) = kinesis_call(agent, endpoint, "GetShardIterator", &request).expect("GetShardIterator");
    let mut iterator = it["ShardIterator"].as_str().expect("an iterator").to_owned();
    let mut out = Vec::new();
    loop {
        let request = serde_json::json!({"ShardIterator": iterator});
        let (status, r) = kinesis_call(agent, endpoint, "GetRecords", &request).expect("GetRecords");
        assert_eq!(status, 200, "{r}");
        let records = r["Records"].as_array().expect("records");
        if records.is_empty() {
            return out;
        }
        out.extend(records.iter().cloned());
        iterator = r["NextShardIterator"].as_str().expect("a next iterator").to_owned();
    }
}

/// The records of a one-shard stream, their data decoded as text.
pub fn stream_texts(agent: &ureq::Agent, endpoint: &str, stream: &str) -> Vec<String> {
    use base64::Engine;
    let (_, shards) = kinesis_call(agent, endpoint, "ListShards", &serde_json::json!({"StreamName": stream})).unwrap();
    let shard = shards["Shards"][0]["ShardId"].as_str().expect("a shard").to_owned();
    shard_records(agent, endpoint, stream, &shard)
        .iter()
        .map(|r| {
            let data = base64::engine::general_purpose::STANDARD.decode(r["Data"].as_str().unwrap()).unwrap();
            String::from_utf8(data).unwrap()
        })
        .collect()
}

/// A Query-protocol call: (status, XML body).
pub fn query_call(agent: &ureq::Agent, url: &str, form: &[(&str, &str)]) -> (u16, String) {
    query_call_as(agent, url, "sqs", form)
}

/// A Query call signed for `service` (the credential scope routes SQS and SNS).
pub fn query_call_as(agent: &ureq::Agent, url: &str, service: &str, form: &[(&str, &str)]) -> (u16, String) {
    try_query_call_as(agent, url, service, form).expect("request")
}

/// As [`query_call_as`], `None` when the connection fails (the server was killed).
pub fn try_query_call_as(
    agent: &ureq::Agent,
    url: &str,
    service: &str,
    form: &[(&str, &str)],
) -> Option<(u16, String)> {
    let body: String = form.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&");
    let mut resp = agent
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", &AUTH.replace("/sqs/", &format!("/{service}/")))
        .send(body.as_str())
        .ok()?;
    let status = resp.status().as_u16();
    let mut text = String::new();
    resp.body_mut().as_reader().read_to_string(&mut text).ok()?;
    Some((status, text))
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The text of the first `<tag>…</tag>` in `xml`.
pub fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
}

/// SIGKILLs per run of the crash test: 20 in CI; `SLUICE_CRASH_ROUNDS=500` makes it a soak.
pub fn crash_rounds() -> usize {
    std::env::var("SLUICE_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20)
}

/// A kill moment between 150 and 900 ms into the load, different every round and run.
pub fn random_kill_delay(round: usize) -> std::time::Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    let mut x = nanos ^ (round as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::time::Duration::from_millis(150 + x % 750)
}

/// Lets `workers` load the server for `delay`, then SIGKILLs it mid-flight, tells the
/// workers to stop (they also stop on their first failed request) and waits for them.
pub fn kill_under_load(
    server: Server,
    delay: std::time::Duration,
    stop: &std::sync::atomic::AtomicBool,
    workers: Vec<std::thread::JoinHandle<()>>,
) {
    std::thread::sleep(delay);
    server.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
}
