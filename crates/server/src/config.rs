//! Configuration: flags win over `SLUICE_*` environment variables (both read by
//! clap), which win over the TOML file, which wins over defaults.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4566";
pub const DEFAULT_DATA_DIR: &str = "./sluice-data";
/// LocalStack's and moto's default account, which tools already expect.
pub const DEFAULT_ACCOUNT: &str = "000000000000";
pub const DEFAULT_REGION: &str = "us-east-1";
/// Requests served at once (long polls included) before new ones are throttled; at most
/// 8 MiB of body each, this bounds request memory to a few GiB in the worst case.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 4096;
/// Open connections before the listener stops accepting. An idle keep-alive connection
/// costs a few KiB; 16,384 stays within the usual 65,536-descriptor limit with room for
/// the database and outbound connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
pub const DEFAULT_RECORD_SEGMENT_MIB: u64 = sluice_engine::record_log::SEGMENT_BYTES / (1024 * 1024);
/// A segment is one file: beyond 1 GiB, compaction's copies and deletions get coarse.
const MAX_RECORD_SEGMENT_MIB: u64 = 1024;

#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = "AWS messaging (SQS) on your own machine, durable and faithful")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Measure a server (Sluice, AWS or another emulator) with one of the scenarios.
    Bench(Box<crate::bench::BenchArgs>),
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "SLUICE_LISTEN")]
    pub listen: Option<String>,
    /// Directory for the database.
    #[arg(long, env = "SLUICE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep nothing after exit: data lives in a temporary directory, without fsync.
    #[arg(long, env = "SLUICE_IN_MEMORY")]
    pub in_memory: bool,
    /// TOML configuration file.
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Account id used when the access key is not a 12-digit account id.
    #[arg(long, env = "SLUICE_ACCOUNT")]
    pub account: Option<String>,
    /// Region used when a request carries no SigV4 credential scope.
    #[arg(long, env = "SLUICE_REGION")]
    pub region: Option<String>,
    /// Acknowledge writes without waiting for fsync (faster, not crash-safe).
    #[arg(long, env = "SLUICE_NO_FSYNC")]
    pub no_fsync: bool,
    /// Skip AWS's 60-second rules (PurgeQueueInProgress, QueueDeletedRecently).
    #[arg(long, env = "SLUICE_RELAX_COOLDOWNS")]
    pub relax_cooldowns: bool,
    /// Also serve HTTPS (HTTP/2 or HTTP/1.1 by ALPN) on this address.
    #[arg(long, env = "SLUICE_TLS_LISTEN")]
    pub tls_listen: Option<String>,
    /// PEM certificate chain for the TLS listener (with --tls-key).
    #[arg(long, env = "SLUICE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for the TLS listener.
    #[arg(long, env = "SLUICE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// `ARN=URL`: a Lambda function (Firehose transformation) served by an HTTP URL (repeatable).
    #[arg(long = "lambda-url", env = "SLUICE_LAMBDA_URLS", value_delimiter = ',')]
    pub lambda_urls: Vec<String>,
    /// Extra CA certificates (PEM) to trust for outbound HTTPS deliveries and the S3 endpoint (repeatable).
    #[arg(long, env = "SLUICE_EXTRA_CA_CERT", value_delimiter = ',')]
    pub extra_ca_cert: Vec<PathBuf>,
    /// Enforce Kinesis per-shard throughput limits (ProvisionedThroughputExceededException).
    #[arg(long, env = "SLUICE_ENFORCE_KINESIS_LIMITS")]
    pub enforce_kinesis_limits: bool,
    /// S3-compatible endpoint for Firehose objects (path-style), instead of the local bucket root.
    #[arg(long, env = "SLUICE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "SLUICE_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    #[arg(long, env = "SLUICE_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    #[arg(long, env = "SLUICE_S3_REGION")]
    pub s3_region: Option<String>,
    /// Local-filesystem bucket root for Firehose S3 destinations (default: <data-dir>/s3).
    #[arg(long, env = "SLUICE_BUCKET_ROOT")]
    pub bucket_root: Option<PathBuf>,
    /// Largest the database may grow, in MiB; past it writes fail with a 5xx error as on a
    /// full disk, while reads and deletes keep working.
    #[arg(long, env = "SLUICE_MAX_DATA_MIB")]
    pub max_data_mib: Option<u64>,
    /// Size of each record log segment file (Kinesis records, Firehose buffers), in MiB;
    /// space comes back a whole segment at a time.
    #[arg(long, env = "SLUICE_RECORD_SEGMENT_MIB")]
    pub record_segment_mib: Option<u64>,
    /// Requests served at once, long polls included; more are answered with a throttling error.
    #[arg(long, env = "SLUICE_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<usize>,
    /// Open connections (HTTP and HTTPS together); more wait in the kernel's backlog.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// `off` (any signature; account from the access key) or `sigv4` (verify signatures
    /// against the configured credentials).
    #[arg(long, env = "SLUICE_AUTH")]
    pub auth: Option<String>,
    /// `ACCESS_KEY_ID:SECRET:ACCOUNT_ID`, a credential for `--auth sigv4` (repeatable).
    #[arg(long = "credential", env = "SLUICE_CREDENTIALS", value_delimiter = ',', hide_env_values = true)]
    pub credentials: Vec<String>,
    /// How long Kinesis streams report CREATING/UPDATING, in milliseconds (0: ACTIVE at once).
    #[arg(long, env = "SLUICE_KINESIS_STATUS_DELAY_MS")]
    pub kinesis_status_delay_ms: Option<u64>,
    /// File holding the at-rest encryption key (64 hex digits); default: `sluice.key` in
    /// the data directory, created on first start.
    #[arg(long, env = "SLUICE_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub in_memory: Option<bool>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub fsync: Option<bool>,
    pub relax_cooldowns: Option<bool>,
    pub tls_listen: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub enforce_kinesis_limits: Option<bool>,
    pub kinesis_status_delay_ms: Option<u64>,
    pub bucket_root: Option<PathBuf>,
    #[serde(default)]
    pub extra_ca_certs: Vec<PathBuf>,
    #[serde(default)]
    pub lambda_urls: BTreeMap<String, String>,
    pub s3_endpoint: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    pub s3_region: Option<String>,
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
    pub auth: Option<String>,
    #[serde(default)]
    pub credentials: Vec<CredentialConfig>,
    pub max_concurrent_requests: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_data_mib: Option<u64>,
    pub record_segment_mib: Option<u64>,
    pub encryption_key_file: Option<PathBuf>,
}

