#!/usr/bin/env python3
"""Creates, idempotently, the AWS resources eda expects on the local stack, in both regions.

For each region (us-west-2 and us-east-1): the DynamoDB CDC table (key `pk`, streams with new
and old images, TTL on `_ttl`) and the table of Qlik table structures (hash key `pk`, range key
`version`) on DynamoDB Local; the EventBridge bus `eda-events` with a rule
that copies every event to the inspection queue `eda-inspect`; the dead-letter queue `eda-dlq`;
the queue `eda-owed` of cross-region events owed to the other region;
and the authorizer's HS256 secret `eda/jwt-hs256`, on the AWS stand-in (ministack). Names match config/local.toml and
deploy/docker-compose.yml.

Usage: resources.py [--dynamodb URL] [--aws URL]
"""

import argparse
import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

REGIONS = ["us-west-2", "us-east-1"]
TABLE = "eda-cdc"
METADATA_TABLE = "eda-qlik-metadata"
BUS = "eda-events"
RULE = "eda-inspect-all"
INSPECT_QUEUE = "eda-inspect"
DLQ = "eda-dlq"
OWED = "eda-owed"
SECRET_ID = "eda/jwt-hs256"
SECRET_VALUE = "local-development-hs256-secret-change-me"
ACCOUNT = "123456789012"


def client(service, region, endpoint):
    return boto3.client(service, region_name=region, endpoint_url=endpoint,
                        aws_access_key_id=ACCOUNT, aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 3}))


def ensure_table(ddb):
    try:
        ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        ddb.get_waiter("table_exists").wait(TableName=TABLE)
        created = True
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceInUseException":
            raise
        created = False
    ttl = ddb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        ddb.update_time_to_live(TableName=TABLE, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": "_ttl"})
    return created


def ensure_metadata_table(ddb):
    """The table `regions.*.metadata_table` names: one item per source table and tableVersion."""
    try:
        ddb.create_table(
            TableName=METADATA_TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "version", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "version", "AttributeType": "N"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.get_waiter("table_exists").wait(TableName=METADATA_TABLE)
        return True
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceInUseException":
            raise
        return False


def ensure_queue(sqs, name):
    return sqs.create_queue(QueueName=name)["QueueUrl"]  # idempotent with the same attributes


def ensure_bus(events, sqs, region):
    try:
        events.create_event_bus(Name=BUS)
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
    queue_url = ensure_queue(sqs, INSPECT_QUEUE)
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    # Every event on the bus carries our account: matching on it copies everything.
    events.put_rule(Name=RULE, EventBusName=BUS, State="ENABLED",
                    EventPattern=json.dumps({"account": [ACCOUNT]}))
    events.put_targets(Rule=RULE, EventBusName=BUS,
                       Targets=[{"Id": "inspect", "Arn": queue_arn}])
    return queue_url


def ensure_secret(sm):
    try:
        sm.create_secret(Name=SECRET_ID, SecretString=SECRET_VALUE)
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceExistsException":
            raise


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dynamodb", default="http://127.0.0.1:8000")
    parser.add_argument("--aws", default="http://127.0.0.1:5000",
                        help="the EventBridge/SQS/Secrets Manager endpoint")
    args = parser.parse_args()
    for region in REGIONS:
        ddb = client("dynamodb", region, args.dynamodb)
        created = ensure_table(ddb)
        metadata_created = ensure_metadata_table(ddb)
        sqs = client("sqs", region, args.aws)
        inspect_url = ensure_bus(client("events", region, args.aws), sqs, region)
        dlq_url = ensure_queue(sqs, DLQ)
        owed_url = ensure_queue(sqs, OWED)
        ensure_secret(client("secretsmanager", region, args.aws))
        print("[resources] %s: table %s (%s), table %s (%s), bus %s -> %s, dlq %s, owed %s, "
              "secret %s" % (
                  region, TABLE, "created" if created else "exists", METADATA_TABLE,
                  "created" if metadata_created else "exists", BUS, inspect_url, dlq_url,
                  owed_url, SECRET_ID))
    return 0


if __name__ == "__main__":
    sys.exit(main())
