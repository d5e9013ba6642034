#!/usr/bin/env bash
# Common SQS flows through the AWS CLI (which verifies MD5s of what it sends and
# receives). Usage: SLUICE_ENDPOINT=http://127.0.0.1:4566 bash tests/compat/awscli_sqs.sh
set -euo pipefail
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-AKIDEXAMPLE} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-secret}
export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER=""
sqs() { aws --endpoint-url "$SLUICE_ENDPOINT" sqs "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

url=$(sqs create-queue --queue-name cli-queue --attributes VisibilityTimeout=7 --query QueueUrl --output text)
[[ "$url" == */000000000000/cli-queue ]] || fail "queue url $url"
[[ $(sqs get-queue-url --queue-name cli-queue --query QueueUrl --output text) == "$url" ]] || fail "get-queue-url"
sqs send-message --queue-url "$url" --message-body "from the cli" \
  --message-attributes '{"color":{"DataType":"String","StringValue":"red"}}' > /dev/null
sqs send-message-batch --queue-url "$url" \
  --entries '[{"Id":"a","MessageBody":"one"},{"Id":"b","MessageBody":"two","DelaySeconds":0}]' > /dev/null
count=$(sqs get-queue-attributes --queue-url "$url" --attribute-names ApproximateNumberOfMessages \
  --query Attributes.ApproximateNumberOfMessages --output text)
[[ "$count" == 3 ]] || fail "expected 3 messages, got $count"
handles=$(sqs receive-message --queue-url "$url" --max-number-of-messages 10 --message-attribute-names All \
  --query 'Messages[].ReceiptHandle' --output text)
[[ $(wc -w <<<"$handles") == 3 ]] || fail "received $(wc -w <<<"$handles")"
for h in $handles; do sqs delete-message --queue-url "$url" --receipt-handle "$h"; done
[[ $(sqs get-queue-attributes --queue-url "$url" --attribute-names All \
  --query Attributes.ApproximateNumberOfMessagesNotVisible --output text) == 0 ]] || fail "not all deleted"
sqs tag-queue --queue-url "$url" --tags env=ci
[[ $(sqs list-queue-tags --queue-url "$url" --query Tags.env --output text) == ci ]] || fail "tags"
fifo=$(sqs create-queue --queue-name cli.fifo --attributes FifoQueue=true,ContentBasedDeduplication=true --query QueueUrl --output text)
sqs send-message --queue-url "$fifo" --message-body first --message-group-id g > /dev/null
sqs send-message --queue-url "$fifo" --message-body second --message-group-id g > /dev/null
[[ $(sqs receive-message --queue-url "$fifo" --max-number-of-messages 10 --query 'Messages[].Body' --output text) == $'first\tsecond' ]] || fail "fifo order"
if sqs get-queue-url --queue-name missing 2> /tmp/sluice-cli-err; then fail "missing queue found"; fi
grep -q "AWS.SimpleQueueService.NonExistentQueue" /tmp/sluice-cli-err || fail "error code: $(cat /tmp/sluice-cli-err)"
sqs delete-queue --queue-url "$url"
echo "AWS CLI SQS compatibility: all flows passed"
