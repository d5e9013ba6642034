//! Outbound HTTP for SNS deliveries (plain HTTP; HTTPS endpoints need the TLS work of
//! the hardening issue).

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sluice_services::sns::delivery::{HttpPost, HttpResult};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// An endpoint that does not answer within this is treated as a failed attempt.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

pub struct HyperPost {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl HyperPost {
    pub fn new() -> Self {
        HyperPost { client: Client::builder(TokioExecutor::new()).build_http() }
    }
}

impl Default for HyperPost {
    fn default() -> Self {
        Self::new()
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
                let response = self.client.request(request).await.map_err(|e| e.to_string())?;
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
