#!/usr/bin/env python3
"""Test AWS environment on loopback (pyenv python3: moto 5, boto3, botocore).

  aws_env.py start --dir DIR [--policy FILE] [--no-auth-count N] [--region R] [--bucket B]
                   [--table T] [--datastore-id ID] [--job-delay S] [--hi-start-tps X]
                   [--creds-expiry S] [--kms-key-arn ARN] [--drop-action ACTION]...
  aws_env.py stop --dir DIR

start:
  1. moto_server (S3, DynamoDB, IAM, STS) on a free 127.0.0.1 port. It runs with IAM checks
     off while this script creates the resources, then POST /moto-api/reset-auth sets
     INITIAL_NO_AUTH_ACTION_COUNT to N (default 0): after N more requests (from anyone, the
     emulator included) every request must carry a valid SigV4 signature of a known key and be
     allowed by that key's IAM policies. Fidelity patches are applied inside the moto
     process (run_moto below; docs/testing-aws.md): DynamoDB requests are authorized against
     the table (or table/index) ARN they name, as AWS does, instead of moto's "*" (which no
     least-privilege policy can allow); query strings are canonicalised as AWS does when the
     signature is checked; DynamoDB auth failures answer 400 JSON as DynamoDB does. Two more
     serve the emulator's STS shim: an assumed role's expiry is published in data.json, and
     the user "hi-emulator" (the shim, which has checked the trust policy itself) is not
     checked against role trust policies.
  2. IAM: user "dicom-core" with the task policy inline and an access key (the test's
     credentials); user "test-admin" allowed everything (ADMIN_ACCESS_KEY_ID, for a test's own
     checks such as listing the bucket or scanning the table, never for the code under
     test); role "dicom-core-task" with the same policy, assumed twice for temporary
     credentials (served in turn by metadata_server.py as ECS/IMDS credentials); the
     HealthImaging data access role ROLE_ARN; user "hi-emulator" for the emulator itself
     (reads IAM, assumes ROLE_ARN); the HealthImaging reader role READER_ROLE_ARN
     ("dicom-core-hi-reader": the DICOMweb read actions on the data store, task_policy.py's
     render(role="reader") or the built-in list; trusted by the user dicom-core, the role
     dicom-core-task and test-admin), which the task policy may sts:AssumeRole. The task policy: --policy FILE if given; else
     tests/support/task_policy.py's render(role="task") when that file exists (deploy's renderer of the CloudFormation task
     role policy); else the built-in policy below, written from CONTRACTS.md. --drop-action
     removes an action from it (to show a test fails without it). The data access role's
     policy: task_policy.py's render(role="data-access"), else s3:GetObject + s3:ListBucket on
     the input and s3:PutObject on the output prefix. Sources are printed and exported
     (POLICY_SOURCE, DATA_ACCESS_POLICY_SOURCE); DIR/policy.json holds the task policy.
  3. The bucket, and the DynamoDB table from forwarder/schema/dynamodb-table.json when present
     (else built from CONTRACTS.md; TABLE_SCHEMA_SOURCE says which).
  4. hi_emulator.py (THE HealthImaging EMULATOR, not AWS) and metadata_server.py, each on a
     free port. The emulator keeps the instances it receives under DIR/hi-data and serves
     sts:AssumeRole on its port (STS_ENDPOINT) with the checks moto's STS leaves out.
  5. DIR/env.sh (source it), DIR/env.json (same values), DIR/pids (one PID per line), DIR/*.log.
Every server also exits by itself once DIR is gone or after --max-lifetime seconds (default
3600), so a test killed before its trap runs leaves nothing behind for long.
stop: sends SIGTERM (then SIGKILL after 3 s) to exactly the PIDs in DIR/pids, after checking
  each still runs a command line that names DIR (so a recycled PID is never touched).
"""

import argparse
import inspect
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
ACCOUNT = "123456789012"  # moto's default account
READY_TIMEOUT = 30.0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


READER_ROLE = "dicom-core-hi-reader"
READ_ACTIONS = ["SearchDICOMStudies", "SearchDICOMSeries", "SearchDICOMInstances",
                "GetDICOMInstance", "GetDICOMInstanceMetadata", "GetDICOMInstanceFrames",
                "GetDICOMSeriesMetadata", "GetDICOMBulkdata"]


