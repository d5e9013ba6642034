//! The listener's request handling: route by protocol (X-Amz-Target for JSON,
//! `Action` for Query), derive the caller's account and region, render responses
//! and errors per protocol.

use crate::hangup::ClientSocket;
use crate::head::{visible_text, Headers, RequestBody, RequestHead};
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use futures_util::future::{ready, Either, FutureExt};
use serde_json::Value;
use sluice_services::sns::SnsService;
use sluice_services::sqs::{errors, Received, Receiving, SqsService, XMLNS};
use sluice_services::{ContextParts, RequestContext};
use sluice_wire::xml::XmlResponse;
use sluice_wire::AwsError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Largest request body accepted: a 1 MiB batch grows when form-encoded.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

pub struct AppState {
    pub sqs: SqsService,
    pub kinesis: sluice_services::kinesis::KinesisService,
    pub firehose: Arc<sluice_services::firehose::FirehoseService>,
    pub sns: Arc<SnsService>,
    pub default_account: String,
    pub default_region: String,
    pub auth: crate::auth::AuthMode,
    /// Requests being served (long polls included); beyond the cap requests are throttled.
    pub in_flight: Arc<crate::in_flight::InFlight>,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The headers routing and the request's context read, each the first of its name, as
/// `HeaderMap::get` gives it. Found in one pass over the request's dozen headers rather
/// than by five lookups (with the request id kept by value, not in a `String`: 44,817 →
/// 44,360 instructions a SendMessage, `bench/callgrind.sh`).
struct RoutingHeaders<'a> {
    target: Option<&'a str>,
    content_type: Option<&'a str>,
    host: Option<&'a str>,
    trace: Option<&'a str>,
    authorization: Option<&'a [u8]>,
}

impl<'a> RoutingHeaders<'a> {
    fn of(headers: &'a Headers) -> Self {
        let [mut target, mut content_type, mut host, mut trace, mut authorization] = [None::<&[u8]>; 5];
        for (name, value) in headers.each() {
            let slot = if name.eq_ignore_ascii_case(b"host") {
                &mut host
            } else if name.eq_ignore_ascii_case(b"content-type") {
                &mut content_type
            } else if name.eq_ignore_ascii_case(b"authorization") {
                &mut authorization
            } else if name.eq_ignore_ascii_case(b"x-amz-target") {
                &mut target
            } else if name.eq_ignore_ascii_case(b"x-amzn-trace-id") {
                &mut trace
            } else {
                continue;
            };
            slot.get_or_insert(value);
        }
        let text = |value: Option<&'a [u8]>| value.and_then(visible_text);
        RoutingHeaders {
            target: text(target),
            content_type: text(content_type),
            host: text(host),
            trace: text(trace),
            authorization,
        }
    }
}

/// A request's id: a uuid in its hyphenated text, kept by value.
#[derive(Clone, Copy)]
pub struct RequestId([u8; uuid::fmt::Hyphenated::LENGTH]);

impl RequestId {
    fn new() -> RequestId {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
        RequestId(text)
    }

