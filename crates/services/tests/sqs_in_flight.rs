//! SQS's in-flight quota on a standard queue (about 120,000 messages received and neither
//! deleted nor visible again), over the on-disk embedded store: a short poll past it is
//! refused with `OverLimit`, a long poll is not ("If you use long polling, Amazon SQS
//! returns no error messages").

use serde_json::{json, Value};
use sluice_engine::{Clock, EmbeddedOptions, EmbeddedStore, ManualClock};
use sluice_services::sqs::SqsService;
use sluice_services::RequestContext;
use std::sync::Arc;

/// AWS's quota for a standard queue.
const QUOTA: usize = 120_000;
/// Sends and receives in flight at once, so that group commits gather them.
const CONCURRENT: usize = 64;

struct Harness {
    _dir: tempfile::TempDir,
    svc: Arc<SqsService>,
    ctx: Arc<RequestContext>,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        // Without fsync: the quota is what is tested, and 24,000 writes go through.
        let options = EmbeddedOptions { durable: false, ..EmbeddedOptions::for_tests(dir.path()) };
        let store = Arc::new(EmbeddedStore::open(options, clock.clone() as Arc<dyn Clock>).unwrap());
        let svc = SqsService::new(store, clock, tokio::sync::watch::channel(false).1);
        let ctx = RequestContext::local("000000000000", "us-east-1");
        Harness { _dir: dir, svc: Arc::new(svc), ctx: Arc::new(ctx) }
    }

    async fn call(&self, action: &str, input: Value) -> Result<Value, (String, String)> {
        call(&self.svc, &self.ctx, action, input).await
    }

    async fn queue(&self, name: &str, attributes: Value) -> String {
        let out = self.call("CreateQueue", json!({"QueueName": name, "Attributes": attributes})).await.unwrap();
        out["QueueUrl"].as_str().unwrap().to_owned()
    }

    /// Runs `rounds` calls of `action` with `input`, `CONCURRENT` at a time; the messages
    /// their replies list under `key`.
    async fn many(&self, rounds: usize, action: &'static str, input: Value, key: &'static str) -> usize {
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..CONCURRENT {
            let (svc, ctx, input) = (self.svc.clone(), self.ctx.clone(), input.clone());
            let mine = rounds / CONCURRENT + usize::from(task < rounds % CONCURRENT);
            tasks.spawn(async move {
                let mut listed = 0;
                for _ in 0..mine {
                    let out =
                        call(&svc, &ctx, action, input.clone()).await.unwrap_or_else(|e| panic!("{action}: {e:?}"));
                    listed += out[key].as_array().map_or(0, Vec::len);
                }
                listed
            });
        }
        tasks.join_all().await.into_iter().sum()
    }

    /// Sends `n` (a multiple of 10) messages in batches of 10.
    async fn send(&self, url: &str, n: usize) {
        let entries: Vec<Value> = (0..10).map(|i| json!({"Id": format!("m{i}"), "MessageBody": "x"})).collect();
        let batch = json!({"QueueUrl": url, "Entries": entries});
        assert_eq!(self.many(n / 10, "SendMessageBatch", batch, "Successful").await, n);
    }

    /// Receives `n` (a multiple of 10) messages, ten at a time, hidden for 12 hours.
    async fn take_in_flight(&self, url: &str, n: usize) -> usize {
        let receive = json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 43_200});
        self.many(n / 10, "ReceiveMessage", receive, "Messages").await
    }
}

async fn call(svc: &SqsService, ctx: &RequestContext, action: &str, input: Value) -> Result<Value, (String, String)> {
    svc.handle(ctx, action, input, false).await.map_err(|e| (e.json_type, e.message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_polls_at_the_in_flight_quota_are_over_limit_and_long_polls_are_not() {
    let h = Harness::new();
    let url = h.queue("busy", json!({})).await;
    h.send(&url, QUOTA + 10).await;
    assert_eq!(h.take_in_flight(&url, QUOTA - 10).await, QUOTA - 10, "each receive took ten messages");
    let hidden = json!({"QueueUrl": &url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 43_200});
    let kept = handles(&h.call("ReceiveMessage", hidden.clone()).await.expect("below the quota"));
    assert_eq!(kept.len(), 10);

    let (code, message) = h.call("ReceiveMessage", hidden.clone()).await.expect_err("at the quota");
    assert_eq!(code, "OverLimit");
    assert_eq!(message, "The maximum number of in flight messages (120000) has been reached for queue busy.");

    // A long poll still gets the ten messages that are visible.
    let long = json!({"QueueUrl": &url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1, "VisibilityTimeout": 43_200});
    let past = handles(&h.call("ReceiveMessage", long).await.expect("a long poll is never OverLimit"));
    assert_eq!(past.len(), 10);

    let delete = |handle: &String| h.call("DeleteMessage", json!({"QueueUrl": &url, "ReceiptHandle": handle}));
    for handle in &past {
        delete(handle).await.unwrap();
    }
    let (code, _) = h.call("ReceiveMessage", hidden.clone()).await.expect_err("at the quota again");
    assert_eq!(code, "OverLimit");
    delete(&kept[0]).await.unwrap();
    let out = h.call("ReceiveMessage", hidden).await.expect("one below the quota");
    assert_eq!(handles(&out).len(), 0, "nothing is visible");
    let attributes = json!({"QueueUrl": &url, "AttributeNames": ["ApproximateNumberOfMessagesNotVisible"]});
    let out = h.call("GetQueueAttributes", attributes).await.unwrap();
    assert_eq!(out["Attributes"]["ApproximateNumberOfMessagesNotVisible"], (QUOTA - 1).to_string());
}

fn handles(reply: &Value) -> Vec<String> {
    let messages = reply["Messages"].as_array().map(Vec::as_slice).unwrap_or_default();
    messages.iter().map(|m| m["ReceiptHandle"].as_str().unwrap().to_owned()).collect()
}
