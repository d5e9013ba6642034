//! The benchmark scenarios: what each sets up through the API, what each worker sends, and
//! how many messages or records a reply carried.

use super::client::{Connection, Service, Target, FIREHOSE, KINESIS, RAW, SNS, SQS};
use base64::Engine as _;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// SendMessage, one message per request.
    SqsSend,
    /// SendMessageBatch of 10.
    SqsSendBatch,
    /// Half the connections send, half receive and delete (batches of 10); reports
    /// send-to-receive latency.
    SqsCycle,
    /// SendMessage to a FIFO queue over `--groups` message groups.
    SqsFifo,
    /// Long polls (20 s) held on an empty queue; run beside another scenario.
    SqsIdlePollers,
    /// ReceiveMessage of 10 with VisibilityTimeout 0 from a queue holding `--prefill`
    /// messages: the queue keeps its size, so a small and a large backlog compare.
    SqsReceive,
    /// Publish to one topic fanned out to `--queues` queues.
    SnsFanout,
    /// PutRecords of 500.
    KinesisPut,
    /// GetRecords from TRIM_HORIZON over a stream filled with `--prefill` records.
    KinesisGet,
    /// PutRecordBatch of 500.
    FirehosePut,
    /// A plain POST answered by anything: the ceiling of one request per message (nginx).
    HttpPost,
}

/// Names created by setup, shared by every worker.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub queue_url: String,
    pub topic_arn: String,
    pub stream: String,
    pub shards: Vec<String>,
    pub delivery_stream: String,
    /// Facts for the report.
    pub notes: Vec<(String, String)>,
}

/// Options the scenarios read.
#[derive(Debug, Clone)]
pub struct Options {
    pub body_size: usize,
    pub groups: usize,
    pub queues: usize,
    /// SQS scenarios: a named queue instead of a new one.
    pub queue: Option<String>,
    /// sns-fanout: signed envelopes instead of raw delivery.
    pub envelope: bool,
    /// sns-fanout: the topic's SignatureVersion (1 or 2).
    pub signature_version: u8,
    /// sqs-cycle: producers send batches of 10.
    pub batch: bool,
    pub shards: usize,
    pub prefill: usize,
    /// Distinguishes this run's resources from earlier runs' (queue names are reused).
    pub run_id: String,
}

impl Kind {
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).map(|v| v.get_name().to_owned()).unwrap_or_default()
    }

    /// What one unit of throughput is.
    pub fn unit(self) -> &'static str {
        match self {
            Kind::SqsSend | Kind::SqsSendBatch | Kind::SqsCycle | Kind::SqsFifo | Kind::SqsReceive => "messages",
            Kind::SqsIdlePollers => "polls",
            Kind::SnsFanout => "publishes",
            Kind::KinesisPut | Kind::KinesisGet | Kind::FirehosePut => "records",
            Kind::HttpPost => "requests",
        }
    }
}

fn body_of(size: usize, prefix: &str) -> String {
    format!("{prefix}{}", "x".repeat(size.saturating_sub(prefix.len())))
}

async fn ok_json(c: &mut Connection, service: Service, action: &str, body: Value) -> anyhow::Result<Value> {
    let reply = c.call(service, action, serde_json::to_vec(&body)?).await?;
    anyhow::ensure!(
        reply.status == 200,
        "{action} failed during setup: {}",
        reply.error_code.unwrap_or_else(|| format!("HTTP {}", reply.status))
    );
    Ok(if reply.body.is_empty() { Value::Null } else { serde_json::from_slice(&reply.body)? })
}

async fn ok_query(c: &mut Connection, form: &[(&str, &str)]) -> anyhow::Result<String> {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let reply = c.call(SNS, form[0].1, body.into_bytes()).await?;
    anyhow::ensure!(
        reply.status == 200,
        "{} failed during setup: {}",
        form[0].1,
        reply.error_code.unwrap_or_else(|| format!("HTTP {}", reply.status))
    );
    Ok(String::from_utf8_lossy(&reply.body).into_owned())
}

fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_owned())
}