    pub fn as_str(&self) -> &str {
        // Hex digits and hyphens, as `encode_lower` wrote them.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Account from a 12-digit access key id (as LocalStack users expect), else the default.
fn account_for<'a>(access_key: &'a str, default: &'a str) -> &'a str {
    if access_key.len() == 12 && access_key.chars().all(|c| c.is_ascii_digit()) {
        access_key
    } else {
        default
    }
}

#[derive(Clone, Copy)]
enum Protocol {
    /// AWS JSON 1.1 carried as CBOR (`application/x-amz-cbor-1.1`), the Java SDKs'
    /// default for Kinesis.
    Cbor,
    /// AWS JSON; `query_compatible` services (SQS) add the `x-amzn-query-error` header,
    /// and the content type names the version (`1.0` for SQS, `1.1` for Kinesis and
    /// Firehose).
    Json { query_compatible: bool, content_type: &'static str },
    /// Query, with the XML namespace of the service answering.
    Query(&'static str),
}

/// Which service a Query request is for: the SigV4 scope's service when signed,
/// else the action (AddPermission and RemovePermission exist in both; a TopicArn
/// means SNS).
fn query_is_sns(state: &AppState, scope_service: Option<&str>, action: &str, params: &[(String, String)]) -> bool {
    match scope_service {
        Some("sns") => true,
        Some("sqs") => false,
        _ => {
            let in_sns = state.sns.model().operations.contains_key(action);
            let in_sqs = state.sqs.model().operations.contains_key(action);
            in_sns && (!in_sqs || params.iter().any(|(k, _)| k == "TopicArn"))
        }
    }
}

fn plain(status: StatusCode, content_type: &str, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap_or_default()
}

/// Sluice's own endpoints under `/_sluice/`: the SNS signing certificate and the outbox.
async fn sluice_endpoint(state: &AppState, method: &Method, path: &str) -> Option<Response<Body>> {
    if path == sluice_services::sns::signing::CERT_PATH && method == Method::GET {
        return Some(match state.sns.signing_keys().certificate_pem() {
            Ok(pem) => plain(StatusCode::OK, "application/x-x509-ca-cert", pem),
            Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e),
        });
    }
    if path == "/_sluice/metrics" && method == Method::GET {
        return Some(plain(StatusCode::OK, "text/plain; version=0.0.4", state.firehose.metrics_text()));
    }
    if path == "/_sluice/sns/outbox" {
        if method == Method::GET {
            return Some(plain(StatusCode::OK, "application/json", state.sns.outbox_json().to_string()));
        }
        if method == Method::DELETE {
            return Some(match state.sns.clear_outbox().await {
                Ok(n) => plain(StatusCode::OK, "application/json", format!("{{\"cleared\":{n}}}")),
                Err(e) => plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "application/json",
                    String::from_utf8_lossy(&e.json_body()).into_owned(),
                ),
            });
        }
    }
    None
}

/// The state of one listener: the services, and the scheme clients reach it by.
pub type ListenerState = (Arc<AppState>, &'static str);

/// Answers one request, whatever its protocol and service; called by hyper for each request.
///
/// hyper keeps one allocation per connection for the future this returns, so that future
/// is kept small: the request's handling is boxed apart and freed once it has answered,
/// and a long poll that must wait goes on as its own small future (see
/// `SqsService::start_receive`). An open connection holds 128 bytes of ours and a waiting
/// poll about 1 KB, not the 2.9 KB the whole handling takes.
pub fn handle(
    listener: ListenerState,
    client: ClientSocket,
    head: RequestHead,
    body: RequestBody,
) -> impl Future<Output = Reply> + Send {
    // Combinators rather than async blocks: a block that awaits a future it holds keeps
    // it twice (as its capture and as the awaited value).
    let handling = Box::pin(read_request(listener, client, head, body, RequestId::new()).then(|read| match read {
        Read::Incoming(state, incoming) => Either::Left(dispatch(state, incoming)),
        Read::Answered(response) => Either::Right(ready(Answer::from(response))),
    }));
    handling.then(|answer| match answer {
        Answer::Now(reply) => Either::Left(ready(reply)),
        Answer::AfterWait(waiting) => Either::Right(waiting),
    })
}

/// A request's answer, or the wait that will give it.
enum Answer {
    Now(Reply),
    AfterWait(Pin<Box<dyn Future<Output = Reply> + Send>>),
}

impl From<Response<Body>> for Answer {
    fn from(response: Response<Body>) -> Self {
        Answer::Now(Reply::Built(response))
    }
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Self {
        Answer::Now(reply)
    }
}

/// A request's answer.
pub enum Reply {
    /// 200 with a JSON body, the content type and the request id header: the answer of
    /// most JSON requests, which the HTTP/1.1 loop writes as it is, with no `Response`
    /// and `HeaderMap` made for it (five allocations and 1,200 instructions a
    /// SendMessage, `bench/callgrind.sh`).
    Json {
        body: Vec<u8>,
        content_type: &'static str,
        id: RequestId,
    },
    Built(Response<Body>),
}

impl From<Response<Body>> for Reply {
    fn from(response: Response<Body>) -> Self {
        Reply::Built(response)
    }
}

impl Reply {
    /// As hyper writes it. Built on the response itself rather than through
    /// `Response::builder`, whose checked steps move the whole head from closure to
    /// closure (1,222 instructions a SendMessage against 1,448).
    pub fn into_response(self) -> Response<Body> {
        match self {
            Reply::Json { body, content_type, id } => {
                let mut response = Response::new(Body::from(body));
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                // A request id is ours, a uuid: always a valid header value.
                if let Ok(id) = HeaderValue::from_str(id.as_str()) {
                    headers.insert(REQUEST_ID, id);
                }
                response
            }
            Reply::Built(response) => response,
        }
    }
}

/// What reading a request comes to.
// Made once per request and consumed at once: boxing the larger variant would only add
// an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Read {
    /// Answered at once: health, Sluice's own endpoints, or a refusal.
    Answered(Response<Body>),
    /// To run, with the listener's state.
    Incoming(Arc<AppState>, Incoming),
}

/// A request read: its context and body, with what routes it.
struct Incoming {
    ctx: RequestContext,
    id: RequestId,
    body: bytes::Bytes,
    /// The in-flight slot, held until the answer (or a long poll's wait) is done.
    permit: crate::in_flight::InFlightSlot,
    route: Route,
    /// What a long poll that waits watches for its client's close.
    client: ClientSocket,
}

/// How a request is routed: its protocol and target, and for Query its URL's parameters
/// and the service its signature names.
struct Route {
    protocol: Protocol,
    target: Option<String>,
    query_params: Vec<(String, String)>,
    /// The signature's service when it is one a Query action could be for (routing needs
    /// no other).
    scope_service: Option<&'static str>,
}

/// Reads the request's head and body: answers at once (health, Sluice's own endpoints,
/// throttling, a body too large, a failed signature) or gives the request's context.
async fn read_request(
    (state, scheme): ListenerState,
    client: ClientSocket,
    head: RequestHead,
    body: RequestBody,
    id: RequestId,
) -> Read {
    let request_id = id.as_str();
    if head.method == Method::GET && head.uri.path() == "/health" {
        return Read::Answered(
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"status\":\"ok\"}"))
                .unwrap_or_default(),
        );
    }
    if head.uri.path().starts_with("/_sluice/") {
        // The outbox holds message bodies: with --auth sigv4 it needs a signed request from
        // a configured credential. The signing certificate and the metrics (counts only)
        // stay open, like /health.
        if let (crate::auth::AuthMode::SigV4(credentials), true) =
            (&state.auth, head.uri.path() == "/_sluice/sns/outbox")
        {
            let body = read_body(body, MAX_BODY_BYTES).await.unwrap_or_default();
            if let Err(e) = crate::auth::authenticate(credentials, &head, &body, now_secs()) {
                return Read::Answered(plain(
                    StatusCode::from_u16(e.status).unwrap_or(StatusCode::FORBIDDEN),
                    "application/json",
                    String::from_utf8_lossy(&e.json_body()).into_owned(),
                ));
            }
            return Read::Answered(
                Box::pin(sluice_endpoint(&state, &head.method, head.uri.path()))
                    .await
                    .unwrap_or_else(|| plain(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET or DELETE".into())),
            );
        }
        if let Some(response) = Box::pin(sluice_endpoint(&state, &head.method, head.uri.path())).await {
            return Read::Answered(response);
        }
    }
    let headers = RoutingHeaders::of(&head.headers);
    let target = headers.target.map(str::to_owned);
    let cbor = headers.content_type.is_some_and(|c| c.starts_with("application/x-amz-cbor-1.1"));
    let protocol = match target.as_deref() {
        Some(t) if t.starts_with("Kinesis_20131202.") && cbor => Protocol::Cbor,
        Some(t) if t.starts_with("Kinesis_20131202.") || t.starts_with("Firehose_20150804.") => {
            Protocol::Json { query_compatible: false, content_type: "application/x-amz-json-1.1" }
        }
        Some(_) => Protocol::Json { query_compatible: true, content_type: "application/x-amz-json-1.0" },
        None => Protocol::Query(XMLNS),
    };
    // Backpressure instead of unbounded memory: past the cap, answer at once with the
    // throttling error every SDK retries with backoff, before reading the body.
    let Some(permit) = state.in_flight.enter() else {
        let e = AwsError::new(400, "ThrottlingException", "Throttling", "Rate exceeded");
        return Read::Answered(error_response(&protocol, &e, request_id));
    };
    let body = match read_body(body, MAX_BODY_BYTES).await {
        Some(b) => b,
        None => {
            let e = AwsError::new(413, "RequestEntityTooLarge", "RequestEntityTooLarge", "Request body is too large.");
            return Read::Answered(error_response(&protocol, &e, request_id));
        }
    };

    let query_params = head.uri.query().map(|q| sluice_wire::query::parse_form(q.as_bytes())).unwrap_or_default();
    let scope = headers.authorization.and_then(sluice_wire::sigv4::scope_from_authorization).or_else(|| {
        query_params
            .iter()
            .find(|(k, _)| k == "X-Amz-Credential")
            .and_then(|(_, v)| sluice_wire::sigv4::scope_from_credential(v))
    });
    let (access_key, region, scope_service) = match scope {
        Some(scope) => {
            let service = ["sns", "sqs"].into_iter().find(|s| *s == scope.service);
            (scope.access_key_id, scope.region, service)
        }
        None => ("AKIAIOSFODNN7EXAMPLE", state.default_region.as_str(), None),
    };
    let (account, caller) = match &state.auth {
        crate::auth::AuthMode::Off => (account_for(access_key, &state.default_account), None),
        crate::auth::AuthMode::SigV4(credentials) => {
            match crate::auth::authenticate(credentials, &head, &body, now_secs()) {
                Ok(credential) => (credential.account_id.as_str(), Some(Arc::new(credential.caller()))),
                Err(e) => return Read::Answered(error_response(&protocol, &e, request_id)),
            }
        }
    };
    let authority = match headers.host {
        Some(_) => None,
        None => head.uri.authority().map(|a| a.to_string()),
    };
    let ctx = RequestContext::new(ContextParts {
        account,
        region,
        host: headers.host.or(authority.as_deref()).unwrap_or("localhost:4566"),
        scheme,
        access_key_id: access_key,
        path: head.uri.path(),
        trace_header: headers.trace.map(str::to_owned),
        caller,
    });
    Read::Incoming(
        state,
        Incoming { ctx, id, body, permit, route: Route { protocol, target, query_params, scope_service }, client },
    )
}

/// Runs a read request by its protocol and service.
///
/// Every service call here is boxed: this future is as large as its largest state, and
/// it is itself boxed per request (see `handle`), best within glibc's thread cache
/// (1,032 bytes; it is under 1 KiB). Inline, Kinesis's futures alone are 3.9 KB.
async fn dispatch(state: Arc<AppState>, incoming: Incoming) -> Answer {
    let Incoming { ctx, id, body, permit, route, client } = incoming;
    let Route { protocol, target, query_params, scope_service } = route;
    let request_id = id.as_str();

    Answer::from(match protocol {
        Protocol::Cbor => {
            let action = target
                .as_deref()
                .and_then(|t| sluice_wire::fields::split_once_ascii(t, b'.'))
                .map(|(_, a)| a.to_owned())
                .unwrap_or_default();
            let input = if body.is_empty() {
                Value::Object(Default::default())
            } else {
                match sluice_wire::cbor::decode(&body) {
                    Ok(v) => v,
                    Err(e) => {
                        return error_response(
                            &protocol,
                            &sluice_services::kinesis::serialization(e.to_string()),
                            request_id,
                        )
                        .into()
                    }
                }
            };
            drop(body);
            if action == "SubscribeToShard" {
                return Box::pin(subscribe_to_shard(&state, &ctx, input, &protocol, request_id)).await.into();
            }
            match Box::pin(state.kinesis.handle(&ctx, &action, input)).await {
                Ok(output) => {
                    let model = state.kinesis.model();
                    let bytes = match model.operations.get(&action).and_then(|o| o.output.as_deref()) {
                        Some(shape) => sluice_wire::cbor::encode(model, shape, &output),
                        None => sluice_wire::cbor::encode_plain(&output),
                    };
                    Response::builder()
                        .status(StatusCode::OK)
                        .header(header::CONTENT_TYPE, "application/x-amz-cbor-1.1")
                        .header(REQUEST_ID, request_id)
                        .body(Body::from(bytes))
                        .unwrap_or_default()
                }
                Err(e) => error_response(&protocol, &e, request_id),
            }
        }
        Protocol::Json { content_type, .. } => {
            let target = target.unwrap_or_default();
            if let Some(("AmazonSQS", action)) = sluice_wire::fields::split_once_ascii(&target, b'.') {
                // Boxed in its own statement: an `if let` scrutinee's temporary would keep
                // the unboxed future's room (0.9 KB) in this future.
                let sending = state.sqs.handle_typed_json(&ctx, action, &body).map(Box::pin);
                if let Some(sending) = sending {
                    let result = sending.await;
                    return match result {
                        Ok(body) => Reply::Json { body, content_type, id },
                        Err(e) => error_response(&protocol, &e, request_id).into(),
                    }
                    .into();
                }
            }
            let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
                Value::Object(Default::default())
            } else {
                match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(e) => {
                        return error_response(&protocol, &errors::serialization(e.to_string()), request_id).into()
                    }
                }
            };
            drop(body);
            if target == "Kinesis_20131202.SubscribeToShard" {
                return Box::pin(subscribe_to_shard(&state, &ctx, input, &protocol, request_id)).await.into();
            }
            if target == "AmazonSQS.ReceiveMessage" {
                let receiving = Box::pin(state.sqs.start_receive(&ctx, input, false)).await;
                let render = move |r: &Received, id| Ok(Reply::Json { body: r.json_body()?, content_type, id });
                return receive_answer(receiving, protocol, id, permit, client, render);
            }
            let to_json = |v: Value| serde_json::to_vec(&v).unwrap_or_default();
            let result = match sluice_wire::fields::split_once_ascii(&target, b'.') {
                Some(("AmazonSQS", action)) => Box::pin(state.sqs.handle_json(&ctx, action, input)).await,
                Some((sluice_services::kinesis::TARGET_PREFIX, action)) => {
                    Box::pin(state.kinesis.handle_json(&ctx, action, input)).await
                }
                Some((sluice_services::firehose::TARGET_PREFIX, action)) => {
                    Box::pin(state.firehose.handle(&ctx, action, input)).await.map(to_json)
                }
                _ => Err(errors::unknown_operation(&target, false)),
            };
            match result {
                Ok(body) => return Reply::Json { body, content_type, id }.into(),
                Err(e) => error_response(&protocol, &e, request_id),
            }
        }
        Protocol::Query(_) => {
            let mut params = query_params;
            params.extend(sluice_wire::query::parse_form(&body));
            drop(body);
            let Some(action) = params.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()) else {
                let e = AwsError::new(
                    400,
                    "MissingAction",
                    "MissingAction",
                    "The request must contain the parameter Action.",
                );
                return error_response(&protocol, &e, request_id).into();
            };
            if query_is_sns(&state, scope_service, &action, &params) {
                let protocol = Protocol::Query(sluice_services::sns::XMLNS);
                let result = match state.sns.decode_query(&action, &params) {
                    Ok(input) => Box::pin(state.sns.handle(&ctx, &action, input)).await,
                    Err(e) => Err(e),
                };
                return match result {
                    Ok(output) => {
                        let xml = XmlResponse {
                            model: state.sns.model(),
                            naming: SnsService::naming(),
                            xmlns: sluice_services::sns::XMLNS,
                        };
                        xml_response(xml.render(&action, Some(&output), request_id), request_id)
                    }
                    Err(e) => error_response(&protocol, &e, request_id),
                }
                .into();
            }
            let input = match state.sqs.decode_query(&ctx, &action, &params) {
                Ok(input) => input,
                Err(e) => return error_response(&protocol, &e, request_id).into(),
            };
            if action == "ReceiveMessage" {
                let receiving = Box::pin(state.sqs.start_receive(&ctx, input, true)).await;
                let state = state.clone();
                let render = move |r: &Received, id: RequestId| {
                    Ok(sqs_query_response(&state, "ReceiveMessage", &r.output()?, id.as_str()).into())
                };
                return receive_answer(receiving, protocol, id, permit, client, render);
            }
            match Box::pin(state.sqs.handle(&ctx, &action, input, true)).await {
                Ok(output) => sqs_query_response(&state, &action, &output, request_id),
                Err(e) => error_response(&protocol, &e, request_id),
            }
        }
    })
}

