"""Server-side AWS Signature Version 4 verification for the test emulators (pyenv python3).

Used by hi_emulator.py (THE HealthImaging emulator) to check requests the way an AWS front end
does: the Authorization header (AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
SignedHeaders=..., Signature=...) is recomputed from the request as received and compared in
constant time. Rules followed (AWS "Create a signed AWS API request"):
  - canonical URI: RFC 3986 dot segments removed, then each byte outside unreserved and '/'
    percent-encoded again (non-S3 services encode the already-encoded path a second time);
  - canonical query: every name and value decoded then re-encoded (unreserved kept), sorted by
    name then value; a valueless parameter ("?uploads") is "uploads=";
  - canonical headers: only those named in SignedHeaders, lower-cased, values trimmed with runs
    of spaces collapsed, repeated headers joined by ','; "host" must be signed;
  - payload hash: SHA-256 of the body as received (a client that signs another hash fails);
  - X-Amz-Date within 15 minutes of now, the scope date equal to its date, the scope region and
    service equal to what the endpoint serves.
The caller maps the result to AWS's error shapes (403 InvalidSignatureException,
UnrecognizedClientException, MissingAuthenticationTokenException).
"""

import datetime
import hashlib
import hmac
import re
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = datetime.timedelta(minutes=15)

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,"
    r"\s*Signature=([0-9a-f]{64})\s*$"
)


class SigV4Error(Exception):
    """kind: 'missing' | 'unknown_key' | 'bad_token' | 'signature' | 'expired' | 'malformed'."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


def parse_authorization(value):
    """Returns dict(akid, date, region, service, signed_headers[list], signature) or raises."""
    if not value:
        raise SigV4Error("missing", "Missing Authentication Token")
    m = _AUTH_RE.match(value.strip())
    if not m:
        raise SigV4Error("malformed", "Authorization header requires 'Credential', "
                         "'SignedHeaders' and 'Signature' parameters (AWS4-HMAC-SHA256).")
    scope = m.group(1).split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise SigV4Error("malformed", "Credential should be scoped to a valid region, "
                         "service and terminated by aws4_request.")
    return {
        "akid": scope[0], "date": scope[1], "region": scope[2], "service": scope[3],
        "signed_headers": m.group(2).split(";"), "signature": m.group(3),
    }


def _remove_dot_segments(path):
    out = []
    for seg in path.split("/"):
        if seg == "..":
            if len(out) > 1:
                out.pop()
        elif seg != ".":
            out.append(seg)
    res = "/".join(out)
    if not res.startswith("/"):
        res = "/" + res
    if path.endswith(("/.", "/..")) and not res.endswith("/"):
        res += "/"
    return res


def canonical_uri(raw_path, service):
    if service == "s3":
        return raw_path or "/"
    return quote(_remove_dot_segments(raw_path or "/"), safe="/~")


def canonical_query(raw_query):
    if not raw_query:
        return ""
    pairs = []
    for part in raw_query.split("&"):
        if part == "":
            continue
        k, _, v = part.partition("=")
        pairs.append((quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~")))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_headers(header_items, signed_headers):
    """header_items: list of (name, value) as received (repeats allowed)."""
    by_name = {}
    for name, value in header_items:
        by_name.setdefault(name.lower(), []).append(" ".join(str(value).split()))
    lines = []
    for name in signed_headers:
        if name not in by_name:
            raise SigV4Error("signature", f"Signed header '{name}' is not in the request.")
        lines.append(f"{name}:{','.join(by_name[name])}")
    return "\n".join(lines) + "\n"


def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret, date, region, service):
    k = _hmac(("AWS4" + secret).encode("utf-8"), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def verify(method, raw_path, raw_query, header_items, body, lookup_secret, region, service,
           now=None):
    """Checks a request. lookup_secret(akid) -> (secret, session_token or None) or None.
    Returns the parsed Authorization dict (with 'akid') on success; raises SigV4Error."""
    headers = {}
    for name, value in header_items:
        headers.setdefault(name.lower(), value)
    auth = parse_authorization(headers.get("authorization"))
    if auth["service"] != service:
        raise SigV4Error("signature", f"Credential should be scoped to correct service: "
                         f"'{service}'.")
    if auth["region"] != region:
        raise SigV4Error("signature", f"Credential should be scoped to a valid region, "
                         f"not '{auth['region']}'.")
    if "host" not in auth["signed_headers"]:
        raise SigV4Error("signature", "'Host' must be a signed header.")
    if auth["signed_headers"] != sorted(auth["signed_headers"]):
        raise SigV4Error("signature", "SignedHeaders must be sorted.")
    amz_date = headers.get("x-amz-date")
    if not amz_date:
        raise SigV4Error("malformed", "Authorization header requires existence of either a "
                         "'X-Amz-Date' or a 'Date' header.")
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        raise SigV4Error("malformed", f"Invalid X-Amz-Date '{amz_date}'.")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if abs(now - when) > MAX_SKEW:
        raise SigV4Error("expired", f"Signature expired: {amz_date} is now earlier or later "
                         f"than 15 minutes from {now.strftime('%Y%m%dT%H%M%SZ')}.")
    if auth["date"] != amz_date[:8]:
        raise SigV4Error("signature", "Credential scope date does not match X-Amz-Date.")
    found = lookup_secret(auth["akid"])
    if found is None:
        raise SigV4Error("unknown_key", "The security token included in the request is invalid.")
    secret, token = found
    # temporary keys need their session token; long-term keys must not carry one
    if headers.get("x-amz-security-token") != token:
        raise SigV4Error("bad_token", "The security token included in the request is invalid.")
    payload_hash = hashlib.sha256(body or b"").hexdigest()
    creq = "\n".join([
        method.upper(),
        canonical_uri(raw_path, service),
        canonical_query(raw_query),
        canonical_headers(header_items, auth["signed_headers"]),
        ";".join(auth["signed_headers"]),
        payload_hash,
    ])
    scope = f"{auth['date']}/{region}/{service}/aws4_request"
    sts = "\n".join([ALGORITHM, amz_date, scope,
                     hashlib.sha256(creq.encode("utf-8")).hexdigest()])
    expect = hmac.new(signing_key(secret, auth["date"], region, service), sts.encode("utf-8"),
                      hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expect, auth["signature"]):
        raise SigV4Error(
            "signature",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.\n\nThe Canonical String for this request should have "
            f"been\n'{creq}'\n\nThe String-to-Sign should have been\n'{sts}'\n")
    return auth