async fn create_queue(c: &mut Connection, name: &str, attributes: Value) -> anyhow::Result<String> {
    let out = ok_json(c, SQS, "CreateQueue", json!({"QueueName": name, "Attributes": attributes})).await?;
    out["QueueUrl"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("CreateQueue returned no QueueUrl"))
}

/// Sends `--prefill` messages to the queue over 16 connections, in batches of 10.
async fn prefill_queue(target: &Target, queue_url: &str, o: &Options) -> anyhow::Result<usize> {
    const CONNECTIONS: usize = 16;
    let batches = o.prefill.div_ceil(10);
    let mut senders = tokio::task::JoinSet::new();
    for k in 0..CONNECTIONS {
        let (target, queue_url, body) = (target.clone(), queue_url.to_owned(), body_of(o.body_size, ""));
        let prefill = o.prefill;
        senders.spawn(async move {
            let mut c = Connection::open(&target).await?;
            let mut sent = 0;
            for batch in (k..batches).step_by(CONNECTIONS) {
                let entries: Vec<Value> = (0..(prefill - batch * 10).min(10))
                    .map(|i| json!({"Id": format!("m{i}"), "MessageBody": body}))
                    .collect();
                let out = ok_json(&mut c, SQS, "SendMessageBatch", json!({"QueueUrl": queue_url, "Entries": entries}))
                    .await?;
                let ok = out["Successful"].as_array().map_or(0, Vec::len);
                anyhow::ensure!(ok == entries.len(), "prefill: some messages failed");
                sent += ok;
            }
            anyhow::Ok(sent)
        });
    }
    let mut sent = 0;
    while let Some(done) = senders.join_next().await {
        sent += done??;
    }
    Ok(sent)
}