/// A credential in the config file's `[[credentials]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
    pub name: Option<String>,
    pub session_token: Option<String>,
    /// An IAM identity policy (JSON) limiting what this credential may do.
    pub policy: Option<String>,
}

/// A queue created at start if missing (and brought to these attributes and tags if present).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    pub account: Option<String>,
    pub region: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: Option<PathBuf>,
    pub account: String,
    pub region: String,
    pub fsync: bool,
    pub relax_cooldowns: bool,
    pub queues: Vec<QueueConfig>,
    /// The HTTPS listener, if any, and where its certificate comes from.
    pub tls: Option<(SocketAddr, crate::tls::TlsSource)>,
    pub enforce_kinesis_limits: bool,
    pub kinesis_status_delay_ms: u64,
    /// Where Firehose writes `s3://bucket/key` objects; `None` means `<data_dir>/s3`, or a
    /// temporary directory for in-memory servers.
    pub bucket_root: Option<PathBuf>,
    /// A remote S3-compatible endpoint for Firehose objects, when configured.
    pub s3: Option<sluice_services::firehose::S3Settings>,
    /// CA certificates (PEM, as read from `--extra-ca-cert`) trusted for outbound HTTPS
    /// and the S3 endpoint, beside the system's.
    pub extra_ca_pems: Vec<Vec<u8>>,
    /// Lambda function ARN → the HTTP URL that acts for it.
    pub lambda_urls: BTreeMap<String, String>,
    pub auth: crate::auth::AuthMode,
    pub max_concurrent_requests: usize,
    pub max_connections: usize,
    pub max_data_mib: Option<u64>,
    pub record_segment_mib: u64,
    /// The at-rest encryption key when configured; `None` uses the data directory's key file.
    pub encryption_key: Option<[u8; 32]>,
}