def builtin_policy(bucket, table, datastore_id, role_arn, region, account, kms_key_arn=None):
    """The core task role's least-privilege policy exactly as CONTRACTS.md lists it."""
    st = [
        {"Sid": "S3Objects", "Effect": "Allow",
         "Action": ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
         "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Sid": "DynamoDB", "Effect": "Allow",
         "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem",
                    "dynamodb:Query"],
         "Resource": [f"arn:aws:dynamodb:{region}:{account}:table/{table}",
                      f"arn:aws:dynamodb:{region}:{account}:table/{table}/index/*"]},
        {"Sid": "HealthImaging", "Effect": "Allow",
         "Action": ["medical-imaging:StartDICOMImportJob", "medical-imaging:GetDICOMImportJob",
                    "medical-imaging:StoreDICOM"],
         "Resource": f"arn:aws:medical-imaging:{region}:{account}:datastore/{datastore_id}"},
        {"Sid": "PassDataAccessRole", "Effect": "Allow", "Action": "iam:PassRole",
         "Resource": role_arn,
         "Condition": {"StringEquals": {"iam:PassedToService": "medical-imaging.amazonaws.com"}}},
        {"Sid": "AssumeReader", "Effect": "Allow", "Action": "sts:AssumeRole",
         "Resource": f"arn:aws:iam::{account}:role/{READER_ROLE}"},
    ]
    if kms_key_arn:
        st.append({"Sid": "Kms", "Effect": "Allow",
                   "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": kms_key_arn})
    return {"Version": "2012-10-17", "Statement": st}


def data_access_policy(bucket, input_prefix, output_prefix):
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/{input_prefix}/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"},
        {"Effect": "Allow", "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{bucket}/{output_prefix}/*"},
    ]}


def _render(a, role_arn, role):
    """tests/support/task_policy.py's render() for role "task" or "data-access" -> dict."""
    sys.path.insert(0, HERE)
    try:
        import task_policy as tpm
    finally:
        sys.path.pop(0)
    values = {"bucket": a.bucket, "table": a.table, "datastore_id": a.datastore_id,
              "role_arn": role_arn, "region": a.region, "account": ACCOUNT,
              "kms_key_arn": a.kms_key_arn, "role": role,
              "reader_role_arn": f"arn:aws:iam::{ACCOUNT}:role/{READER_ROLE}",
              "drop_actions": tuple(a.drop_action) if role == "task" else ()}
    params = inspect.signature(tpm.render).parameters
    doc = tpm.render(**{k: v for k, v in values.items() if k in params})
    return json.loads(doc) if isinstance(doc, str) else doc


def task_policy(a, role_arn):
    """-> (policy dict, source description)."""
    if a.policy:
        with open(a.policy) as f:
            return json.load(f), f"file {a.policy}"
    if not os.path.exists(os.path.join(HERE, "task_policy.py")):
        doc = builtin_policy(a.bucket, a.table, a.datastore_id, role_arn, a.region, ACCOUNT,
                             a.kms_key_arn)
        drop = set(a.drop_action)
        for st in doc["Statement"]:
            acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            st["Action"] = [x for x in acts if x not in drop]
        doc["Statement"] = [st for st in doc["Statement"] if st["Action"]]
        return doc, "built-in policy from CONTRACTS.md (tests/support/task_policy.py not present)"
    return _render(a, role_arn, "task"), "tests/support/task_policy.py render(role=task)"


def data_access_role_policy(a, role_arn):
    """The data access role's policy: the template's when task_policy.py renders it, else the
    built-in one. (moto ignores Conditions in identity policies: the template's s3:prefix
    condition on ListBucket is not enforced here; the emulator only lists inputS3Uri anyway.)"""
    if not os.path.exists(os.path.join(HERE, "task_policy.py")):
        return data_access_policy(a.bucket, a.prefix, a.output_prefix), "built-in from CONTRACTS.md"
    return _render(a, role_arn, "data-access"), \
        "tests/support/task_policy.py render(role=data-access)"