/// Creates what the scenario needs.
pub async fn setup(kind: Kind, target: &Target, c: &mut Connection, o: &Options) -> anyhow::Result<Plan> {
    let mut plan = Plan::default();
    let id = &o.run_id;
    let queue_name = |default: String| o.queue.clone().unwrap_or(default);
    match kind {
        Kind::SqsSend | Kind::SqsSendBatch | Kind::SqsCycle => {
            plan.queue_url = create_queue(c, &queue_name(format!("bench-{id}")), json!({})).await?;
            if kind == Kind::SqsCycle {
                plan.notes.push(("sends per request".into(), if o.batch { "10" } else { "1" }.into()));
            }
        }
        Kind::SqsFifo => {
            let attrs = json!({"FifoQueue": "true", "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"});
            plan.queue_url = create_queue(c, &format!("bench-{id}.fifo"), attrs).await?;
            plan.notes.push(("groups".into(), o.groups.to_string()));
        }
        Kind::SqsIdlePollers => {
            plan.queue_url = create_queue(c, &queue_name(format!("bench-idle-{id}")), json!({})).await?;
        }
        Kind::SqsReceive => {
            plan.queue_url = create_queue(c, &queue_name(format!("bench-{id}")), json!({})).await?;
            let sent = prefill_queue(target, &plan.queue_url, o).await?;
            plan.notes.push(("prefilled messages".into(), sent.to_string()));
        }
        Kind::SnsFanout => {
            let version = o.signature_version.to_string();
            let name = format!("bench-{id}");
            let xml = ok_query(
                c,
                &[
                    ("Action", "CreateTopic"),
                    ("Version", "2010-03-31"),
                    ("Name", &name),
                    ("Attributes.entry.1.key", "SignatureVersion"),
                    ("Attributes.entry.1.value", &version),
                ],
            )
            .await?;
            plan.topic_arn = xml_value(&xml, "TopicArn").ok_or_else(|| anyhow::anyhow!("CreateTopic: no TopicArn"))?;
            for q in 0..o.queues {
                let url = create_queue(c, &format!("bench-{id}-fan{q}"), json!({})).await?;
                let attrs =
                    ok_json(c, SQS, "GetQueueAttributes", json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]}))
                        .await?;
                let queue_arn = attrs["Attributes"]["QueueArn"].as_str().unwrap_or_default().to_owned();
                // Let the topic send to the queue, as AWS requires (and Sluice with --auth sigv4).
                let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage", "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": plan.topic_arn}}}]});
                ok_json(
                    c,
                    SQS,
                    "SetQueueAttributes",
                    json!({"QueueUrl": url, "Attributes": {"Policy": policy.to_string()}}),
                )
                .await?;
                ok_query(
                    c,
                    &[
                        ("Action", "Subscribe"),
                        ("Version", "2010-03-31"),
                        ("TopicArn", &plan.topic_arn),
                        ("Protocol", "sqs"),
                        ("Endpoint", &queue_arn),
                        ("Attributes.entry.1.key", "RawMessageDelivery"),
                        ("Attributes.entry.1.value", if o.envelope { "false" } else { "true" }),
                    ],
                )
                .await?;
            }
            plan.notes.push(("queues".into(), o.queues.to_string()));
            plan.notes.push(("delivery".into(), if o.envelope { "envelope" } else { "raw" }.into()));
            plan.notes.push(("signature version".into(), version));
        }
        Kind::KinesisPut | Kind::KinesisGet => {
            plan.stream = format!("bench-{id}");
            ok_json(c, KINESIS, "CreateStream", json!({"StreamName": plan.stream, "ShardCount": o.shards})).await?;
            for _ in 0..600 {
                let d = ok_json(c, KINESIS, "DescribeStreamSummary", json!({"StreamName": plan.stream})).await?;
                if d["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE" {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let shards = ok_json(c, KINESIS, "ListShards", json!({"StreamName": plan.stream})).await?;
            plan.shards = shards["Shards"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s["ShardId"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            plan.notes.push(("shards".into(), plan.shards.len().to_string()));
            if kind == Kind::KinesisGet {
                let mut written = 0;
                while written < o.prefill {
                    let n = (o.prefill - written).min(500);
                    let out =
                        ok_json(c, KINESIS, "PutRecords", put_records(&plan.stream, n, o.body_size, written)).await?;
                    anyhow::ensure!(out["FailedRecordCount"] == 0, "prefill: some records failed");
                    written += n;
                }
                plan.notes.push(("prefilled records".into(), written.to_string()));
            }
        }
        Kind::FirehosePut => {
            plan.delivery_stream = format!("bench-{id}");
            ok_json(
                c,
                FIREHOSE,
                "CreateDeliveryStream",
                json!({"DeliveryStreamName": plan.delivery_stream, "DeliveryStreamType": "DirectPut",
                    "ExtendedS3DestinationConfiguration": {"RoleARN": "arn:aws:iam::000000000000:role/bench",
                        "BucketARN": "arn:aws:s3:::sluice-bench",
                        "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60}}}),
            )
            .await?;
        }
        Kind::HttpPost => {}
    }
    Ok(plan)
}

fn put_records(stream: &str, n: usize, size: usize, offset: usize) -> Value {
    let data = base64::engine::general_purpose::STANDARD.encode(body_of(size, ""));
    let records: Vec<Value> =
        (0..n).map(|i| json!({"Data": data, "PartitionKey": format!("k{}", offset + i)})).collect();
    json!({"StreamName": stream, "Records": records})
}

/// Per-worker state.
#[derive(Default)]
pub struct Worker {
    pub index: usize,
    pub sent: u64,
    /// sqs-cycle: whether this worker consumes rather than produces.
    pub consumer: bool,
    /// kinesis-get: the current iterator.
    pub iterator: Option<String>,
    /// The request of scenarios that send the same one every time, built and hashed once.
    cached: Option<Call>,
}

/// One request: its service, action, body and the body's SHA-256 for the signature.
#[derive(Clone)]
pub struct Call {
    pub service: Service,
    pub action: &'static str,
    pub body: bytes::Bytes,
    pub payload_hash: std::sync::Arc<str>,
}

impl Call {
    fn new(service: Service, action: &'static str, body: Vec<u8>) -> Call {
        let payload_hash = sluice_wire::sigv4::payload_hash(&body).into();
        Call { service, action, body: body.into(), payload_hash }
    }
}

impl Worker {
    pub fn new(index: usize, consumer: bool) -> Worker {
        Worker { index, consumer, ..Default::default() }
    }
}

/// Whether every request of the scenario is the same (built once per worker).
fn repeats(kind: Kind, w: &Worker) -> bool {
    match kind {
        Kind::SqsCycle => w.consumer,
        Kind::SqsFifo | Kind::KinesisGet => false,
        _ => true,
    }
}

/// A SendMessage body carrying the send time (µs) for the consumer's latency figure,
/// written in one buffer: sqs-cycle's producers build one per message, and building it
/// through a `Value` cost the generator CPU the server it shares the machine with needed.
fn timestamped_send(queue_url: &str, body_size: usize) -> Vec<u8> {
    let prefix = format!("{}:", micros_now());
    let mut out = Vec::with_capacity(queue_url.len() + body_size.max(prefix.len()) + 48);
    out.extend_from_slice(b"{\"QueueUrl\":");
    serde_json::to_writer(&mut out, queue_url).expect("a string serializes");
    out.extend_from_slice(b",\"MessageBody\":\"");
    out.extend_from_slice(prefix.as_bytes());
    out.resize(out.len() + body_size.saturating_sub(prefix.len()), b'x');
    out.extend_from_slice(b"\"}");
    out
}

/// The parts of a ReceiveMessage reply sqs-cycle's consumers read (borrowed where no
/// escape forces a copy).
#[derive(Default, serde::Deserialize)]
struct Received<'a> {
    #[serde(default, borrow, rename = "Messages")]
    messages: Vec<ReceivedMessage<'a>>,
}

#[derive(serde::Deserialize)]
struct ReceivedMessage<'a> {
    #[serde(borrow, rename = "Body")]
    body: std::borrow::Cow<'a, str>,
    #[serde(borrow, rename = "ReceiptHandle")]
    receipt_handle: std::borrow::Cow<'a, str>,
}

#[derive(serde::Serialize)]
struct DeleteBatch<'a> {
    #[serde(rename = "QueueUrl")]
    queue_url: &'a str,
    #[serde(rename = "Entries")]
    entries: Vec<DeleteEntry<'a>>,
}

#[derive(serde::Serialize)]
struct DeleteEntry<'a> {
    #[serde(rename = "Id", serialize_with = "id_as_string")]
    id: usize,
    #[serde(rename = "ReceiptHandle")]
    receipt_handle: &'a str,
}

fn id_as_string<S: serde::Serializer>(id: &usize, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

fn micros_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// The next request a worker sends.
pub async fn next_call(
    kind: Kind,
    plan: &Plan,
    o: &Options,
    w: &mut Worker,
    c: &mut Connection,
) -> anyhow::Result<Call> {
    if let Some(call) = &w.cached {
        w.sent += 1;
        return Ok(call.clone());
    }
    let call = build_call(kind, plan, o, w, c).await?;
    if repeats(kind, w) {
        w.cached = Some(call.clone());
    }
    Ok(call)
}

async fn build_call(kind: Kind, plan: &Plan, o: &Options, w: &mut Worker, c: &mut Connection) -> anyhow::Result<Call> {
    let n = w.sent;
    w.sent += 1;
    let sqs = |action, body: Value| Call::new(SQS, action, body.to_string().into_bytes());
    Ok(match kind {
        Kind::SqsSend => {
            sqs("SendMessage", json!({"QueueUrl": plan.queue_url, "MessageBody": body_of(o.body_size, "")}))
        }
        Kind::SqsSendBatch => {
            let entries: Vec<Value> =
                (0..10).map(|i| json!({"Id": format!("m{i}"), "MessageBody": body_of(o.body_size, "")})).collect();
            sqs("SendMessageBatch", json!({"QueueUrl": plan.queue_url, "Entries": entries}))
        }
        Kind::SqsCycle if !w.consumer => {
            // The send time travels in the body, for the consumer's latency figure.
            if o.batch {
                let body = body_of(o.body_size, &format!("{}:", micros_now()));
                let entries: Vec<Value> =
                    (0..10).map(|i| json!({"Id": format!("m{i}"), "MessageBody": body})).collect();
                sqs("SendMessageBatch", json!({"QueueUrl": plan.queue_url, "Entries": entries}))
            } else {
                Call::new(SQS, "SendMessage", timestamped_send(&plan.queue_url, o.body_size))
            }
        }
        Kind::SqsCycle => {
            sqs("ReceiveMessage", json!({"QueueUrl": plan.queue_url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1}))
        }
        Kind::SqsFifo => sqs(
            "SendMessage",
            json!({"QueueUrl": plan.queue_url, "MessageBody": body_of(o.body_size, ""),
                "MessageGroupId": format!("g{}", (w.index + n as usize) % o.groups.max(1)),
                "MessageDeduplicationId": format!("{}-{}-{n}", o.run_id, w.index)}),
        ),
        Kind::SqsIdlePollers => sqs("ReceiveMessage", json!({"QueueUrl": plan.queue_url, "WaitTimeSeconds": 20})),
        Kind::SqsReceive => sqs(
            "ReceiveMessage",
            json!({"QueueUrl": plan.queue_url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 0}),
        ),
        Kind::SnsFanout => {
            let message = body_of(o.body_size, "");
            let form = form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("Action", "Publish"),
                    ("Version", "2010-03-31"),
                    ("TopicArn", &plan.topic_arn),
                    ("Message", &message),
                ])
                .finish();
            Call::new(SNS, "Publish", form.into_bytes())
        }
        // The same 500 partition keys in every request spread records over the shards.
        Kind::KinesisPut => {
            Call::new(KINESIS, "PutRecords", put_records(&plan.stream, 500, o.body_size, 0).to_string().into_bytes())
        }
        Kind::KinesisGet => {
            if w.iterator.is_none() {
                let shard = &plan.shards[w.index % plan.shards.len().max(1)];
                let out = ok_json(
                    c,
                    KINESIS,
                    "GetShardIterator",
                    json!({"StreamName": plan.stream, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
                )
                .await?;
                w.iterator = out["ShardIterator"].as_str().map(str::to_owned);
            }
            Call::new(
                KINESIS,
                "GetRecords",
                json!({"ShardIterator": w.iterator, "Limit": 10000}).to_string().into_bytes(),
            )
        }
        Kind::FirehosePut => {
            let data = base64::engine::general_purpose::STANDARD.encode(body_of(o.body_size, ""));
            let records: Vec<Value> = (0..500).map(|_| json!({"Data": data})).collect();
            Call::new(
                FIREHOSE,
                "PutRecordBatch",
                json!({"DeliveryStreamName": plan.delivery_stream, "Records": records}).to_string().into_bytes(),
            )
        }
        Kind::HttpPost => Call::new(RAW, "Post", body_of(o.body_size, "").into_bytes()),
    })
}

/// Records in a GetRecords reply (AWS JSON) and its NextShardIterator, found by substring
/// search: a reply is ~10 MB, and even skipping it with serde took the generator half a
/// core that the server, sharing the machine, then lacked. The key names cannot occur
/// elsewhere unescaped: Data is base64, and a quote inside a partition key is `\"`.
fn get_records_reply(body: &[u8]) -> (u64, Option<String>) {
    let records = memchr::memmem::find_iter(body, b"\"SequenceNumber\":").count() as u64;
    let key = b"\"NextShardIterator\":\"";
    let next = memchr::memmem::find(body, key).and_then(|at| {
        let rest = &body[at + key.len()..];
        let end = memchr::memchr(b'"', rest)?;
        std::str::from_utf8(&rest[..end]).ok().map(str::to_owned)
    });
    (records, next)
}

/// What a successful reply carried: units, and send-to-receive latencies (µs) of
/// received messages. sqs-cycle's consumers delete what they received here.
pub async fn on_success(
    kind: Kind,
    plan: &Plan,
    w: &mut Worker,
    c: &mut Connection,
    body: &[u8],
) -> anyhow::Result<(u64, Vec<u64>)> {
    let parse = || serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    Ok(match kind {
        Kind::SqsSend | Kind::SqsFifo | Kind::SnsFanout | Kind::HttpPost | Kind::SqsIdlePollers => (1, vec![]),
        Kind::SqsCycle if !w.consumer => (0, vec![]),
        Kind::SqsReceive => (parse()["Messages"].as_array().map_or(0, Vec::len) as u64, vec![]),
        Kind::SqsSendBatch => (parse()["Successful"].as_array().map_or(0, Vec::len) as u64, vec![]),
        Kind::SqsCycle => {
            let out: Received = serde_json::from_slice(body).unwrap_or_default();
            if out.messages.is_empty() {
                return Ok((0, vec![]));
            }
            let now = micros_now();
            let latencies = out
                .messages
                .iter()
                .filter_map(|m| m.body.split_once(':')?.0.parse::<u64>().ok())
                .map(|sent| now.saturating_sub(sent))
                .collect();
            let entries: Vec<DeleteEntry> = out
                .messages
                .iter()
                .enumerate()
                .map(|(i, m)| DeleteEntry { id: i, receipt_handle: &m.receipt_handle })
                .collect();
            let delete = DeleteBatch { queue_url: &plan.queue_url, entries };
            let reply = c.call(SQS, "DeleteMessageBatch", serde_json::to_vec(&delete)?).await?;
            let deleted = if reply.status == 200 {
                serde_json::from_slice::<Value>(&reply.body)?["Successful"].as_array().map_or(0, Vec::len) as u64
            } else {
                0
            };
            (deleted, latencies)
        }
        Kind::KinesisPut => (500 - parse()["FailedRecordCount"].as_u64().unwrap_or(500).min(500), vec![]),
        Kind::KinesisGet => {
            let (records, next) = get_records_reply(body);
            // Caught up: start over from the oldest record, so reading goes on.
            w.iterator = if records == 0 { None } else { next };
            (records, vec![])
        }
        Kind::FirehosePut => (500 - parse()["FailedPutCount"].as_u64().unwrap_or(500).min(500), vec![]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_sends_carry_their_time_and_the_full_body_size() {
        let before = micros_now();
        let body = timestamped_send("http://h/1/q\"x", 1024);
        let sent: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent["QueueUrl"], "http://h/1/q\"x");
        let message = sent["MessageBody"].as_str().unwrap();
        assert_eq!(message.len(), 1024);
        let (at, rest) = message.split_once(':').unwrap();
        assert!(at.parse::<u64>().unwrap() >= before);
        assert!(rest.bytes().all(|b| b == b'x'));
    }

    #[test]
    fn cycle_consumers_read_bodies_and_handles_and_delete_by_them() {
        let reply = json!({"Messages": [
            {"MessageId": "1", "ReceiptHandle": "h/1+", "MD5OfBody": "x", "Body": "12:a\"b"},
            {"MessageId": "2", "ReceiptHandle": "h2", "MD5OfBody": "x", "Body": "13:c", "Attributes": {"a": "b"}},
        ]});
        let bytes = serde_json::to_vec(&reply).unwrap();
        let out: Received = serde_json::from_slice(&bytes).unwrap();
        let bodies: Vec<&str> = out.messages.iter().map(|m| m.body.as_ref()).collect();
        assert_eq!(bodies, ["12:a\"b", "13:c"]);
        let entries = out
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| DeleteEntry { id: i, receipt_handle: &m.receipt_handle })
            .collect();
        let delete = serde_json::to_value(DeleteBatch { queue_url: "u", entries }).unwrap();
        assert_eq!(
            delete,
            json!({"QueueUrl": "u", "Entries": [{"Id": "0", "ReceiptHandle": "h/1+"}, {"Id": "1", "ReceiptHandle": "h2"}]})
        );
        let empty: Received = serde_json::from_slice(b"{}").unwrap();
        assert!(empty.messages.is_empty());
    }

    #[test]
    fn get_records_replies_are_counted_by_their_keys() {
        let reply = json!({
            "MillisBehindLatest": 0,
            "NextShardIterator": "AAAAB3+/=",
            "Records": [
                {"SequenceNumber": "1", "Data": "eA==", "PartitionKey": "has \"SequenceNumber\": inside",
                 "ApproximateArrivalTimestamp": 1.5},
                {"SequenceNumber": "2", "Data": "eQ==", "PartitionKey": "k", "ApproximateArrivalTimestamp": 1.5},
            ],
        });
        let body = serde_json::to_vec(&reply).unwrap();
        assert_eq!(get_records_reply(&body), (2, Some("AAAAB3+/=".into())));
        let closed = serde_json::to_vec(&json!({"Records": [], "ChildShards": [], "MillisBehindLatest": 0})).unwrap();
        assert_eq!(get_records_reply(&closed), (0, None));
    }
}
