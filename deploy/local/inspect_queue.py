"""Reads and deletes every message of an SQS queue on the local stack, counting them into a file.

Used by demo.sh to count the events one run publishes: it empties the queue first, then counts
what arrives while the demo runs. Runs until killed.
"""
import sys
import boto3

queue_name, count_file = sys.argv[1], sys.argv[2]
region = sys.argv[3] if len(sys.argv) > 3 else "us-west-2"
kw = dict(region_name=region, aws_access_key_id="123456789012", aws_secret_access_key="test")
sqs = boto3.client("sqs", endpoint_url="http://127.0.0.1:5000", **kw)
url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
try:
    sqs.purge_queue(QueueUrl=url)
except sqs.exceptions.PurgeQueueInProgress:
    pass  # purged less than a minute ago
seen = 0
with open(count_file, "w") as f:
    f.write("0")
while True:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    if not messages:
        continue
    sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
    seen += len(messages)
    with open(count_file, "w") as f:
        f.write(str(seen))
