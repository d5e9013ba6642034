#!/usr/bin/env bash
# SNS through the AWS CLI: a topic fanning out to an SQS queue with a filter policy.
# Usage: SLUICE_ENDPOINT=http://127.0.0.1:4566 bash tests/compat/awscli_sns.sh
set -euo pipefail
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-AKIDEXAMPLE} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-secret}
export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER=""
aws_() { aws --endpoint-url "$SLUICE_ENDPOINT" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

topic=$(aws_ sns create-topic --name cli-topic --query TopicArn --output text)
[[ "$topic" == arn:aws:sns:us-east-1:000000000000:cli-topic ]] || fail "topic arn $topic"
url=$(aws_ sqs create-queue --queue-name cli-sink --query QueueUrl --output text)
sub=$(aws_ sns subscribe --topic-arn "$topic" --protocol sqs \
  --notification-endpoint arn:aws:sqs:us-east-1:000000000000:cli-sink \
  --attributes '{"RawMessageDelivery":"true","FilterPolicy":"{\"kind\":[\"keep\"]}"}' --query SubscriptionArn --output text)
[[ "$sub" == "$topic":* ]] || fail "subscription arn $sub"
aws_ sns publish --topic-arn "$topic" --message dropped \
  --message-attributes '{"kind":{"DataType":"String","StringValue":"drop"}}' > /dev/null
aws_ sns publish --topic-arn "$topic" --message kept \
  --message-attributes '{"kind":{"DataType":"String","StringValue":"keep"}}' > /dev/null
body=$(aws_ sqs receive-message --queue-url "$url" --max-number-of-messages 10 --query 'Messages[].Body' --output text)
[[ "$body" == kept ]] || fail "filtered delivery got: $body"
[[ $(aws_ sns list-subscriptions-by-topic --topic-arn "$topic" --query 'length(Subscriptions)') == 1 ]] || fail "subscriptions"
aws_ sns set-topic-attributes --topic-arn "$topic" --attribute-name DisplayName --attribute-value Orders
[[ $(aws_ sns get-topic-attributes --topic-arn "$topic" --query Attributes.DisplayName --output text) == Orders ]] || fail "attributes"
if aws_ sns publish --topic-arn "${topic}-missing" --message x 2> /tmp/sluice-cli-sns-err; then fail "missing topic"; fi
grep -q "NotFound" /tmp/sluice-cli-sns-err || fail "error: $(cat /tmp/sluice-cli-sns-err)"
aws_ sns unsubscribe --subscription-arn "$sub"
aws_ sns delete-topic --topic-arn "$topic"
[[ $(aws_ sns list-topics --query 'length(Topics)') == 0 ]] || fail "topic not deleted"
echo "AWS CLI SNS compatibility: all flows passed"