/// Reads the `--extra-ca-cert` files once for every outbound HTTPS client (deliveries and
/// the S3 endpoint): a missing file or bad PEM stops the start, naming the file.
fn read_ca_pems(paths: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    paths
        .iter()
        .map(|path| {
            let pem = std::fs::read(path).with_context(|| format!("cannot read CA certificate {}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                cert.with_context(|| format!("invalid PEM in {}", path.display()))?;
            }
            Ok(pem)
        })
        .collect()
}

impl Settings {
    /// Settings for a throwaway server on an ephemeral port (tests, embedding).
    pub fn ephemeral(data_dir: Option<PathBuf>) -> Settings {
        Settings {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            data_dir,
            account: DEFAULT_ACCOUNT.into(),
            region: DEFAULT_REGION.into(),
            fsync: true,
            relax_cooldowns: true,
            queues: vec![],
            tls: None,
            enforce_kinesis_limits: false,
            kinesis_status_delay_ms: 0,
            bucket_root: None,
            s3: None,
            extra_ca_pems: vec![],
            lambda_urls: BTreeMap::new(),
            auth: crate::auth::AuthMode::Off,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_data_mib: None,
            record_segment_mib: DEFAULT_RECORD_SEGMENT_MIB,
            encryption_key: None,
        }
    }

    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Settings> {
        let file: FileConfig = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid config {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let listen = args.listen.clone().or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen.parse().map_err(|e| anyhow::anyhow!("invalid listen address {listen}: {e}"))?;
        let in_memory = args.in_memory || file.in_memory.unwrap_or(false);
        let data_dir = if in_memory {
            None
        } else {
            Some(args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| DEFAULT_DATA_DIR.into()))
        };
        let account = args.account.clone().or(file.account).unwrap_or_else(|| DEFAULT_ACCOUNT.into());
        if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
            anyhow::bail!("account must be 12 digits, got {account}");
        }
        let tls_listen = args.tls_listen.clone().or(file.tls_listen);
        let tls = match tls_listen {
            None => None,
            Some(addr) => {
                let addr: SocketAddr =
                    addr.parse().map_err(|e| anyhow::anyhow!("invalid TLS listen address {addr}: {e}"))?;
                let source = match (args.tls_cert.clone().or(file.tls_cert), args.tls_key.clone().or(file.tls_key)) {
                    (Some(cert), Some(key)) => crate::tls::TlsSource::Files { cert, key },
                    (None, None) => crate::tls::TlsSource::Development {
                        dir: data_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("sluice-tls")),
                    },
                    _ => anyhow::bail!("--tls-cert and --tls-key go together"),
                };
                Some((addr, source))
            }
        };
        let mut extra_ca_certs = file.extra_ca_certs.clone();
        extra_ca_certs.extend(args.extra_ca_cert.iter().cloned());
        let extra_ca_pems = read_ca_pems(&extra_ca_certs)?;
        let s3 = match args.s3_endpoint.clone().or(file.s3_endpoint) {
            None => None,
            Some(endpoint) => Some(sluice_services::firehose::S3Settings {
                endpoint,
                access_key_id: args.s3_access_key_id.clone().or(file.s3_access_key_id).unwrap_or_default(),
                secret_access_key: args.s3_secret_access_key.clone().or(file.s3_secret_access_key).unwrap_or_default(),
                region: args.s3_region.clone().or(file.s3_region).unwrap_or_else(|| DEFAULT_REGION.into()),
                extra_ca_pems: extra_ca_pems.clone(),
            }),
        };
        let mut lambda_urls = file.lambda_urls.clone();
        for pair in &args.lambda_urls {
            let (arn, url) =
                pair.split_once('=').ok_or_else(|| anyhow::anyhow!("--lambda-url takes ARN=URL, got {pair}"))?;
            lambda_urls.insert(arn.to_owned(), url.to_owned());
        }
        let mut credentials = BTreeMap::new();
        for c in &file.credentials {
            let c = crate::auth::Credential {
                access_key_id: c.access_key_id.clone(),
                secret_access_key: c.secret_access_key.clone(),
                account_id: c.account_id.clone(),
                name: c.name.clone(),
                session_token: c.session_token.clone(),
                identity_policy: match &c.policy {
                    Some(text) => Some(std::sync::Arc::new(
                        sluice_services::iam::Policy::parse(text)
                            .map_err(|e| anyhow::anyhow!("credential {}: invalid policy: {e}", c.access_key_id))?,
                    )),
                    None => None,
                },
            };
            c.check()?;
            credentials.insert(c.access_key_id.clone(), c);
        }
        for triple in &args.credentials {
            let c = crate::auth::Credential::parse_triple(triple)?;
            credentials.insert(c.access_key_id.clone(), c);
        }
        let auth = match args.auth.clone().or(file.auth).as_deref().unwrap_or("off") {
            "off" => crate::auth::AuthMode::Off,
            "sigv4" if credentials.is_empty() => {
                anyhow::bail!(
                    "--auth sigv4 needs at least one credential (--credential, SLUICE_CREDENTIALS or [[credentials]])"
                )
            }
            "sigv4" => crate::auth::AuthMode::SigV4(credentials),
            other => anyhow::bail!("--auth is off or sigv4, not {other}"),
        };
        let max_concurrent_requests =
            args.max_concurrent_requests.or(file.max_concurrent_requests).unwrap_or(DEFAULT_MAX_CONCURRENT_REQUESTS);
        if max_concurrent_requests == 0 {
            anyhow::bail!("--max-concurrent-requests must be at least 1");
        }
        let record_segment_mib =
            args.record_segment_mib.or(file.record_segment_mib).unwrap_or(DEFAULT_RECORD_SEGMENT_MIB);
        if !(1..=MAX_RECORD_SEGMENT_MIB).contains(&record_segment_mib) {
            anyhow::bail!("--record-segment-mib must be between 1 and {MAX_RECORD_SEGMENT_MIB}");
        }
        let max_connections = args.max_connections.or(file.max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if max_connections == 0 {
            anyhow::bail!("--max-connections must be at least 1");
        }
        let encryption_key = match args.encryption_key_file.clone().or(file.encryption_key_file) {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("cannot read the encryption key file {}: {e}", path.display()))?;
                Some(sluice_engine::at_rest::parse_key(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
            }
            None => None,
        };
        Ok(Settings {
            encryption_key,
            max_data_mib: args.max_data_mib.or(file.max_data_mib),
            record_segment_mib,
            max_concurrent_requests,
            max_connections,
            auth,
            lambda_urls,
            extra_ca_pems,
            s3,
            bucket_root: args.bucket_root.clone().or(file.bucket_root),
            kinesis_status_delay_ms: args.kinesis_status_delay_ms.or(file.kinesis_status_delay_ms).unwrap_or(0),
            enforce_kinesis_limits: args.enforce_kinesis_limits || file.enforce_kinesis_limits.unwrap_or(false),
            tls,
            listen,
            data_dir,
            account,
            region: args.region.clone().or(file.region).unwrap_or_else(|| DEFAULT_REGION.into()),
            fsync: !args.no_fsync && file.fsync.unwrap_or(true),
            relax_cooldowns: args.relax_cooldowns || file.relax_cooldowns.unwrap_or(false),
            queues: file.queues,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:5000\"\nregion = \"eu-west-1\"\n[[queues]]\nname = \"orders\"\nattributes = { VisibilityTimeout = \"60\" }\n",
        )
        .unwrap();
        let args = ServeArgs { config: Some(path.clone()), ..Default::default() };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.listen.port(), 5000);
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.account, DEFAULT_ACCOUNT);
        assert_eq!(s.queues[0].attributes["VisibilityTimeout"], "60");
        let args = ServeArgs { config: Some(path), listen: Some("127.0.0.1:6000".into()), ..Default::default() };
        assert_eq!(Settings::resolve(&args).unwrap().listen.port(), 6000);
    }

    #[test]
    fn extra_ca_certificates_are_read_once_for_deliveries_and_the_s3_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (good, bad) = (dir.path().join("ca.pem"), dir.path().join("bad.pem"));
        let pem = "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n";
        std::fs::write(&good, pem).unwrap();
        std::fs::write(&bad, "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n").unwrap();
        let args = |cert: &std::path::Path| ServeArgs {
            extra_ca_cert: vec![cert.to_owned()],
            s3_endpoint: Some("https://127.0.0.1:9000".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&args(&good)).unwrap();
        assert_eq!(s.extra_ca_pems, [pem.as_bytes()]);
        assert_eq!(s.s3.unwrap().extra_ca_pems, s.extra_ca_pems, "the S3 client trusts the same certificates");
        let missing = Settings::resolve(&args(&dir.path().join("none.pem"))).unwrap_err();
        assert!(format!("{missing:#}").contains("cannot read CA certificate"), "{missing:#}");
        let invalid = Settings::resolve(&args(&bad)).unwrap_err();
        assert!(format!("{invalid:#}").contains("invalid PEM in"), "{invalid:#}");
    }

    #[test]
    fn auth_modes_and_credentials() {
        assert_eq!(Settings::resolve(&ServeArgs::default()).unwrap().auth, crate::auth::AuthMode::Off);
        let sigv4 =
            |credentials: Vec<String>| ServeArgs { auth: Some("sigv4".into()), credentials, ..Default::default() };
        assert!(Settings::resolve(&sigv4(vec![])).is_err(), "sigv4 needs a credential");
        assert!(Settings::resolve(&sigv4(vec!["AKID:secret:12".into()])).is_err(), "12-digit accounts");
        assert!(Settings::resolve(&ServeArgs { auth: Some("basic".into()), ..Default::default() }).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.toml");
        std::fs::write(
            &path,
            "auth = \"sigv4\"\n[[credentials]]\naccess_key_id = \"AKIDFILE\"\nsecret_access_key = \"s\"\naccount_id = \"111122223333\"\nname = \"ci\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            credentials: vec!["AKIDFLAG:p:a:s:444455556666".into()],
            ..Default::default()
        };
        assert!(Settings::resolve(&args).is_err(), "the account is what follows the second colon");
        let args = ServeArgs { credentials: vec!["AKIDFLAG:p:444455556666".into()], ..args };
        let crate::auth::AuthMode::SigV4(credentials) = Settings::resolve(&args).unwrap().auth else {
            panic!("sigv4 from the file")
        };
        assert_eq!(credentials["AKIDFILE"].account_id, "111122223333");
        assert_eq!(credentials["AKIDFILE"].name.as_deref(), Some("ci"));
        assert_eq!(credentials["AKIDFLAG"].secret_access_key, "p");
    }

    #[test]
    fn rejects_unknown_keys_and_bad_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        assert!(Settings::resolve(&ServeArgs { config: Some(path), ..Default::default() }).is_err());
        assert!(Settings::resolve(&ServeArgs { account: Some("12".into()), ..Default::default() }).is_err());
    }

    #[test]
    fn record_segment_size_is_bounded() {
        let with = |mib| Settings::resolve(&ServeArgs { record_segment_mib: Some(mib), ..Default::default() });
        assert_eq!(Settings::resolve(&ServeArgs::default()).unwrap().record_segment_mib, 64);
        assert_eq!(with(1).unwrap().record_segment_mib, 1);
        assert!(with(0).is_err());
        assert!(with(MAX_RECORD_SEGMENT_MIB + 1).is_err());
    }
}
