//! Runs the boto3 and AWS CLI compatibility scripts (tests/compat/) against the real
//! binary. They need python3 with boto3 and the `aws` command; `.ci/run` installs them.

mod common;

use common::Server;
use std::path::PathBuf;
use std::process::Command;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/compat").join(name)
}

fn run(program: &str, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::spawn(dir.path(), &[]);
    let out = Command::new(program)
        .arg(script(name))
        .env("SLUICE_ENDPOINT", &s.endpoint)
        .env("SLUICE_BUCKET_ROOT", dir.path().join("s3"))
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert_passed(name, &out);
}

/// A compatibility script exits 0 and reports that all its flows passed.
fn assert_passed(name: &str, out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("all flows passed"), "{stdout}");
}

#[test]
fn boto3_flows() {
    run("python3", "boto3_sqs.py");
}

#[test]
fn aws_cli_flows() {
    run("bash", "awscli_sqs.sh");
}

#[test]
fn boto3_sns_flows() {
    run("python3", "boto3_sns.py");
}

#[test]
fn aws_cli_sns_flows() {
    run("bash", "awscli_sns.sh");
}

#[test]
fn boto3_kinesis_flows() {
    run("python3", "boto3_kinesis.py");
}

#[test]
fn boto3_firehose_flows() {
    run("python3", "boto3_firehose.py");
}

/// moto's S3-compatible server on a free loopback port, over HTTPS with `tls` (certificate
/// and key), until dropped.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    fn start(tls: Option<(&std::path::Path, &std::path::Path)>) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new("moto_server");
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((cert, key)) = tls {
            command.arg("-c").arg(cert).arg("-k").arg(key);
        }
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server is installed (pip install 'moto[server]')");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        Moto { child, endpoint: format!("{scheme}://127.0.0.1:{port}") }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for 127.0.0.1 and its key, written into `dir`.
fn loopback_certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success());
    (cert, key)
}

/// Runs firehose_s3.py against a Sluice whose Firehose writes to `moto` (its CA in
/// `ca_cert` when moto serves HTTPS).
fn firehose_s3_flows(moto: &Moto, ca_cert: Option<&std::path::Path>) {
    let dir = tempfile::tempdir().unwrap();
    let mut args =
        vec!["--s3-endpoint", &moto.endpoint, "--s3-access-key-id", "test", "--s3-secret-access-key", "test"];
    if let Some(cert) = ca_cert {
        args.extend(["--extra-ca-cert", cert.to_str().unwrap()]);
    }
    let s = Server::spawn(dir.path(), &args);
    let mut command = Command::new("python3");
    command.arg(script("firehose_s3.py")).env("SLUICE_ENDPOINT", &s.endpoint).env("S3_ENDPOINT", &moto.endpoint);
    if let Some(cert) = ca_cert {
        // boto3's own S3 client reads the objects back over the same HTTPS.
        command.env("AWS_CA_BUNDLE", cert);
    }
    assert_passed("firehose_s3.py", &command.output().unwrap());
}

/// Firehose writing to a real S3-compatible server: moto's, started on loopback.
#[test]
fn firehose_to_an_s3_compatible_server() {
    firehose_s3_flows(&Moto::start(None), None);
}

/// The same over HTTPS with a private CA given by `--extra-ca-cert` (as a MinIO with its
/// own certificate needs): the S3 client's TLS runs on the ring provider Sluice installs.
#[test]
fn firehose_to_an_https_s3_compatible_server() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = loopback_certificate(dir.path());
    firehose_s3_flows(&Moto::start(Some((&cert, &key))), Some(&cert));
}

/// Firehose delivering to an HTTPS endpoint on loopback whose certificate Sluice is told to trust.
#[test]
fn firehose_to_an_https_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = loopback_certificate(dir.path());
    let data = dir.path().join("data");
    let s = Server::spawn(&data, &["--extra-ca-cert", cert.to_str().unwrap()]);
    let out = Command::new("python3")
        .arg(script("firehose_http.py"))
        .env("SLUICE_ENDPOINT", &s.endpoint)
        .env("SLUICE_BUCKET_ROOT", data.join("s3"))
        .env("TLS_CERT", &cert)
        .env("TLS_KEY", &key)
        .output()
        .unwrap();
    assert_passed("firehose_http.py", &out);
}

/// Firehose data transformation through a Lambda-style HTTP processor on loopback.
#[test]
fn firehose_transformation_processor() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mapping = format!("arn:aws:lambda:us-east-1:000000000000:function:upper=http://127.0.0.1:{port}/");
    let s = Server::spawn(dir.path(), &["--lambda-url", &mapping]);
    let out = Command::new("python3")
        .arg(script("firehose_transform.py"))
        .env("SLUICE_ENDPOINT", &s.endpoint)
        .env("SLUICE_BUCKET_ROOT", dir.path().join("s3"))
        .env("FUNCTION_PORT", port.to_string())
        .output()
        .unwrap();
    assert_passed("firehose_transform.py", &out);
}

