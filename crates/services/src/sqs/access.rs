//! Which IAM action and queue each SQS operation is authorized as, and the queue policy
//! that may allow it. Enforced only for authenticated callers (`--auth sigv4`).

use super::SqsService;
use crate::iam::{Caller, Policy};
use crate::RequestContext;
use base64::Engine as _;
use serde_json::Value;
use sluice_engine::QueueKey;
use sluice_wire::AwsError;

/// Operations a queue policy cannot grant to another account (AWS's "cross-account
/// permissions don't apply to the following actions" list in the SQS developer guide).
const OWNER_ONLY: &[&str] = &[
    "AddPermission",
    "CancelMessageMoveTask",
    "CreateQueue",
    "DeleteQueue",
    "ListMessageMoveTasks",
    "ListQueues",
    "ListQueueTags",
    "RemovePermission",
    "SetQueueAttributes",
    "StartMessageMoveTask",
    "TagQueue",
    "UntagQueue",
];

/// Batch operations are authorized as their single-message action.
fn iam_action(operation: &str) -> String {
    let base = match operation {
        "SendMessageBatch" => "SendMessage",
        "DeleteMessageBatch" => "DeleteMessage",
        "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
        other => other,
    };
    format!("sqs:{base}")
}

/// AWS answers SQS authorization failures with `AccessDenied` (HTTP 403).
pub fn access_denied(message: String) -> AwsError {
    AwsError::new(403, "AccessDeniedException", "AccessDenied", message)
}

/// The queue's policy, if it has one that parses.
pub fn queue_policy(attributes: &sluice_engine::Attributes, queue: &str) -> Option<Policy> {
    Policy::stored(attributes.get("Policy").filter(|p| !p.is_empty())?, queue)
}

impl SqsService {
    /// The queue an operation acts on; `None` for ListQueues, which names none.
    fn target(&self, ctx: &RequestContext, operation: &str, input: &Value) -> Result<Option<QueueKey>, AwsError> {
        let field = |name: &str| input.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(match operation {
            "ListQueues" => None,
            "CreateQueue" => Some(QueueKey {
                account: ctx.account().to_owned(),
                region: ctx.region().to_owned(),
                name: field("QueueName").unwrap_or_default(),
            }),
            "GetQueueUrl" => Some(QueueKey {
                account: field("QueueOwnerAWSAccountId").unwrap_or_else(|| ctx.account().to_owned()),
                region: ctx.region().to_owned(),
                name: field("QueueName").unwrap_or_default(),
            }),
            "StartMessageMoveTask" | "ListMessageMoveTasks" => {
                Some(Self::key_from_arn(&field("SourceArn").unwrap_or_default(), "SourceArn")?)
            }
            // The handle carries its source queue's ARN; an unreadable one is the
            // operation's own error to report, against the caller's account.
            "CancelMessageMoveTask" => field("TaskHandle")
                .and_then(|h| base64::engine::general_purpose::STANDARD.decode(h).ok())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v.get("sourceArn").and_then(Value::as_str).and_then(QueueKey::from_arn)),
            _ => Some(self.queue_key(ctx, &field("QueueUrl"))?),
        })
    }

    /// Refuses the operation unless the caller's identity policy and the queue's policy
    /// allow it. A queue that does not exist has no policy: its owner passes (and gets
    /// QueueDoesNotExist from the operation), other accounts are refused.
    pub(super) fn authorize(
        &self,
        ctx: &RequestContext,
        caller: &Caller,
        operation: &str,
        input: &Value,
    ) -> Result<(), AwsError> {
        let target = self.target(ctx, operation, input)?;
        let (resource, owner) = match &target {
            Some(key) => (key.arn(), key.account.clone()),
            None => ("*".to_owned(), ctx.account().to_owned()),
        };
        let policy = match &target {
            Some(key) if !OWNER_ONLY.contains(&operation) => {
                self.store.get_queue(key).ok().and_then(|info| queue_policy(&info.attributes, &key.name))
            }
            _ => None,
        };
        ctx.authorize(caller, &iam_action(operation), &resource, &owner, policy.as_ref())
            .map_err(|d| access_denied(d.message))
    }
}
