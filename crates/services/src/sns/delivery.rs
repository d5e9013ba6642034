//! HTTP/S delivery: the outbox worker, AWS's retry policy, and the subscription's
//! dead-letter queue once retries are exhausted.

use super::{SnsService, DEFAULT_DELIVERY_POLICY};
use serde_json::Value;
use sluice_engine::{NewMessage, OutboxEntry, QueueKey};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The status code and body of an HTTP response, or why there was none.
pub type HttpResult = Result<(u16, Vec<u8>), String>;

/// Sends one HTTP POST.
pub trait HttpPost: Send + Sync {
    fn post<'a>(
        &'a self,
        url: &'a str,
        headers: &'a [(String, String)],
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = HttpResult> + Send + 'a>>;
}

/// AWS's `healthyRetryPolicy`: an immediate phase, a pre-backoff phase at the minimum
/// delay, a backoff phase from the minimum to the maximum delay, and a post-backoff
/// phase at the maximum; `numRetries` is the total.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub min_delay_s: u64,
    pub max_delay_s: u64,
    pub num_retries: u32,
    pub num_no_delay: u32,
    pub num_min_delay: u32,
    pub num_max_delay: u32,
    pub backoff: String,
}

impl RetryPolicy {
    fn from_json(v: &Value) -> Option<RetryPolicy> {
        let n = |k: &str, d: u64| v.get(k).and_then(Value::as_u64).unwrap_or(d);
        Some(RetryPolicy {
            min_delay_s: n("minDelayTarget", 20),
            max_delay_s: n("maxDelayTarget", 20),
            num_retries: n("numRetries", 3) as u32,
            num_no_delay: n("numNoDelayRetries", 0) as u32,
            num_min_delay: n("numMinDelayRetries", 0) as u32,
            num_max_delay: n("numMaxDelayRetries", 0) as u32,
            backoff: v.get("backoffFunction").and_then(Value::as_str).unwrap_or("linear").to_owned(),
        })
    }

    /// The effective policy: the subscription's `healthyRetryPolicy` unless the topic
    /// disables overrides, else the topic's `http.defaultHealthyRetryPolicy`, else AWS's default.
    pub fn effective(topic_policy: Option<&str>, subscription_policy: Option<&str>) -> RetryPolicy {
        let parse = |s: Option<&str>| s.and_then(|t| serde_json::from_str::<Value>(t).ok());
        let topic =
            parse(topic_policy).unwrap_or_else(|| serde_json::from_str(DEFAULT_DELIVERY_POLICY).unwrap_or(Value::Null));
        let http = topic.get("http").cloned().unwrap_or(Value::Null);
        let overrides_allowed = !http.get("disableSubscriptionOverrides").and_then(Value::as_bool).unwrap_or(false);
        if overrides_allowed {
            if let Some(p) =
                parse(subscription_policy).and_then(|s| s.get("healthyRetryPolicy").and_then(RetryPolicy::from_json))
            {
                return p;
            }
        }
        http.get("defaultHealthyRetryPolicy").and_then(RetryPolicy::from_json).unwrap_or_else(|| RetryPolicy {
            min_delay_s: 20,
            max_delay_s: 20,
            num_retries: 3,
            num_no_delay: 0,
            num_min_delay: 0,
            num_max_delay: 0,
            backoff: "linear".into(),
        })
    }

    /// `maxReceivesPerSecond` of the effective throttle policy: the subscription's
    /// `throttlePolicy` unless overrides are disabled, else the topic's
    /// `http.defaultThrottlePolicy`; `None` means unthrottled.
    pub fn max_receives_per_second(topic_policy: Option<&str>, subscription_policy: Option<&str>) -> Option<u64> {
        let parse = |s: Option<&str>| s.and_then(|t| serde_json::from_str::<Value>(t).ok());
        let topic = parse(topic_policy).unwrap_or(Value::Null);
        let http = topic.get("http").cloned().unwrap_or(Value::Null);
        let overrides_allowed = !http.get("disableSubscriptionOverrides").and_then(Value::as_bool).unwrap_or(false);
        let from =
            |v: &Value, key: &str| v.get(key).and_then(|t| t.get("maxReceivesPerSecond")).and_then(Value::as_u64);
        let sub = parse(subscription_policy).unwrap_or(Value::Null);
        overrides_allowed
            .then(|| from(&sub, "throttlePolicy"))
            .flatten()
            .or_else(|| from(&http, "defaultThrottlePolicy"))
    }