/// Runs `name` against a server with `--auth sigv4`, Alice (111122223333) and Bob
/// (444455556666) as credentials, and `credentials` (TOML) as the config file's.
fn run_with_sigv4(name: &str, credentials: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("auth.toml");
    std::fs::write(&config, credentials).unwrap();
    let s = Server::spawn(
        &dir.path().join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--auth",
            "sigv4",
            "--credential",
            "AKIDALICE:alice-secret:111122223333",
            "--credential",
            "AKIDBOB:bob-secret:444455556666",
        ],
    );
    let out = Command::new("python3").arg(script(name)).env("SLUICE_ENDPOINT", &s.endpoint).output().unwrap();
    assert_passed(name, &out);
}

/// With `--auth sigv4`, signatures are verified for every protocol and form.
#[test]
fn sigv4_authentication() {
    run_with_sigv4(
        "sigv4_auth.py",
        "[[credentials]]\naccess_key_id = \"ASIATEMP\"\nsecret_access_key = \"temp-secret\"\naccount_id = \"777788889999\"\nsession_token = \"the-session-token\"\n",
    );
}

/// With `--auth sigv4`, resource policies and identity policies decide access.
#[test]
fn access_policies() {
    run_with_sigv4(
        "policies.py",
        r#"[[credentials]]
access_key_id = "AKIDREADER"
secret_access_key = "reader-secret"
account_id = "111122223333"
name = "reader"
policy = '''{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueUrl"],
   "Resource": "arn:aws:sqs:*:111122223333:*"},
  {"Effect": "Allow", "Action": "firehose:Describe*", "Resource": "*"}]}'''
"#,
    );
}

/// Every file of the data directory and its subdirectories (the message log's among
/// them), concatenated; Firehose's local bucket (`s3/`) aside, which holds delivered
/// objects as S3 would.
fn data_dir_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.extend(std::fs::read(&path).unwrap());
        } else if path.is_dir() && path.file_name().is_some_and(|n| n != "s3") {
            all.extend(data_dir_bytes(&path));
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Resources that request SSE are sealed on disk (a queue with SSE off is not), read back
/// after a restart with the same key, and a wrong key is refused at start (exit status 4).
#[test]
fn encryption_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let phase = |s: &Server, name: &str| {
        let out = Command::new("python3")
            .arg(script("encryption_at_rest.py"))
            .arg(name)
            .env("SLUICE_ENDPOINT", &s.endpoint)
            .output()
            .unwrap();
        assert_passed("encryption_at_rest.py", &out);
    };
    let s = Server::spawn(&data, &[]);
    phase(&s, "write");
    // While running (WAL) and after a clean shutdown (checkpointed into the main file).
    let sealed_on_disk = |stage: &str| {
        let bytes = data_dir_bytes(&data);
        for plain in ["PLAIN-SQS-7f3a", "PLAIN-KINESIS-7f3a"] {
            assert!(contains(&bytes, plain), "{stage}: the scan sees {plain}, written in clear");
        }
        for secret in ["SECRET-SQS", "SECRET-KMS", "SECRET-KINESIS", "SECRET-FIREHOSE", "SECRET-SNS"] {
            assert!(!contains(&bytes, &format!("{secret}-7f3a")), "{stage}: {secret} is sealed on disk");
        }
        // The body's MD5, stored for ReceiveMessage, is sealed with it: a digest in the
        // clear would confirm a guessed body.
        let md5 = |body: &str| sluice_wire::md5::md5_hex(body.as_bytes());
        assert!(contains(&bytes, &md5("PLAIN-SQS-7f3a")), "{stage}: the clear queue's digest is found");
        for secret in ["SECRET-SQS-7f3a", "SECRET-KMS-7f3a"] {
            assert!(!contains(&bytes, &md5(secret)), "{stage}: the digest of {secret} is sealed");
        }
    };
    sealed_on_disk("running");
    assert!(s.terminate().success());
    sealed_on_disk("stopped");

    let wrong = dir.path().join("wrong.key");
    std::fs::write(&wrong, "11".repeat(32)).unwrap();
    for key_file in [wrong.clone(), dir.path().join("missing.key")] {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--listen", "127.0.0.1:0", "--encryption-key-file"])
            .arg(&key_file)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"), "never served: {stderr}");
        if key_file == wrong {
            assert_eq!(out.status.code(), Some(4), "{stderr}");
            assert!(stderr.contains("encryption key"), "{stderr}");
        } else {
            assert!(!out.status.success(), "an unreadable key file stops the start: {stderr}");
        }
    }

    // The data directory's own key (sluice.key) reads everything back.
    let s = Server::spawn(&data, &[]);
    phase(&s, "read");
}