/// An SQS Query action's output as its XML response.
fn sqs_query_response(state: &AppState, action: &str, output: &Value, request_id: &str) -> Response<Body> {
    let xml = XmlResponse { model: state.sqs.model(), naming: SqsService::naming(), xmlns: XMLNS };
    xml_response(xml.render(action, Some(output), request_id), request_id)
}

/// ReceiveMessage's answer, rendered by `render`: now, or after its long poll's wait. The
/// wait holds the in-flight permit (a waiting poll counts against the cap) and only what
/// it needs to answer.
fn receive_answer<R>(
    receiving: Result<Receiving, AwsError>,
    protocol: Protocol,
    id: RequestId,
    permit: crate::in_flight::InFlightSlot,
    client: ClientSocket,
    render: R,
) -> Answer
where
    R: Fn(&Received, RequestId) -> Result<Reply, AwsError> + Send + 'static,
{
    let respond = move |received: Result<Received, AwsError>| {
        let request_id = id.as_str();
        received.and_then(|r| render(&r, id)).unwrap_or_else(|e| error_response(&protocol, &e, request_id).into())
    };
    match receiving {
        Ok(Receiving::Waiting(poll)) => {
            Answer::AfterWait(Box::pin(poll.received_while(move || client.is_open()).map(move |received| {
                drop(permit);
                respond(received)
            })))
        }
        Ok(Receiving::Received(received)) => respond(Ok(received)).into(),
        Err(e) => respond(Err(e)).into(),
    }
}