def reader_role_policy(a):
    """The reader role's policy: the template's when task_policy.py renders it, else the read
    actions on the data store."""
    if os.path.exists(os.path.join(HERE, "task_policy.py")):
        try:
            return _render(a, f"arn:aws:iam::{ACCOUNT}:role/HealthImagingDataAccess",
                           "reader"), "tests/support/task_policy.py render(role=reader)"
        except Exception as e:  # noqa: BLE001 - an older renderer without the reader role
            if "role must be one of" not in str(e):
                raise
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": [f"medical-imaging:{x}" for x in READ_ACTIONS],
        "Resource": f"arn:aws:medical-imaging:{a.region}:{ACCOUNT}:datastore/{a.datastore_id}"}]}, \
        "built-in"


def table_params(table):
    """CreateTable parameters -> (create kwargs, ttl attribute or None, pitr bool, source)."""
    path = os.path.join(SRC, "forwarder", "schema", "dynamodb-table.json")
    if os.path.exists(path):
        with open(path) as f:
            doc = json.load(f)
        for wrap in ("Table", "Properties", "CreateTable"):
            if isinstance(doc.get(wrap), dict):
                doc = doc[wrap]
        source = "forwarder/schema/dynamodb-table.json"
    else:
        doc = {
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "S"},
                                     {"AttributeName": "study_uid", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                          {"AttributeName": "sk", "KeyType": "RANGE"}],
            "GlobalSecondaryIndexes": [{
                "IndexName": "study_index",
                "KeySchema": [{"AttributeName": "study_uid", "KeyType": "HASH"},
                              {"AttributeName": "pk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"}}],
            "SSESpecification": {"Enabled": True},
            "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        }
        source = "built-in from CONTRACTS.md (forwarder/schema/dynamodb-table.json not present)"
    allowed = ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes",
               "LocalSecondaryIndexes", "ProvisionedThroughput", "StreamSpecification",
               "SSESpecification", "Tags", "TableClass")
    kw = {k: v for k, v in doc.items() if k in allowed}
    if "SSESpecification" in kw and "SSEEnabled" in kw["SSESpecification"]:  # CFN spelling
        sse = dict(kw["SSESpecification"])
        sse["Enabled"] = sse.pop("SSEEnabled")
        kw["SSESpecification"] = sse
    kw["TableName"] = table
    # TTL and PITR are not CreateTable parameters: the schema file names them "_ttl" and
    # "_pitr" (or by their API/CloudFormation names)
    ttl = doc.get("_ttl") or doc.get("TimeToLiveSpecification") or {}
    pitr = (doc.get("_pitr") or doc.get("PointInTimeRecoverySpecification") or {}).get(
        "PointInTimeRecoveryEnabled", False)
    return kw, (ttl.get("AttributeName") if ttl.get("Enabled", True) and ttl else None), \
        bool(pitr), source


def wait_http(url, deadline, proc, what):
    """Bounded readiness wait: polls url until it answers (any HTTP status)."""
    delay = 0.05
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
    raise RuntimeError(f"{what} not ready within {READY_TIMEOUT:.0f} s")


def wait_port_file(path, deadline, proc, what):
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
        try:
            with open(path) as f:
                txt = f.read().strip()
            if txt:
                return int(txt)
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready within {READY_TIMEOUT:.0f} s")


