//! Which IAM action and resource each SNS operation is authorized as, and the topic
//! policy that may allow it. Enforced only for authenticated callers (`--auth sigv4`).

use super::{split_arn, SnsService};
use crate::iam::{self, Access, Caller, Policy, Principal};
use crate::RequestContext;
use serde_json::Value;
use sluice_engine::{QueueKey, TopicRecord};
use sluice_wire::AwsError;

/// The request fields that name the resource, in the order they are looked for.
const RESOURCE_FIELDS: &[&str] =
    &["TopicArn", "ResourceArn", "SubscriptionArn", "EndpointArn", "PlatformApplicationArn", "TargetArn"];

/// AWS answers SNS authorization failures with `AuthorizationError` (HTTP 403).
pub fn authorization_error(message: String) -> AwsError {
    AwsError::new(403, "AuthorizationErrorException", "AuthorizationError", message)
}

impl SnsService {
    /// The topic's policy: its `Policy` attribute, or AWS's default (the owner's account
    /// only) when none was set. One that does not parse grants nothing.
    pub(super) fn topic_policy(&self, topic_arn: &str) -> Option<Policy> {
        let topic = self.topics.get_topic(topic_arn)?;
        let text = topic.attributes.get("Policy").cloned().unwrap_or_else(|| Self::default_policy(&topic));
        Policy::stored(&text, topic_arn)
    }

    /// Whether the queue's policy lets SNS deliver from this topic: the service principal
    /// `sns.amazonaws.com` with `aws:SourceArn` and `aws:SourceAccount` set to the topic's.
    pub(super) fn queue_accepts(&self, queue: &QueueKey, topic: &TopicRecord) -> bool {
        let policy = self
            .queues
            .get_queue(queue)
            .ok()
            .and_then(|info| crate::sqs::access::queue_policy(&info.attributes, &queue.name));
        let sns = Caller { principal: Principal::Service("sns.amazonaws.com".into()), identity_policy: None };
        let resource = queue.arn();
        let access = Access {
            action: "sqs:SendMessage",
            resource: &resource,
            resource_owner: &queue.account,
            resource_policy: policy.as_ref(),
            context: vec![("aws:SourceArn", topic.arn.clone()), ("aws:SourceAccount", topic.account.clone())],
        };
        iam::authorize(&sns, &access).is_ok()
    }

    /// Refuses the operation unless the caller's identity policy and the topic's policy
    /// allow it. Operations that name no resource (ListTopics, CreatePlatformApplication)
    /// are authorized against `*` in the caller's account.
    pub(super) fn authorize(
        &self,
        ctx: &RequestContext,
        caller: &Caller,
        operation: &str,
        input: &Value,
    ) -> Result<(), AwsError> {
        let named = RESOURCE_FIELDS.iter().find_map(|f| input.get(*f).and_then(Value::as_str)).map(str::to_owned);
        let resource = match (operation, named) {
            (_, Some(arn)) => arn,
            ("CreateTopic", None) => {
                let name = input.get("Name").and_then(Value::as_str).unwrap_or_default();
                format!("arn:aws:sns:{}:{}:{name}", ctx.region(), ctx.account())
            }
            _ => "*".to_owned(),
        };
        let (mut owner, is_topic) = match split_arn(&resource) {
            Some((_, account, name)) => (account.to_owned(), !name.contains(':')),
            None => (ctx.account().to_owned(), false),
        };
        // A subscription belongs to the account that subscribed, which may not be the
        // topic's (a queue owner subscribing to another account's topic).
        if let Some(sub) = self.topics.get_subscription(&resource) {
            owner = sub.owner;
        }
        let policy = if is_topic && operation != "CreateTopic" { self.topic_policy(&resource) } else { None };
        let action = match operation {
            "PublishBatch" => "SNS:Publish".to_owned(),
            other => format!("SNS:{other}"),
        };
        ctx.authorize(caller, &action, &resource, &owner, policy.as_ref()).map_err(|d| authorization_error(d.message))
    }
}
