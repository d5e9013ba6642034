//! One keep-alive connection of the load generator (HTTP/1.1, or HTTP/2 with `--h2`;
//! `https://` endpoints through rustls), sending SigV4-signed AWS requests one at a time.

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_wire::sigv4::Signer;
use std::sync::Arc;

/// The wire protocol of a service: how a call is framed and how its errors read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AWS JSON with this content-type version (SQS 1.0; Kinesis and Firehose 1.1).
    Json(&'static str),
    /// Query (form-encoded request, XML response): SNS.
    Query,
    /// A plain POST of the body, for measuring a server that answers a fixed 200.
    Raw,
}

/// Which service a call goes to: its signing name, protocol and `X-Amz-Target` prefix.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    pub signing_name: &'static str,
    pub protocol: Protocol,
    pub target_prefix: &'static str,
}

pub const SQS: Service = Service { signing_name: "sqs", protocol: Protocol::Json("1.0"), target_prefix: "AmazonSQS" };
pub const SNS: Service = Service { signing_name: "sns", protocol: Protocol::Query, target_prefix: "" };
pub const KINESIS: Service =
    Service { signing_name: "kinesis", protocol: Protocol::Json("1.1"), target_prefix: "Kinesis_20131202" };
pub const FIREHOSE: Service =
    Service { signing_name: "firehose", protocol: Protocol::Json("1.1"), target_prefix: "Firehose_20150804" };
pub const RAW: Service = Service { signing_name: "sqs", protocol: Protocol::Raw, target_prefix: "" };

/// Where and as whom to connect.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub tls: Option<tokio_rustls::TlsConnector>,
    pub h2: bool,
    pub access_key_id: String,
    pub secret: String,
    pub region: String,
}