/// Frames from a channel as a streaming body.
struct FrameStream(tokio::sync::mpsc::Receiver<Vec<u8>>);

impl futures_core::Stream for FrameStream {
    type Item = Result<bytes::Bytes, std::convert::Infallible>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|frame| frame.map(|f| Ok(bytes::Bytes::from(f))))
    }
}

/// SubscribeToShard: an `application/vnd.amazon.eventstream` body (HTTP/2 or chunked HTTP/1.1).
async fn subscribe_to_shard(
    state: &AppState,
    ctx: &RequestContext,
    input: Value,
    protocol: &Protocol,
    request_id: &str,
) -> Response<Body> {
    let cbor = matches!(protocol, Protocol::Cbor);
    match state.kinesis.subscribe_to_shard(ctx, input, cbor).await {
        Ok(rx) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/vnd.amazon.eventstream")
            .header(REQUEST_ID, request_id)
            .body(Body::from_stream(FrameStream(rx)))
            .unwrap_or_default(),
        Err(e) => error_response(protocol, &e, request_id),
    }
}

fn xml_response(text: String, request_id: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/xml")
        .header(REQUEST_ID, request_id)
        .body(Body::from(text))
        .unwrap_or_default()
}

/// The request id header (`x-amzn-RequestId` as AWS spells it; header names are
/// case-insensitive and go out in lower case): a static name costs no allocation.
pub(crate) const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-amzn-requestid");

