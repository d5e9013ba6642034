//! Outbound HTTP(S) for deliveries (SNS HTTP/S subscriptions, Firehose HTTP endpoints):
//! HTTPS trusts the system's roots plus any CA certificates given with `--extra-ca-cert`.

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sluice_services::sns::delivery::{HttpPost, HttpResult};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// An endpoint that does not answer within this is treated as a failed attempt.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

pub struct HyperPost {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HyperPost {
    /// A client for `http://` and `https://` URLs; `extra_ca_pems` as config read them.
    pub fn new(extra_ca_pems: &[Vec<u8>]) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        for pem in extra_ca_pems {
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                roots.add(cert.context("invalid PEM in an extra CA certificate")?)?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_or_http().enable_http1().build();
        Ok(HyperPost { client: Client::builder(TokioExecutor::new()).build(connector) })
    }
}

impl HttpPost for HyperPost {
    fn post<'a>(
        &'a self,
        url: &'a str,
        headers: &'a [(String, String)],
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = HttpResult> + Send + 'a>> {
        Box::pin(async move {
            let mut builder = http::Request::builder().method("POST").uri(url);
            for (k, v) in headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            let request = builder.body(Full::new(Bytes::from(body.to_owned()))).map_err(|e| e.to_string())?;
            let exchange = async {
                let response = self.client.request(request).await.map_err(|e| {
                    // The source chain says why (refused, TLS, DNS), which the top error does not.
                    let mut text = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        text.push_str(&format!(": {s}"));
                        source = s.source();
                    }
                    text
                })?;
                let status = response.status().as_u16();
                let body = http_body_util::BodyExt::collect(response.into_body()).await.map_err(|e| e.to_string())?;
                Ok((status, body.to_bytes().to_vec()))
            };
            match tokio::time::timeout(DELIVERY_TIMEOUT, exchange).await {
                Ok(result) => result,
                Err(_) => Err("timed out".into()),
            }
        })
    }
}
