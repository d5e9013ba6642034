//! Which IAM action and resource each Kinesis operation is authorized as, and the stream
//! or consumer resource policy that may allow it. Enforced only for authenticated callers
//! (`--auth sigv4`).

use super::{err, iterator::IteratorToken, KinesisService, Request};
use crate::iam::{Caller, Policy};
use crate::RequestContext;
use sluice_engine::streams::StreamKey;
use sluice_wire::AwsError;

/// Operations a resource policy cannot grant to another account: the policy operations
/// themselves need the owner's account (PutResourcePolicy's documentation), and the
/// stream's lifecycle and configuration stay with its owner.
const OWNER_ONLY: &[&str] = &[
    "CreateStream",
    "DeleteStream",
    "PutResourcePolicy",
    "GetResourcePolicy",
    "DeleteResourcePolicy",
    "StartStreamEncryption",
    "StopStreamEncryption",
    "UpdateShardCount",
    "SplitShard",
    "MergeShards",
    "UpdateStreamMode",
    "IncreaseStreamRetentionPeriod",
    "DecreaseStreamRetentionPeriod",
];

/// Kinesis's AccessDeniedException carries the common-errors status, 400.
pub fn access_denied(message: String) -> AwsError {
    err("AccessDeniedException", message)
}

impl KinesisService {
    /// The ARN an operation acts on and the stream it belongs to; `None` for account-wide
    /// operations (ListStreams, DescribeLimits).
    fn target(&self, ctx: &RequestContext, req: &Request) -> Option<(String, StreamKey)> {
        let from_arn = |arn: &String| StreamKey::from_arn(arn).map(|k| (arn.clone(), k));
        if let Some(t) = req.consumer_arn.as_ref().and_then(from_arn) {
            return Some(t);
        }
        if let Some(t) = req.resource_arn.as_ref().and_then(from_arn) {
            return Some(t);
        }
        if let Some(arn) = &req.stream_arn {
            return from_arn(arn);
        }
        if let Some(name) = &req.stream_name {
            let key =
                StreamKey { account: ctx.account().to_owned(), region: ctx.region().to_owned(), name: name.clone() };
            return Some((key.arn(), key));
        }
        let secret = self.store.iterator_secret().ok()?;
        let token = IteratorToken::decode(req.shard_iterator.as_deref()?, &secret)?;
        let meta = self.store.stream_by_id(token.stream_id)?;
        Some((meta.arn(), meta.key()))
    }

    /// Refuses the operation unless the caller's identity policy and the stream's (or
    /// consumer's) resource policy allow it.
    pub(super) fn authorize(
        &self,
        ctx: &RequestContext,
        caller: &Caller,
        operation: &str,
        req: &Request,
    ) -> Result<(), AwsError> {
        let target = self.target(ctx, req);
        let (resource, owner) = match &target {
            Some((arn, key)) => (arn.clone(), key.account.clone()),
            None => ("*".to_owned(), ctx.account().to_owned()),
        };
        let policy = match &target {
            Some((arn, key)) if !OWNER_ONLY.contains(&operation) => self.store.stream(key).and_then(|meta| {
                let text = if arn.contains("/consumer/") {
                    meta.consumer_policies.get(arn).cloned()
                } else {
                    meta.resource_policy.clone()
                };
                Policy::stored(&text?, arn)
            }),
            _ => None,
        };
        let action = match operation {
            "AddTagsToStream" | "TagResource" => "kinesis:AddTagsToStream".to_owned(),
            "RemoveTagsFromStream" | "UntagResource" => "kinesis:RemoveTagsFromStream".to_owned(),
            other => format!("kinesis:{other}"),
        };
        ctx.authorize(caller, &action, &resource, &owner, policy.as_ref()).map_err(|d| access_denied(d.message))
    }
}