class Launcher:
    def __init__(self, d):
        self.dir = d
        self.procs = []

    def spawn(self, name, argv, env=None):
        log = open(os.path.join(self.dir, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True, env=env, close_fds=True)
        log.close()
        self.procs.append((name, p))
        with open(os.path.join(self.dir, "pids"), "a") as f:
            f.write(f"{p.pid}\n")
        return p


def start(a):
    d = os.path.abspath(a.dir)
    os.makedirs(d, exist_ok=True)
    if os.path.exists(os.path.join(d, "pids")):
        sys.exit(f"aws_env: {d}/pids exists; stop that environment first")
    import boto3
    deadline = time.time() + READY_TIMEOUT
    L = Launcher(d)
    try:
        moto_port, moto = None, None
        for _attempt in range(5):  # a free port can be taken between probe and bind: retry
            port = free_port()
            env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="1000000000")
            p = L.spawn("moto", [sys.executable, os.path.abspath(__file__), "_moto", "--dir", d,
                                 "--port", str(port), "--max-lifetime", str(a.max_lifetime)],
                        env=env)
            try:
                wait_http(f"http://127.0.0.1:{port}/moto-api/reset-auth", deadline, p, "moto")
                moto_port, moto = port, p
                break
            except RuntimeError:
                if p.poll() is None:
                    raise
        if moto is None:
            raise RuntimeError("moto_server did not start (see moto.log)")
        ep = f"http://127.0.0.1:{moto_port}"
        setup = dict(endpoint_url=ep, region_name=a.region, aws_access_key_id="setup",
                     aws_secret_access_key="setup")
        iam = boto3.client("iam", **setup)
        role_name = "HealthImagingDataAccess"
        role_arn = f"arn:aws:iam::{ACCOUNT}:role/{role_name}"
        policy, policy_source = task_policy(a, role_arn)
        pol = json.dumps(policy)
        iam.create_user(UserName="dicom-core")
        iam.put_user_policy(UserName="dicom-core", PolicyName="task-policy", PolicyDocument=pol)
        key = iam.create_access_key(UserName="dicom-core")["AccessKey"]
        # for the tests' own checks (list the bucket, scan the table), never for the code under
        # test: everything allowed
        iam.create_user(UserName="test-admin")
        iam.put_user_policy(UserName="test-admin", PolicyName="admin", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        akey = iam.create_access_key(UserName="test-admin")["AccessKey"]
        iam.create_user(UserName="hi-emulator")
        iam.put_user_policy(
            UserName="hi-emulator", PolicyName="emulator", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": ["iam:Get*", "iam:List*", "sts:AssumeRole"],
                     "Resource": "*"}]}))
        hkey = iam.create_access_key(UserName="hi-emulator")["AccessKey"]
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"Service": "medical-imaging.amazonaws.com",
                          "AWS": f"arn:aws:iam::{ACCOUNT}:user/hi-emulator"}}]}
        iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))
        da_policy, da_source = data_access_role_policy(a, role_arn)
        iam.put_role_policy(RoleName=role_name, PolicyName="data-access",
                            PolicyDocument=json.dumps(da_policy))
        task_trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"Service": "ecs-tasks.amazonaws.com", "AWS": "*"}}]}
        iam.create_role(RoleName="dicom-core-task", AssumeRolePolicyDocument=json.dumps(task_trust))
        iam.put_role_policy(RoleName="dicom-core-task", PolicyName="task-policy",
                            PolicyDocument=pol)
        # the read path's role: the core (user dicom-core or role dicom-core-task) assumes it
        # through the emulator's STS front with a session policy per client scope
        reader_trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": [f"arn:aws:iam::{ACCOUNT}:user/dicom-core",
                                  f"arn:aws:iam::{ACCOUNT}:role/dicom-core-task",
                                  f"arn:aws:iam::{ACCOUNT}:user/test-admin"]}}]}
        iam.create_role(RoleName=READER_ROLE, AssumeRolePolicyDocument=json.dumps(reader_trust),
                        MaxSessionDuration=3600)
        rd_policy, rd_source = reader_role_policy(a)
        iam.put_role_policy(RoleName=READER_ROLE, PolicyName="dicomweb-read",
                            PolicyDocument=json.dumps(rd_policy))
        sts = boto3.client("sts", **setup)
        # two sessions: the metadata server hands them out in turn, so a client that refreshes
        # visibly moves to new keys (both stay valid in moto and in the emulator)
        sessions = [sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/dicom-core-task",
                                    RoleSessionName=f"dicom-core-task-{i}",
                                    DurationSeconds=43200)["Credentials"] for i in (1, 2)]
        task = sessions[0]
        s3 = boto3.client("s3", **setup)
        if a.region == "us-east-1":
            s3.create_bucket(Bucket=a.bucket)
        else:
            s3.create_bucket(Bucket=a.bucket, CreateBucketConfiguration={
                "LocationConstraint": a.region})
        ddb = boto3.client("dynamodb", **setup)
        kw, ttl_attr, pitr, table_source = table_params(a.table)
        ddb.create_table(**kw)
        if ttl_attr:
            ddb.update_time_to_live(TableName=a.table, TimeToLiveSpecification={
                "AttributeName": ttl_attr, "Enabled": True})
        if pitr:
            ddb.update_continuous_backups(TableName=a.table, PointInTimeRecoverySpecification={
                "PointInTimeRecoveryEnabled": True})

        creds_file = os.path.join(d, "hi-creds.json")
        with open(creds_file, "w") as f:
            json.dump({"keys": [
                {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"],
                 "UserName": "dicom-core"},
                {"AccessKeyId": akey["AccessKeyId"], "SecretAccessKey": akey["SecretAccessKey"],
                 "UserName": "test-admin"},
            ] + [{"AccessKeyId": t["AccessKeyId"], "SecretAccessKey": t["SecretAccessKey"],
                  "SessionToken": t["SessionToken"], "RoleName": "dicom-core-task"}
                 for t in sessions]}, f)
        task_file = os.path.join(d, "task-creds.json")
        with open(task_file, "w") as f:
            json.dump([{"AccessKeyId": t["AccessKeyId"], "SecretAccessKey": t["SecretAccessKey"],
                        "Token": t["SessionToken"],
                        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/dicom-core-task"}
                       for t in sessions], f)

        hi_port_file = os.path.join(d, "hi.port")
        hi_argv = [sys.executable, os.path.join(HERE, "hi_emulator.py"), "--port-file",
                   hi_port_file, "--region", a.region, "--account", ACCOUNT,
                   "--datastore-id", a.datastore_id, "--bucket", a.bucket,
                   "--moto-endpoint", ep,
                   "--service-cred", f"{hkey['AccessKeyId']}:{hkey['SecretAccessKey']}",
                   "--creds-file", creds_file, "--job-delay", str(a.job_delay),
                   "--start-tps", str(a.hi_start_tps), "--watch-dir", d,
                   "--max-lifetime", str(a.max_lifetime)]
        hi = L.spawn("hi_emulator", hi_argv)
        md_port_file = os.path.join(d, "metadata.port")
        md_token = secrets.token_hex(16)
        md = L.spawn("metadata_server", [
            sys.executable, os.path.join(HERE, "metadata_server.py"), "--port-file",
            md_port_file, "--creds-file", task_file, "--expiry-seconds", str(a.creds_expiry),
            "--auth-token", md_token, "--role-name", "dicom-core-task", "--watch-dir", d,
            "--max-lifetime", str(a.max_lifetime)])
        hi_port = wait_port_file(hi_port_file, deadline, hi, "hi_emulator")
        wait_http(f"http://127.0.0.1:{hi_port}/_emulator/state", deadline, hi, "hi_emulator")
        md_port = wait_port_file(md_port_file, deadline, md, "metadata_server")
        wait_http(f"http://127.0.0.1:{md_port}/_count", deadline, md, "metadata_server")

        req = urllib.request.Request(f"{ep}/moto-api/reset-auth",
                                     data=str(a.no_auth_count).encode(),
                                     headers={"Content-Type": "text/plain"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

        env = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_DEFAULT_REGION": a.region, "AWS_REGION": a.region, "REGION": a.region,
            "AWS_ACCOUNT_ID": ACCOUNT,
            "MOTO_PORT": str(moto_port), "MOTO_ENDPOINT": ep,
            "HI_PORT": str(hi_port), "HI_ENDPOINT": f"http://127.0.0.1:{hi_port}",
            # sts:AssumeRole with the checks AWS makes (moto's STS skips them): the emulator's
            # shim, which forwards to moto; HI_DATA_DIR: the emulator's stored instances
            "STS_ENDPOINT": f"http://127.0.0.1:{hi_port}",
            "HI_DATA_DIR": os.path.join(d, "hi-data"),
            "METADATA_PORT": str(md_port),
            "ECS_CREDENTIALS_RELATIVE_URI": "/v2/credentials/dicom-core-task",
            "ECS_CREDENTIALS_HOST": f"127.0.0.1:{md_port}",
            "ECS_AUTHORIZATION_TOKEN": md_token,
            "IMDS_ENDPOINT": f"http://127.0.0.1:{md_port}",
            "ADMIN_ACCESS_KEY_ID": akey["AccessKeyId"],
            "ADMIN_SECRET_ACCESS_KEY": akey["SecretAccessKey"],
            "TASK_ACCESS_KEY_ID": task["AccessKeyId"],
            "TASK_SECRET_ACCESS_KEY": task["SecretAccessKey"],
            "TASK_SESSION_TOKEN": task["SessionToken"],
            "BUCKET": a.bucket, "S3_PREFIX": a.prefix, "OUTPUT_PREFIX": a.output_prefix,
            "TABLE": a.table, "DATASTORE_ID": a.datastore_id,
            "DATASTORE_ARN": f"arn:aws:medical-imaging:{a.region}:{ACCOUNT}:datastore/"
                             f"{a.datastore_id}",
            "ROLE_ARN": role_arn,
            "READER_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/{READER_ROLE}",
            "READER_POLICY_SOURCE": rd_source,
            "POLICY_SOURCE": policy_source, "DATA_ACCESS_POLICY_SOURCE": da_source,
            "TABLE_SCHEMA_SOURCE": table_source,
            "AWS_ENV_DIR": d,
        }
        with open(os.path.join(d, "policy.json"), "w") as f:
            json.dump(policy, f, indent=1)
        with open(os.path.join(d, "env.json"), "w") as f:
            json.dump(env, f, indent=1)
        with open(os.path.join(d, "env.sh"), "w") as f:
            for k, v in env.items():
                f.write(f"export {k}={shlex.quote(v)}\n")
        print(f"aws_env: moto :{moto_port}, HealthImaging emulator :{hi_port}, metadata "
              f":{md_port}; policy: {policy_source}; table: {table_source}", file=sys.stderr)
    except BaseException as e:
        for _name, p in L.procs:
            if p.poll() is None:
                p.kill()
        try:
            os.unlink(os.path.join(d, "pids"))
        except OSError:
            pass
        if isinstance(e, Exception):
            sys.exit(f"aws_env: start failed: {e}")
        raise


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return None


def stop(a):
    d = os.path.abspath(a.dir)
    path = os.path.join(d, "pids")
    try:
        with open(path) as f:
            pids = [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return
    mine = [p for p in pids if (_cmdline(p) or "").find(d) >= 0]
    for p in mine:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    end = time.time() + 3
    while time.time() < end and any(_cmdline(p) is not None and _alive(p) for p in mine):
        time.sleep(0.05)
    for p in mine:
        if _alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    os.unlink(path)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def run_moto(a):
    """moto_server, plus the DynamoDB resource patch described in the module docstring."""
    from moto.dynamodb.responses import DynamoHandler

    def _determine_resource(self):
        try:
            body = json.loads(self.raw_body or self.body or "{}")
        except (ValueError, TypeError):
            return "*"
        if not isinstance(body, dict):
            return "*"
        tables = []
        if isinstance(body.get("TableName"), str):
            tables = [body["TableName"]]
        elif isinstance(body.get("RequestItems"), dict):
            tables = list(body["RequestItems"])
        if len(tables) != 1:
            return "*"
        arn = f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{tables[0]}"
        if isinstance(body.get("IndexName"), str):
            arn += f"/index/{body['IndexName']}"
        return arn

    DynamoHandler._determine_resource = _determine_resource

    # DynamoDB (awsJson1.0) reports authentication and authorization failures as HTTP 400 with
    # a JSON body {"__type": "com.amazon.coral.service#AccessDeniedException", ...}; moto sends
    # its S3-style 403 XML. Answer as DynamoDB does.
    from moto.core.exceptions import JsonRESTError
    orig_auth = DynamoHandler._authenticate_and_authorize_normal_action
    json_errors = {"AccessDenied": "AccessDeniedException",
                   "SignatureDoesNotMatch": "InvalidSignatureException",
                   "InvalidClientTokenId": "UnrecognizedClientException"}

    def _auth(self, resource="*"):
        try:
            orig_auth(self, resource)
        except Exception as e:  # noqa: BLE001 - re-raised unless it is one of moto's IAM errors
            et = getattr(e, "error_type", None)
            if et not in json_errors:
                raise
            msg = e.message + (f" on resource: {resource}" if et == "AccessDenied" else "")
            self.response_headers["Content-Type"] = "application/x-amz-json-1.0"
            raise JsonRESTError("com.amazon.coral.service#" + json_errors[et], msg) from None

    DynamoHandler._authenticate_and_authorize_normal_action = _auth
    sys.path.insert(0, HERE)
    import aws_harness_watchdog
    aws_harness_watchdog.start(a.dir, a.max_lifetime)

    # moto rebuilds the request to check its signature from the URL werkzeug has already
    # percent-decoded, so a query value with an encoded character (ListObjectsV2
    # prefix=dicom%2F..., delimiter=%2F) never verifies. AWS canonicalises each query name and
    # value as decode-then-encode; do that here.
    from urllib.parse import quote, unquote, urlsplit, urlunsplit
    from moto.iam import access_control as ac
    orig_create = ac.IAMRequestBase._create_aws_request

    def _create_aws_request(self):
        req = orig_create(self)
        u = urlsplit(req.url)
        if u.query:
            q = "&".join(quote(unquote(k), safe="-_.~") + "=" + quote(unquote(v), safe="-_.~")
                         for k, _, v in (p.partition("=") for p in u.query.split("&") if p))
            req.url = urlunsplit(u._replace(query=q))
        return req

    ac.IAMRequestBase._create_aws_request = _create_aws_request

    # THE HealthImaging EMULATOR serves sts:AssumeRole itself (its shim checks the trust policy,
    # the caller's identity policy and the session policy as AWS does) and then asks moto for
    # the keys as its own user "hi-emulator". moto would check the role's trust policy against
    # that user; the shim has already checked it against the real caller.
    orig_trust = ac.IAMRequestBase._check_role_trust_relationship

    def _check_role_trust_relationship(self, role_arn):
        if str(getattr(self._access_key, "arn", "")).endswith(":user/hi-emulator"):
            return True
        return orig_trust(self, role_arn)

    ac.IAMRequestBase._check_role_trust_relationship = _check_role_trust_relationship

    # /moto-api/data.json lists only JSON-serialisable attributes: an assumed role's session
    # policy is there, its expiry (a datetime) is not. Publish it, so that THE HealthImaging
    # EMULATOR answers ExpiredTokenException for moto-issued temporary keys as AWS does.
    from moto.sts.models import AssumedRole
    AssumedRole.expiration_iso = property(lambda self: self.expiration.isoformat())
    from moto.server import main as moto_main
    moto_main(["-H", "127.0.0.1", "-p", str(a.port)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("--dir", required=True)
    s.add_argument("--policy")
    s.add_argument("--no-auth-count", type=int, default=0)
    s.add_argument("--region", default="us-east-1")
    s.add_argument("--bucket", default="dicom-gw-test")
    s.add_argument("--prefix", default="dicom")
    s.add_argument("--output-prefix", default="import-output")
    s.add_argument("--table", default="dicom-gw-test")
    s.add_argument("--datastore-id", default=None)
    s.add_argument("--job-delay", type=float, default=0.3)
    s.add_argument("--hi-start-tps", type=float, default=0.0)
    s.add_argument("--creds-expiry", type=int, default=3600)
    s.add_argument("--kms-key-arn")
    s.add_argument("--max-lifetime", type=float, default=3600,
                   help="every server exits after this many seconds (and once DIR is gone)")
    s.add_argument("--drop-action", action="append", default=[],
                   help="remove this action from the task policy (repeatable)")
    t = sub.add_parser("stop")
    t.add_argument("--dir", required=True)
    m = sub.add_parser("_moto")
    m.add_argument("--dir", required=True)
    m.add_argument("--port", type=int, required=True)
    m.add_argument("--max-lifetime", type=float, default=3600)
    a = ap.parse_args()
    if a.cmd == "start":
        a.datastore_id = a.datastore_id or secrets.token_hex(16)
        start(a)
    elif a.cmd == "stop":
        stop(a)
    else:
        run_moto(a)


if __name__ == "__main__":
    main()
