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
