#!/usr/bin/env python3
"""compose/aws_init.py: the compose file's "aws-init" service (profile aws). Against the local
moto server it creates what cloudformation/dicom-gateway.yaml would create in AWS, with the
names compose/config/core-aws.json uses:
  - the S3 bucket and the DynamoDB table (shape from forwarder/schema/dynamodb-table.json, else
    the template's Table resource);
  - the HealthImaging data access role (the template's policy for it);
  - an IAM user for the core whose only policy is the template's task role policy, rendered by
    tests/support/task_policy.py, and its access key, written as KEY=VALUE lines to --out (the
    core's GW_ENV_FILE) and as {"keys": [...]} to emulator-creds.json beside it.
Idempotent: what exists already is kept. Interpreter: python3 with boto3 and PyYAML.
"""
import argparse
import json
import os
import sys
import time
import urllib.request

import boto3

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import task_policy  # noqa: E402

ACCOUNT = "123456789012"
BUCKET = "dicom-gateway-local"
TABLE = "dicom-gateway-local"
DATASTORE_ID = "00000000000000000000000000000001"
ROLE = "dicom-gateway-local-data-access"
USER = "dicom-core-local"


def table_spec():
    path = os.path.join(ROOT, "forwarder", "schema", "dynamodb-table.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    else:
        props = task_policy.load_template(task_policy.DEFAULT_TEMPLATE)["Resources"]["Table"][
            "Properties"]
        spec = {k: props[k] for k in ("AttributeDefinitions", "KeySchema",
                                      "GlobalSecondaryIndexes", "BillingMode")}
    keep = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")
    return {k: v for k, v in spec.items() if k in keep}


def ttl_attribute():
    path = os.path.join(ROOT, "forwarder", "schema", "dynamodb-table.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("_ttl", {}).get("AttributeName", "ttl")
    return "ttl"


def wait(endpoint):
    for _ in range(120):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    sys.exit("aws-init: moto at %s does not answer" % endpoint)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    wait(a.endpoint)
    kw = {"endpoint_url": a.endpoint, "region_name": a.region}
    s3, ddb, iam = (boto3.client(n, **kw) for n in ("s3", "dynamodb", "iam"))

    if BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=BUCKET)
    if TABLE not in ddb.list_tables()["TableNames"]:
        ddb.create_table(TableName=TABLE, **table_spec())
        ddb.update_time_to_live(TableName=TABLE, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": ttl_attribute()})

    role_arn = "arn:aws:iam::%s:role/%s" % (ACCOUNT, ROLE)
    if ROLE not in [r["RoleName"] for r in iam.list_roles()["Roles"]]:
        iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "medical-imaging.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}))
        iam.put_role_policy(RoleName=ROLE, PolicyName="import-data-access",
                            PolicyDocument=json.dumps(task_policy.render(
                                BUCKET, TABLE, DATASTORE_ID, role_arn, a.region, ACCOUNT,
                                role="data-access")))

    if os.path.exists(a.out):
        print("aws-init: %s exists; keeping it" % a.out)
        return 0
    if USER not in [u["UserName"] for u in iam.list_users()["Users"]]:
        iam.create_user(UserName=USER)
        iam.put_user_policy(UserName=USER, PolicyName="dicom-core-task-role",
                            PolicyDocument=json.dumps(task_policy.render(
                                BUCKET, TABLE, DATASTORE_ID, role_arn, a.region, ACCOUNT,
                                moto=True)))
    key = iam.create_access_key(UserName=USER)["AccessKey"]
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n"
                % (key["AccessKeyId"], key["SecretAccessKey"]))
    os.chmod(tmp, 0o640)
    creds = os.path.join(os.path.dirname(a.out), "emulator-creds.json")
    with open(creds, "w", encoding="utf-8") as f:
        json.dump({"keys": [{"AccessKeyId": key["AccessKeyId"],
                             "SecretAccessKey": key["SecretAccessKey"], "UserName": USER}]}, f)
    os.replace(tmp, a.out)
    print("aws-init: bucket %s, table %s, role %s, user %s ready" % (BUCKET, TABLE, ROLE, USER))
    return 0


if __name__ == "__main__":
    sys.exit(main())
