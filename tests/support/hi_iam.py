"""IAM side of THE HealthImaging EMULATOR (tests/support/hi_emulator.py); not AWS.

  - evaluate(): AWS policy logic for the emulator's checks (explicit Deny > Allow > implicit
    deny; Action/NotAction, Resource/NotResource, IAM wildcards, the string/ARN/Bool/Null
    condition operators, IfExists; a negated operator on a missing key matches, as in IAM);
  - Identities: every access key the emulator accepts and what is known of it: its secret and
    session token, the IAM user or role behind it, the session policy given to AssumeRole, and
    when a temporary key expires. Keys come from --cred, --creds-file, the STS shim below, and
    moto (/moto-api/data.json: IAM access keys, and STS AssumedRole with its `policy`; the
    expiry only when moto runs with aws_env.py's patch exposing `expiration_iso`);
  - StsShim: `sts:AssumeRole` (and a pass-through for the other STS actions) served on the
    emulator's port, because moto 5.2.1's STS accepts what AWS refuses (a role that does not
    exist, an untrusted caller, a malformed or over-long session policy, DurationSeconds under
    900) and does not publish the expiry. The shim verifies the caller's SigV4 (service "sts"),
    checks what AWS checks, forwards the call to moto's STS (so the keys are moto's and work
    against moto's S3/DynamoDB too) and records the session policy and expiry.
"""

import datetime
import json
import math
import os
import re
import secrets
import threading
import time
import urllib.request
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
SESSION_POLICY_MAX = 2048  # plaintext characters (STS AssumeRole, botocore model doc)


class IamError(Exception):
    """An authorization or STS failure: HTTP status, error code, message."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# ---------------------------------------------------------------- policy evaluation

def _as_list(v):
    return v if isinstance(v, list) else [v]


def _wild(pattern, value, ci=False):
    """IAM wildcards: '*' any run, '?' one character."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, (re.IGNORECASE | re.DOTALL) if ci else re.DOTALL) is not None


_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals",
            "ArnNotLike"}


def _op_match(base, have, wants):
    if base in ("StringEquals", "ArnEquals"):
        return have in wants
    if base == "StringEqualsIgnoreCase":
        return have.lower() in [w.lower() for w in wants]
    if base in ("StringLike", "ArnLike"):
        return any(_wild(w, have) for w in wants)
    if base in ("StringNotEquals", "ArnNotEquals"):
        return have not in wants
    if base == "StringNotEqualsIgnoreCase":
        return have.lower() not in [w.lower() for w in wants]
    if base in ("StringNotLike", "ArnNotLike"):
        return not any(_wild(w, have) for w in wants)
    if base == "Bool":
        return str(have).lower() in [w.lower() for w in wants]
    return None  # operator the emulator does not evaluate


def cond_ok(cond, ctx):
    for op, kv in cond.items():
        qual, _, rest = op.partition(":") if ":" in op else ("", "", op)
        base = rest[:-len("IfExists")] if rest.endswith("IfExists") else rest
        for key, want in kv.items():
            have = ctx.get(key) if key in ctx else next(
                (v for k, v in ctx.items() if k.lower() == key.lower()), None)
            wants = [str(w) for w in _as_list(want)]
            if base == "Null":
                if (have is None) != (wants[0].lower() == "true"):
                    return False
                continue
            if have is None:
                if rest.endswith("IfExists") or base in _NEGATED:
                    continue
                return False
            haves = have if isinstance(have, list) else [have]
            results = [_op_match(base, str(h), wants) for h in haves]
            if any(r is None for r in results):
                return False  # unknown operator: never matches
            ok = all(results) if qual == "ForAllValues" else any(results)
            if not ok:
                return False
    return True


def evaluate(policies, action, resource, ctx):
    """-> 'allow', 'deny' (explicit) or 'implicit' for a list of policy documents."""
    allowed = False
    for doc in policies:
        if isinstance(doc, str):
            doc = json.loads(doc)
        for st in _as_list(doc.get("Statement", [])):
            if "Action" in st:
                hit = any(_wild(a, action, ci=True) for a in _as_list(st["Action"]))
            else:
                hit = not any(_wild(a, action, ci=True) for a in _as_list(st.get("NotAction", [])))
            if not hit:
                continue
            if "Resource" in st:
                hit = any(_wild(r, resource) for r in _as_list(st["Resource"]))
            elif "NotResource" in st:
                hit = not any(_wild(r, resource) for r in _as_list(st["NotResource"]))
            if not hit or not cond_ok(st.get("Condition", {}), ctx):
                continue
            if st.get("Effect") == "Deny":
                return "deny"
            if st.get("Effect") == "Allow":
                allowed = True
    return "allow" if allowed else "implicit"