impl Target {
    pub fn parse(endpoint: &str, h2: bool, access_key_id: &str, secret: &str, region: &str) -> anyhow::Result<Target> {
        let uri: http::Uri = endpoint.parse().with_context(|| format!("invalid endpoint {endpoint}"))?;
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().context("the endpoint needs a host")?.to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            let mut config =
                rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
            config.alpn_protocols = if h2 { vec![b"h2".to_vec()] } else { vec![b"http/1.1".to_vec()] };
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Target {
            host,
            port,
            tls,
            h2,
            access_key_id: access_key_id.into(),
            secret: secret.into(),
            region: region.into(),
        })
    }

    fn host_header(&self) -> String {
        let default = if self.tls.is_some() { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

enum Sender {
    /// Plain-TCP HTTP/1.1, the common case: the lean client.
    Plain(super::h1::Plain),
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// A call's outcome: the status, the AWS error code when it failed, and the body.
pub struct Reply {
    pub status: u16,
    pub error_code: Option<String>,
    pub body: Bytes,
}

/// A signature and what it covers: the second, the target (service and action) and the
/// body's hash; the host and content type are the connection's and the service's.
struct LastSignature {
    at: i64,
    target: String,
    payload_hash: String,
    amz_date: String,
    authorization: String,
}

pub struct Connection {
    target: Target,
    host_header: String,
    sender: Sender,
    signers: Vec<(&'static str, Signer)>,
    /// The last signature: a request identical to the last one (same action, body and
    /// second) has the same signature, as an SDK would compute it.
    last_signature: Option<LastSignature>,
}

impl Connection {
    pub async fn open(target: &Target) -> anyhow::Result<Connection> {
        let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
            .await
            .with_context(|| format!("cannot connect to {}:{}", target.host, target.port))?;
        tcp.set_nodelay(true)?;
        let sender = match &target.tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(target.host.clone())?;
                let stream = tls.connect(name, tcp).await?;
                handshake(TokioIo::new(stream), target.h2).await?
            }
            None if !target.h2 => Sender::Plain(super::h1::Plain::new(tcp)),
            None => handshake(TokioIo::new(tcp), target.h2).await?,
        };
        Ok(Connection {
            host_header: target.host_header(),
            target: target.clone(),
            sender,
            signers: Vec::new(),
            last_signature: None,
        })
    }

    fn signer(&mut self, service: &'static str) -> &mut Signer {
        let index = match self.signers.iter().position(|(s, _)| *s == service) {
            Some(i) => i,
            None => {
                let t = &self.target;
                self.signers.push((service, Signer::new(&t.access_key_id, &t.secret, &t.region, service)));
                self.signers.len() - 1
            }
        };
        &mut self.signers[index].1
    }

    /// Sends one call: `action` with a JSON (or form, for Query) body.
    pub async fn call(&mut self, service: Service, action: &str, body: Vec<u8>) -> anyhow::Result<Reply> {
        let hash = sluice_wire::sigv4::payload_hash(&body);
        self.call_hashed(service, action, Bytes::from(body), &hash).await
    }

    /// As [`Connection::call`], for a body whose SHA-256 is known (sent many times).
    pub async fn call_hashed(
        &mut self,
        service: Service,
        action: &str,
        body: Bytes,
        payload_hash: &str,
    ) -> anyhow::Result<Reply> {
        let mut headers = vec![("host".to_string(), self.host_header.clone())];
        match service.protocol {
            Protocol::Json(version) => {
                headers.push(("content-type".into(), format!("application/x-amz-json-{version}")));
                headers.push(("x-amz-target".into(), format!("{}.{action}", service.target_prefix)));
            }
            Protocol::Query => {
                headers.push(("content-type".into(), "application/x-www-form-urlencoded".into()));
            }
            Protocol::Raw => headers.push(("content-type".into(), "application/octet-stream".into())),
        }
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let target = format!("{}.{action}", service.signing_name);
        let reusable = self
            .last_signature
            .as_ref()
            .filter(|l| l.at == now && l.target == target && l.payload_hash == payload_hash);
        let (amz_date, authorization) = match reusable {
            Some(l) => (l.amz_date.clone(), l.authorization.clone()),
            None => {
                let (amz_date, authorization) =
                    self.signer(service.signing_name).sign_hashed("POST", "/", &headers, payload_hash, now);
                self.last_signature = Some(LastSignature {
                    at: now,
                    target,
                    payload_hash: payload_hash.to_owned(),
                    amz_date: amz_date.clone(),
                    authorization: authorization.clone(),
                });
                (amz_date, authorization)
            }
        };
        let (target, host_header) = (&self.target, &self.host_header);
        let hyper_request = || -> anyhow::Result<http::Request<Full<Bytes>>> {
            let uri = if target.h2 {
                let scheme = if target.tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{host_header}/")
            } else {
                "/".to_owned()
            };
            let mut builder = http::Request::builder().method("POST").uri(uri);
            for (k, v) in &headers {
                // HTTP/2 carries the host as :authority.
                if !(target.h2 && k == "host") {
                    builder = builder.header(k.as_str(), v.as_str());
                }
            }
            Ok(builder
                .header("x-amz-date", amz_date.as_str())
                .header("authorization", authorization.as_str())
                .body(Full::new(body.clone()))?)
        };
        let response = match &mut self.sender {
            Sender::Plain(plain) => {
                let mut all: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                all.push(("x-amz-date", &amz_date));
                all.push(("authorization", &authorization));
                let response = plain.post(&all, &body).await?;
                let error_code = (response.status >= 300)
                    .then(|| error_code(service.protocol, response.query_error, &response.body, response.status));
                return Ok(Reply { status: response.status, error_code, body: response.body });
            }
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(hyper_request()?).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(hyper_request()?).await?
            }
        };
        let status = response.status().as_u16();
        let query_error = response.headers().get("x-amzn-query-error").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.into_body().collect().await?.to_bytes();
        let error_code = (status >= 300).then(|| error_code(service.protocol, query_error, &body, status));
        Ok(Reply { status, error_code, body })
    }
}

async fn handshake<I>(io: TokioIo<I>, h2: bool) -> anyhow::Result<Sender>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    Ok(if h2 {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(connection);
        Sender::H2(sender)
    } else {
        let (sender, connection) = http1::handshake(io).await?;
        tokio::spawn(connection);
        Sender::H1(sender)
    })
}

/// The AWS error code of a failed call, as SDKs read it.
fn error_code(protocol: Protocol, query_error: Option<String>, body: &[u8], status: u16) -> String {
    if let Some(q) = query_error {
        return q.split(';').next().unwrap_or_default().to_owned();
    }
    let text = String::from_utf8_lossy(body);
    match protocol {
        Protocol::Json(_) => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("__type").and_then(|t| t.as_str()).map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
            })
            .unwrap_or_else(|| format!("HTTP {status}")),
        Protocol::Query => text
            .split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map(|(code, _)| code.to_owned())
            .unwrap_or_else(|| format!("HTTP {status}")),
        Protocol::Raw => format!("HTTP {status}"),
    }
}
