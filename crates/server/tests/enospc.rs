//! A real full filesystem (ENOSPC), not a simulated one: the server runs on a 16 MiB tmpfs
//! mounted in private user, mount and PID namespaces (`unshare`, no privileges needed), the
//! filesystem is filled to the last byte, and the server must fail writes with a 5xx,
//! keep answering reads, resume writing once space is freed, and lose no acknowledged
//! message or Kinesis record (those go to the record log, not SQLite) across a SIGKILL.

mod common;

use common::{agent, json, kinesis_call, stream_texts, try_json_call};
use serde_json::json as j;
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};

/// The namespace's shell: it mounts the tmpfs, runs sluice on it and obeys one command
/// per line, answering each with a line of its own.
const SHELL: &str = r#"
set -u
mount -t tmpfs -o size=16m tmpfs "$MNT" || { echo "mount-failed"; exit 1; }
start() { SLUICE_LOG=warn "$SLUICE" serve --listen 127.0.0.1:0 --data-dir "$MNT/data" & PID=$!; }
start
while read -r cmd; do
  case "$cmd" in
    fill) dd if=/dev/zero of="$MNT/filler" bs=4k >/dev/null 2>&1; df -k "$MNT" | tail -1 | awk '{print "free " $4}' ;;
    free) rm -f "$MNT/filler"; echo freed ;;
    restart) kill -9 "$PID"; wait "$PID" 2>/dev/null; start ;;
  esac
done
"#;

struct Namespace {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    child: std::process::Child,
}

impl Namespace {
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from the namespace shell");
        line.trim().to_owned()
    }

    fn command(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        self.line()
    }

    /// The endpoint sluice printed after (re)starting.
    fn endpoint(&mut self) -> String {
        let line = self.line();
        line.strip_prefix("sluice listening on ").unwrap_or_else(|| panic!("unexpected line {line:?}")).to_owned()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_full_filesystem_fails_writes_cleanly_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut child = Command::new("unshare")
        // A PID namespace too, with the shell as its init: when the test ends and kills
        // unshare, the kernel ends the shell and the sluice inside with it.
        .args(["-Urm", "--pid", "--fork", "--kill-child", "sh", "-c", SHELL])
        .env("MNT", &mnt)
        .env("SLUICE", env!("CARGO_BIN_EXE_sluice"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("unshare (util-linux) runs");
    let mut ns =
        Namespace { stdin: child.stdin.take().unwrap(), stdout: BufReader::new(child.stdout.take().unwrap()), child };
    let endpoint = ns.endpoint();
    let a = agent();
    let call = |endpoint: &str, action: &str, body: serde_json::Value| {
        try_json_call(&a, endpoint, action, &body.to_string()).expect("the server answers")
    };
    let (_, body, _) = call(&endpoint, "CreateQueue", j!({"QueueName": "q"}));
    let url = json(&body)["QueueUrl"].as_str().unwrap().to_owned();
    let put_record = |endpoint: &str, data: &str| {
        let body = j!({"StreamName": "s", "PartitionKey": "k", "Data": base64(data)});
        kinesis_call(&a, endpoint, "PutRecord", &body).expect("the server answers")
    };
    assert_eq!(kinesis_call(&a, &endpoint, "CreateStream", &j!({"StreamName": "s", "ShardCount": 1})).unwrap().0, 200);
    let mut records = Vec::new();
    for i in 0..5 {
        let data = format!("record before {i}");
        assert_eq!(put_record(&endpoint, &data).0, 200);
        records.push(data);
    }
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let body = format!("before {i}");
        assert_eq!(call(&endpoint, "SendMessage", j!({"QueueUrl": url, "MessageBody": body})).0, 200);
        acknowledged.push(body);
    }

    let free = ns.command("fill");
    assert_eq!(free, "free 0", "the filesystem is full");
    let mut refused = 0;
    for i in 0..200 {
        let body = format!("while full {i} {}", "x".repeat(8 * 1024));
        let (status, text, _) = call(&endpoint, "SendMessage", j!({"QueueUrl": url, "MessageBody": body}));
        match status {
            200 => acknowledged.push(body),
            500 => {
                assert_eq!(json(&text)["__type"], "InternalFailure", "{text}");
                refused += 1;
            }
            other => panic!("a full disk answers 200 or 500, not {other}: {text}"),
        }
        if refused >= 3 {
            break;
        }
    }
    eprintln!("full filesystem: {} acknowledged in all, {refused} refused", acknowledged.len());
    assert!(refused >= 3, "writes fail once the filesystem is full");
    let mut refused_records = 0;
    for i in 0..200 {
        let data = format!("record while full {i} {}", "x".repeat(8 * 1024));
        let (status, body) = put_record(&endpoint, &data);
        match status {
            200 => records.push(data),
            500 => {
                assert_eq!(body["__type"], "InternalFailure", "{body}");
                refused_records += 1;
            }
            other => panic!("a full disk answers 200 or 500, not {other}: {body}"),
        }
        if refused_records >= 3 {
            break;
        }
    }
    assert!(refused_records >= 3, "Kinesis writes fail once the filesystem is full");
    let (status, text, _) =
        call(&endpoint, "GetQueueAttributes", j!({"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages"]}));
    assert_eq!(status, 200, "reads keep working: {text}");

    assert_eq!(ns.command("free"), "freed");
    let body = "after space returned".to_owned();
    let resumed = (0..20).any(|_| call(&endpoint, "SendMessage", j!({"QueueUrl": url, "MessageBody": body})).0 == 200);
    assert!(resumed, "writes resume once space is freed");
    acknowledged.push(body);
    let data = "record after space returned".to_owned();
    assert_eq!(put_record(&endpoint, &data).0, 200, "Kinesis writes resume once space is freed");
    records.push(data);

    // SIGKILL and restart on the same filesystem: every acknowledged message is there.
    writeln!(ns.stdin, "restart").unwrap();
    ns.stdin.flush().unwrap();
    let endpoint = ns.endpoint();
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let (status, text, _) = call(
            &endpoint,
            "ReceiveMessage",
            j!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 600}),
        );
        assert_eq!(status, 200, "{text}");
        let messages = json(&text)["Messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        seen.extend(messages.iter().map(|m| m["Body"].as_str().unwrap().to_owned()));
    }
    let missing: Vec<_> = acknowledged.iter().filter(|b| !seen.contains(*b)).collect();
    assert!(missing.is_empty(), "acknowledged and lost: {missing:?}");

    assert_eq!(stream_texts(&a, &endpoint, "s"), records, "every acknowledged record, in order, nothing else");
}

fn base64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