/// The whole body, or `None` past `limit` bytes or on a failed read. A body that comes
/// in one frame (a request's usual case) is that frame's bytes, with no copy; axum's
/// `to_bytes` gathered every body through a queue of frames and copied it out, 1,224
/// instructions a SendMessage (`bench/callgrind.sh`).
async fn read_body(body: RequestBody, limit: usize) -> Option<bytes::Bytes> {
    use http_body_util::BodyExt;
    let mut body = match body {
        RequestBody::Whole(bytes) => return (bytes.len() <= limit).then_some(bytes),
        RequestBody::Streaming(body) => body,
    };
    if hyper::body::Body::size_hint(&body).lower() > limit as u64 {
        return None;
    }
    // The first frame as it came; later frames join a copy of it.
    let mut first: Option<bytes::Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else { continue };
        if first.as_ref().map_or(0, bytes::Bytes::len) + joined.len() + data.len() > limit {
            return None;
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            earlier => {
                joined.extend_from_slice(earlier.as_deref().unwrap_or_default());
                joined.extend_from_slice(&data);
            }
        }
    }
    Some(first.unwrap_or_else(|| joined.into()))
}

fn error_response(protocol: &Protocol, e: &AwsError, request_id: &str) -> Response<Body> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let builder = Response::builder().status(status).header(REQUEST_ID, request_id);
    match protocol {
        Protocol::Json { query_compatible, content_type } => {
            let mut builder = builder.header(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            if *query_compatible {
                if let Ok(v) = HeaderValue::from_str(&e.query_error_header()) {
                    builder = builder.header("x-amzn-query-error", v);
                }
            }
            builder.body(Body::from(e.json_body())).unwrap_or_default()
        }
        Protocol::Cbor => builder
            .header(header::CONTENT_TYPE, "application/x-amz-cbor-1.1")
            .body(Body::from(sluice_wire::cbor::encode_plain(
                &serde_json::json!({"__type": e.json_type, "message": e.message}),
            )))
            .unwrap_or_default(),
        Protocol::Query(xmlns) => builder
            .header(header::CONTENT_TYPE, "text/xml")
            .body(Body::from(e.query_xml_body(xmlns, request_id)))
            .unwrap_or_default(),
    }
}