def check_policy_document(text):
    """Session policy grammar as far as the emulator checks it -> parsed document, or raises
    MalformedPolicyDocument."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise IamError(400, "MalformedPolicyDocument", "The policy is not in the valid JSON format.")
    if not isinstance(doc, dict) or "Statement" not in doc:
        raise IamError(400, "MalformedPolicyDocument", "Syntax errors in policy.")
    for st in _as_list(doc["Statement"]):
        if not isinstance(st, dict) or st.get("Effect") not in ("Allow", "Deny") or not (
                "Action" in st or "NotAction" in st):
            raise IamError(400, "MalformedPolicyDocument", "Syntax errors in policy.")
        if not isinstance(st.get("Condition", {}), dict):
            raise IamError(400, "MalformedPolicyDocument", "Syntax errors in policy.")
    return doc


# ---------------------------------------------------------------- identities

def _parse_time(s):
    if not s:
        return None
    try:
        return datetime.datetime.fromisoformat(str(s).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Identities:
    def __init__(self, args):
        self.args = args
        self.static = {}
        for c in args.cred or []:
            parts = c.split(":")
            self.static[parts[0]] = {"secret": parts[1],
                                     "token": parts[2] if len(parts) > 2 else None}
        self.file_keys, self.file_mtime = {}, None
        self.moto_keys = {}
        self.sessions = {}  # akid -> session facts recorded by the STS shim
        self.expired = set()  # akids a test declared expired (POST /_emulator/expire)
        self.lock = threading.Lock()
        self._iam = None
        self.policy_cache = {}

    def _reload_file(self):
        f = self.args.creds_file
        if not f:
            return
        try:
            mt = os.stat(f).st_mtime_ns
        except OSError:
            return
        if mt == self.file_mtime:
            return
        with open(f) as fh:
            doc = json.load(fh)
        keys = {}
        for k in doc.get("keys", []):
            keys[k["AccessKeyId"]] = {
                "secret": k["SecretAccessKey"], "token": k.get("SessionToken"),
                "user": k.get("UserName"), "role": k.get("RoleName")}
        self.file_keys, self.file_mtime = keys, mt

    def _from_moto(self, akid):
        if not self.args.moto_endpoint:
            return None
        try:
            with urllib.request.urlopen(self.args.moto_endpoint + "/moto-api/data.json",
                                        timeout=10) as resp:
                data = json.load(resp)
        except Exception:
            return None
        for ar in data.get("sts", {}).get("AssumedRole", []):
            if ar.get("access_key_id") == akid:
                return {"secret": ar["secret_access_key"], "token": ar["session_token"],
                        "role": ar["role_arn"].split("/")[-1], "user": None,
                        "session_name": ar.get("session_name"),
                        "session_policy": ar.get("policy"),
                        "expires": _parse_time(ar.get("expiration_iso"))}
        for ak in data.get("iam", {}).get("AccessKey", []):
            if ak.get("access_key_id") == akid and ak.get("status") == "Active" \
                    and ak.get("user_name"):
                return {"secret": ak["secret_access_key"], "token": None,
                        "user": ak["user_name"], "role": None}
        return None

    def find(self, akid):
        with self.lock:
            if akid in self.static:
                return self.static[akid]
            if akid in self.sessions:
                return self.sessions[akid]
            self._reload_file()
            if akid in self.file_keys:
                return self.file_keys[akid]
            if akid not in self.moto_keys:
                found = self._from_moto(akid)
                if found is None:
                    return None
                self.moto_keys[akid] = found
            return self.moto_keys[akid]

    def lookup_secret(self, akid):
        k = self.find(akid)
        return None if k is None else (k["secret"], k["token"])

    def record_session(self, akid, facts):
        with self.lock:
            self.sessions[akid] = facts

    def expire(self, akids):
        with self.lock:
            self.expired.update(akids)

    def is_expired(self, akid, key):
        with self.lock:
            if akid in self.expired:
                return True
        exp = key.get("expires")
        return exp is not None and time.time() >= exp

    def session_list(self):
        with self.lock:
            out = {}
            for akid, k in list(self.sessions.items()) + list(self.moto_keys.items()):
                if not k.get("role"):
                    continue
                out[akid] = {"RoleName": k["role"], "RoleSessionName": k.get("session_name"),
                             "SessionPolicy": k.get("session_policy"),
                             "Expiration": k.get("expires"),
                             "Expired": akid in self.expired or (
                                 k.get("expires") is not None and time.time() >= k["expires"]),
                             "Source": "sts-shim" if akid in self.sessions else "moto"}
            return out

    def iam(self):
        with self.lock:
            if self._iam is None:
                import boto3
                akid, secret = self.args.service_cred.split(":", 1)
                # a Session of its own: boto3's default session is not thread-safe
                self._iam = boto3.session.Session().client(
                    "iam", endpoint_url=self.args.moto_endpoint, region_name=self.args.region,
                    aws_access_key_id=akid, aws_secret_access_key=secret)
            return self._iam

    def _managed(self, iam, arn):
        pol = iam.get_policy(PolicyArn=arn)["Policy"]
        return iam.get_policy_version(PolicyArn=arn, VersionId=pol["DefaultVersionId"])[
            "PolicyVersion"]["Document"]

    def policies(self, k):
        """Identity policies of a key's principal, or None when every action is allowed.
        Cached for --policy-cache-seconds (reading them costs several moto IAM calls)."""
        if not (k.get("user") or k.get("role")) or not self.args.service_cred:
            return None
        ck = ("user", k["user"]) if k.get("user") else ("role", k["role"])
        with self.lock:
            hit = self.policy_cache.get(ck)
        if hit and time.monotonic() - hit[0] < self.args.policy_cache_seconds:
            return hit[1]
        docs = self._read_policies(k)
        with self.lock:
            self.policy_cache[ck] = (time.monotonic(), docs)
        return docs

    def _read_policies(self, k):
        iam = self.iam()
        docs = []
        if k.get("user"):
            u = k["user"]
            for n in iam.list_user_policies(UserName=u)["PolicyNames"]:
                docs.append(iam.get_user_policy(UserName=u, PolicyName=n)["PolicyDocument"])
            for p in iam.list_attached_user_policies(UserName=u)["AttachedPolicies"]:
                docs.append(self._managed(iam, p["PolicyArn"]))
            for g in iam.list_groups_for_user(UserName=u)["Groups"]:
                gn = g["GroupName"]
                for n in iam.list_group_policies(GroupName=gn)["PolicyNames"]:
                    docs.append(iam.get_group_policy(GroupName=gn, PolicyName=n)["PolicyDocument"])
                for p in iam.list_attached_group_policies(GroupName=gn)["AttachedPolicies"]:
                    docs.append(self._managed(iam, p["PolicyArn"]))
        else:
            r = k["role"]
            for n in iam.list_role_policies(RoleName=r)["PolicyNames"]:
                docs.append(iam.get_role_policy(RoleName=r, PolicyName=n)["PolicyDocument"])
            for p in iam.list_attached_role_policies(RoleName=r)["AttachedPolicies"]:
                docs.append(self._managed(iam, p["PolicyArn"]))
        return docs

    def principal_arn(self, k):
        acct = self.args.account
        if k.get("user"):
            return f"arn:aws:iam::{acct}:user/{k['user']}"
        if k.get("role"):
            return (f"arn:aws:sts::{acct}:assumed-role/{k['role']}/"
                    f"{k.get('session_name') or 'session'}")
        return f"arn:aws:iam::{acct}:root"

    def role_exists(self, arn):
        if not self.args.service_cred:
            return True
        try:
            self.iam().get_role(RoleName=arn.split("/")[-1])
            return True
        except Exception:
            return False

    def authorize(self, k, action, resource, ctx):
        """Identity policies, intersected with the key's session policy when it has one.
        Returns None when allowed, else the AWS-style reason ('identity-based' or 'session')."""
        pols = self.policies(k)
        ident = "allow" if pols is None else evaluate(pols, action, resource, ctx)
        sess = k.get("session_policy")
        sdec = evaluate([sess], action, resource, ctx) if sess else "allow"
        if ident == "deny" or sdec == "deny":
            return "explicit"
        if ident != "allow":
            return "identity-based"
        if sdec != "allow":
            return "session"
        return None


# ---------------------------------------------------------------- STS shim

def sts_error(status, code, message):
    body = (f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>Sender</Type><Code>{escape(code)}'
            f'</Code><Message>{escape(message)}</Message></Error><RequestId>'
            f'{secrets.token_hex(16)}</RequestId></ErrorResponse>')
    return status, "text/xml", body.encode()


class StsShim:
    def __init__(self, args, ids):
        self.args, self.ids = args, ids
        self.packed_limit = None  # test knob: policy characters that make 100 % packed size
        self.lock = threading.Lock()

    def _sts(self):
        import boto3
        akid, secret = self.args.service_cred.split(":", 1)
        return boto3.session.Session().client(
            "sts", endpoint_url=self.args.moto_endpoint, region_name=self.args.region,
            aws_access_key_id=akid, aws_secret_access_key=secret)

    def handle(self, key, akid, params):
        """params: the decoded form or query. -> (status, content type, body)."""
        from botocore.exceptions import ClientError
        action = params.get("Action")
        try:
            if action == "AssumeRole":
                return self.assume_role(key, akid, params)
            return self.passthrough(key, akid, params)
        except IamError as e:
            return sts_error(e.status, e.code, e.message)
        except ClientError as e:  # moto refused the forwarded call: pass its answer on
            err = e.response.get("Error", {})
            return sts_error(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400),
                             err.get("Code", "InternalFailure"), err.get("Message", str(e)))

    def passthrough(self, key, akid, params):
        """Other STS actions: re-signed with the caller's own key and sent to moto as is."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        from urllib.parse import urlencode
        body = urlencode(params).encode()
        req = AWSRequest(method="POST", url=self.args.moto_endpoint + "/", data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        SigV4Auth(Credentials(akid, key["secret"], key.get("token")), "sts",
                  self.args.region).add_auth(req)
        r = urllib.request.Request(req.url, data=body, headers=dict(req.headers), method="POST")
        try:
            with urllib.request.urlopen(r, timeout=30) as resp:
                return resp.status, resp.headers.get("Content-Type", "text/xml"), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", "text/xml"), e.read()

    def _validate(self, p):
        errs = []

        def bad(value, member, constraint):
            errs.append(f"Value '{value}' at '{member}' failed to satisfy constraint: {constraint}")
        arn, name = p.get("RoleArn", ""), p.get("RoleSessionName", "")
        if not arn:
            errs.append("Value null at 'roleArn' failed to satisfy constraint: Member must not be "
                        "null")
        elif not 20 <= len(arn) <= 2048:
            bad(arn, "roleArn", "Member must have length between 20 and 2048")
        if not name:
            errs.append("Value null at 'roleSessionName' failed to satisfy constraint: Member "
                        "must not be null")
        elif not (2 <= len(name) <= 64 and re.fullmatch(r"[\w+=,.@-]*", name)):
            bad(name, "roleSessionName", "Member must have length between 2 and 64 and satisfy "
                "regular expression pattern: [\\w+=,.@-]*")
        dur = p.get("DurationSeconds")
        if dur is not None:
            try:
                d = int(dur)
            except ValueError:
                d = None
            if d is None or d < 900:
                bad(dur, "durationSeconds", "Member must have value greater than or equal to 900")
            elif d > 43200:
                bad(dur, "durationSeconds", "Member must have value less than or equal to 43200")
        pol = p.get("Policy")
        if pol is not None:
            if len(pol) > SESSION_POLICY_MAX:
                bad(pol[:40] + "...", "policy", "Member must have length less than or equal to "
                    f"{SESSION_POLICY_MAX}")
            elif not pol or not re.fullmatch(r"[\t\n\r\x20-\xff]+", pol):
                bad(pol[:40], "policy", "Member must satisfy regular expression pattern: "
                    "[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+")
        if errs:
            raise IamError(400, "ValidationError", f"{len(errs)} validation error"
                           f"{'s' if len(errs) > 1 else ''} detected: " + "; ".join(errs))

    def _trusted(self, key, role, params):
        """Trust policy against the caller: 'direct' (the caller is named), 'account' (the
        account is trusted: the caller's identity policy must allow sts:AssumeRole), None."""
        acct = self.args.account
        caller = self.ids.principal_arn(key)  # the account root for a --cred key
        names = {caller}
        who = caller
        if key.get("role"):
            who = f"arn:aws:iam::{acct}:role/{key['role']}"
            names.add(who)
        doc = role.get("AssumeRolePolicyDocument") or {}
        if isinstance(doc, str):
            from urllib.parse import unquote
            doc = json.loads(unquote(doc))
        ctx = {"aws:PrincipalArn": who, "aws:PrincipalAccount": acct,
               "sts:RoleSessionName": params.get("RoleSessionName")}
        if params.get("ExternalId"):
            ctx["sts:ExternalId"] = params["ExternalId"]
        result = None
        for st in _as_list(doc.get("Statement", [])):
            acts = _as_list(st.get("Action", []))
            if not any(_wild(a, "sts:AssumeRole", ci=True) for a in acts):
                continue
            pr = st.get("Principal", {})
            aws = ["*"] if pr == "*" else [str(x) for x in _as_list(pr.get("AWS", []))] \
                if isinstance(pr, dict) else []
            hit = None
            for a in aws:
                if a == "*" or a in names:
                    hit = "direct"
                elif a in (acct, f"arn:aws:iam::{acct}:root"):
                    hit = hit or "account"
            if not hit or not cond_ok(st.get("Condition", {}), ctx):
                continue
            if st.get("Effect") == "Deny":
                return None
            if st.get("Effect") == "Allow" and result != "direct":
                result = hit
        return result

    def assume_role(self, key, akid, p):
        self._validate(p)
        arn = p["RoleArn"]
        caller = self.ids.principal_arn(key)
        denied = IamError(403, "AccessDenied", f"User: {caller} is not authorized to perform: "
                          f"sts:AssumeRole on resource: {arn}")
        m = re.fullmatch(r"arn:aws:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]+)", arn)
        if not m or m.group(1) != self.args.account:
            raise denied
        try:
            role = self.ids.iam().get_role(RoleName=m.group(2))["Role"]
        except Exception:
            raise denied
        trust = self._trusted(key, role, p)
        ident = self.ids.authorize(key, "sts:AssumeRole", arn, {}) if trust else "explicit"
        if trust is None or ident == "explicit" or (trust == "account" and ident):
            raise denied
        dur = int(p.get("DurationSeconds") or 3600)
        if dur > int(role.get("MaxSessionDuration") or 3600):
            raise IamError(400, "ValidationError", "The requested DurationSeconds exceeds the "
                           "MaxSessionDuration set for this role.")
        policy = p.get("Policy")
        packed = None
        if policy is not None:
            doc = check_policy_document(policy)
            with self.lock:
                limit = self.packed_limit
            if limit:
                packed = math.ceil(100 * len(json.dumps(doc, separators=(",", ":"))) / limit)
                if packed > 100:
                    raise IamError(400, "PackedPolicyTooLarge", f"Packed policy consumes "
                                   f"{packed}% of allotted space, please use smaller policy.")
        kw = {"RoleArn": arn, "RoleSessionName": p["RoleSessionName"], "DurationSeconds": dur}
        if policy is not None:
            kw["Policy"] = policy
        if p.get("ExternalId"):
            kw["ExternalId"] = p["ExternalId"]
        out = self._sts().assume_role(**kw)
        c = out["Credentials"]
        expires = time.time() + dur
        self.ids.record_session(c["AccessKeyId"], {
            "secret": c["SecretAccessKey"], "token": c["SessionToken"], "user": None,
            "role": m.group(2), "session_name": p["RoleSessionName"], "session_policy": policy,
            "expires": expires})
        exp = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        if packed is None:
            packed = out.get("PackedPolicySize", 0) if policy is not None else None
        body = (f'<AssumeRoleResponse xmlns="{STS_NS}"><AssumeRoleResult><AssumedRoleUser>'
                f'<AssumedRoleId>{escape(out["AssumedRoleUser"]["AssumedRoleId"])}'
                f'</AssumedRoleId><Arn>{escape(out["AssumedRoleUser"]["Arn"])}</Arn>'
                f'</AssumedRoleUser><Credentials><AccessKeyId>{escape(c["AccessKeyId"])}'
                f'</AccessKeyId><SecretAccessKey>{escape(c["SecretAccessKey"])}</SecretAccessKey>'
                f'<SessionToken>{escape(c["SessionToken"])}</SessionToken><Expiration>{exp}'
                f'</Expiration></Credentials>'
                + (f'<PackedPolicySize>{packed}</PackedPolicySize>' if packed is not None else "")
                + f'</AssumeRoleResult><ResponseMetadata><RequestId>{secrets.token_hex(16)}'
                f'</RequestId></ResponseMetadata></AssumeRoleResponse>')
        return 200, "text/xml", body.encode()


def parse_params(query, body, ctype):
    params = dict(parse_qsl(query, keep_blank_values=True))
    if body and "x-www-form-urlencoded" in (ctype or "").lower():
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params