    /// Delay before retry number `retry` (1-based), or `None` when retries are exhausted.
    pub fn delay_s(&self, retry: u32) -> Option<u64> {
        if retry > self.num_retries {
            return None;
        }
        if retry <= self.num_no_delay {
            return Some(0);
        }
        if retry <= self.num_no_delay + self.num_min_delay {
            return Some(self.min_delay_s);
        }
        let backoff_count =
            self.num_retries.saturating_sub(self.num_no_delay + self.num_min_delay + self.num_max_delay);
        let i = retry - self.num_no_delay - self.num_min_delay;
        if i > backoff_count {
            return Some(self.max_delay_s);
        }
        let (lo, hi) = (self.min_delay_s as f64, self.max_delay_s as f64);
        let t = if backoff_count <= 1 { 1.0 } else { (i - 1) as f64 / (backoff_count - 1) as f64 };
        let d = match self.backoff.as_str() {
            "arithmetic" => lo + (hi - lo) * t * t,
            "geometric" => lo + (hi - lo) * t.sqrt(),
            "exponential" => lo * (hi / lo.max(1.0)).powf(t),
            _ => lo + (hi - lo) * t,
        };
        Some(d.round().clamp(lo, hi) as u64)
    }
}

/// Delivers due HTTP/S outbox entries until shutdown; each entry is independent, so a
/// slow endpoint never holds back another.
pub async fn run(sns: Arc<SnsService>, http: Arc<dyn HttpPost>, mut shutdown: watch::Receiver<bool>) {
    let in_progress: Arc<std::sync::Mutex<std::collections::HashSet<i64>>> = Arc::default();
    // Sends started per subscription in the current one-second window (throttlePolicy).
    let mut window_start = 0u64;
    let mut sent_in_window: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    loop {
        let now = sns.clock().now_ms();
        let mut next_due: Option<u64> = None;
        if now >= window_start + 1000 {
            window_start = now;
            sent_in_window.clear();
        }
        for entry in sns.topic_store().outbox() {
            if !matches!(entry.protocol.as_str(), "http" | "https") {
                continue;
            }
            if entry.next_attempt_ms > now {
                next_due = Some(next_due.map_or(entry.next_attempt_ms, |d: u64| d.min(entry.next_attempt_ms)));
                continue;
            }
            if in_progress.lock().unwrap_or_else(|p| p.into_inner()).contains(&entry.id) {
                continue;
            }
            let sub = sns.topic_store().get_subscription(&entry.subscription_arn);
            let limit = sub.as_ref().and_then(|s| {
                let topic = sns.topic_store().get_topic(&s.topic_arn);
                RetryPolicy::max_receives_per_second(
                    topic.as_ref().and_then(|t| t.attributes.get("DeliveryPolicy")).map(String::as_str),
                    s.attributes.get("DeliveryPolicy").map(String::as_str),
                )
            });
            let sent = sent_in_window.entry(entry.subscription_arn.clone()).or_default();
            if limit.is_some_and(|l| *sent >= l) {
                let next_window = window_start + 1000;
                next_due = Some(next_due.map_or(next_window, |d: u64| d.min(next_window)));
                continue;
            }
            *sent += 1;
            if !in_progress.lock().unwrap_or_else(|p| p.into_inner()).insert(entry.id) {
                continue;
            }
            let (sns, http, in_progress) = (sns.clone(), http.clone(), in_progress.clone());
            tokio::spawn(async move {
                let id = entry.id;
                attempt(&sns, http.as_ref(), entry).await;
                in_progress.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                sns.outbox_changed.notify_one();
            });
        }
        let wait = next_due.map(|d| Duration::from_millis(d.saturating_sub(now))).unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = sns.outbox_changed.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn attempt(sns: &SnsService, http: &dyn HttpPost, mut entry: OutboxEntry) {
    let result = http.post(&entry.endpoint, &entry.headers, entry.body.as_bytes()).await;
    let delivered = matches!(result, Ok((status, _)) if (200..300).contains(&status));
    if delivered {
        if let Ok(d) = sns.topic_store().remove_outbox(entry.id) {
            let _ = d.wait().await;
        }
        return;
    }
    tracing::debug!(endpoint = %entry.endpoint, result = ?result, attempt = entry.attempts + 1, "HTTP delivery failed");
    let sub = sns.topic_store().get_subscription(&entry.subscription_arn);
    let topic = sub.as_ref().and_then(|s| sns.topic_store().get_topic(&s.topic_arn));
    let policy = RetryPolicy::effective(
        topic.as_ref().and_then(|t| t.attributes.get("DeliveryPolicy")).map(String::as_str),
        sub.as_ref().and_then(|s| s.attributes.get("DeliveryPolicy")).map(String::as_str),
    );
    entry.attempts += 1;
    let is_notification = entry.headers.iter().any(|(k, v)| k == "x-amz-sns-message-type" && v == "Notification");
    match policy.delay_s(entry.attempts).filter(|_| sub.is_some()) {
        Some(delay) => {
            entry.next_attempt_ms = sns.clock().now_ms() + delay * 1000;
            if let Ok(d) = sns.topic_store().update_outbox(entry) {
                let _ = d.wait().await;
            }
        }
        None => {
            // Retries exhausted: to the subscription's dead-letter queue, if it has one.
            let dlq = sub
                .as_ref()
                .and_then(|s| s.attributes.get("RedrivePolicy"))
                .and_then(|p| serde_json::from_str::<Value>(p).ok())
                .and_then(|p| p.get("deadLetterTargetArn").and_then(Value::as_str).and_then(QueueKey::from_arn));
            if let (Some(queue), true) = (dlq, is_notification) {
                let message = NewMessage {
                    body: entry.body.clone(),
                    sender_id: "AIDAIT2UOQQY3AUEKVGXU".into(),
                    ..Default::default()
                };
                match sns.queue_store().send_messages(&queue, vec![message]) {
                    Ok(d) => {
                        let _ = d.wait().await;
                    }
                    Err(e) => tracing::warn!(error = %e, "SNS dead-letter queue delivery failed"),
                }
            }
            if let Ok(d) = sns.topic_store().remove_outbox(entry.id) {
                let _ = d.wait().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_three_retries_twenty_seconds_apart() {
        let p = RetryPolicy::effective(None, None);
        assert_eq!((p.delay_s(1), p.delay_s(3), p.delay_s(4)), (Some(20), Some(20), None));
    }

    #[test]
    fn throttle_policy_comes_from_the_subscription_unless_overrides_are_disabled() {
        let sub = r#"{"throttlePolicy":{"maxReceivesPerSecond":3}}"#;
        assert_eq!(RetryPolicy::max_receives_per_second(None, Some(sub)), Some(3));
        assert_eq!(RetryPolicy::max_receives_per_second(None, None), None);
        let topic =
            r#"{"http":{"disableSubscriptionOverrides":true,"defaultThrottlePolicy":{"maxReceivesPerSecond":1}}}"#;
        assert_eq!(RetryPolicy::max_receives_per_second(Some(topic), Some(sub)), Some(1));
    }

    #[test]
    fn phases_and_backoff_functions() {
        let sub = r#"{"healthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":9,"numRetries":7,"numNoDelayRetries":1,"numMinDelayRetries":1,"numMaxDelayRetries":1,"backoffFunction":"linear"}}"#;
        let p = RetryPolicy::effective(None, Some(sub));
        let delays: Vec<Option<u64>> = (1..=8).map(|i| p.delay_s(i)).collect();
        assert_eq!(delays, vec![Some(0), Some(1), Some(1), Some(4), Some(6), Some(9), Some(9), None]);
        let topic = r#"{"http":{"disableSubscriptionOverrides":true,"defaultHealthyRetryPolicy":{"minDelayTarget":2,"maxDelayTarget":2,"numRetries":1}}}"#;
        let p = RetryPolicy::effective(Some(topic), Some(sub));
        assert_eq!((p.delay_s(1), p.delay_s(2)), (Some(2), None), "the topic can forbid subscription overrides");
    }
}
