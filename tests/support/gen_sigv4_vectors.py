#!/usr/bin/env python3
"""Generate SigV4 test vectors for tests/unit/test_sigv4.c with botocore (pyenv python3).

The requests are those of AWS's published "aws-sig-v4-test-suite" (credentials AKIDEXAMPLE,
20150830T123600Z, us-east-1, service "service", host example.amazonaws.com), whose suite files
are not in this image; the expected canonical request, string to sign and Authorization are
computed by botocore's own signer (SigV4Auth / S3SigV4Auth), i.e. by the AWS SDK. A few extra
vectors cover what the forwarder sends: S3 (path not normalised, x-amz-content-sha256,
"?uploads", UNSIGNED-PAYLOAD), DynamoDB JSON and medical-imaging, with and without a session
token.  Run:  python3 tests/support/gen_sigv4_vectors.py > tests/unit/data/sigv4/vectors.json
"""
import datetime
import hashlib
import json
import urllib.parse

import botocore.auth as auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

FIXED = datetime.datetime(2015, 8, 30, 12, 36, 0)
auth.get_current_datetime = lambda *a, **k: FIXED

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = ("AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==")
HOST = "example.amazonaws.com"


def vector(name, method, path, params=(), headers=(), body=b"", token=None, service="service",
           region="us-east-1", s3=False, unsigned=False, host=HOST):
    url = "https://" + host + path
    hdrs = [("Host", host)] + list(headers) + [("X-Amz-Date", "20150830T123600Z")]
    req = AWSRequest(method=method, url=url, data=body, params=list(params) if params else None)
    req.headers = auth.HTTPHeaders()
    for k, v in hdrs:
        req.headers.add_header(k, v)  # keeps duplicates
    creds = Credentials(AKID, SECRET, token)
    signer = (auth.S3SigV4Auth if s3 else auth.SigV4Auth)(creds, service, region)
    if s3 and not unsigned:
        req.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    req.context["timestamp"] = "20150830T123600Z"
    signer._modify_request_before_signing(req)
    if unsigned:
        req.headers.replace_header("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")
    creq = signer.canonical_request(req)
    sts = signer.string_to_sign(req, creq)
    sig = signer.signature(sts, req)
    signer._inject_signature_to_request(req, sig)
    sent_headers = [[k, v] for k, v in req.headers.items() if k.lower() != "authorization"]
    query = "&".join(urllib.parse.quote(k, safe="-_.~") + ("=" + urllib.parse.quote(v, safe="-_.~")
                     if v is not None else "") for k, v in params)
    payload = creq.rsplit("\n", 1)[1]
    return {"name": name, "method": method, "path": path, "query": query,
            "headers": sent_headers, "payload_hash": payload, "service": service,
            "region": region, "s3": s3, "token": token or "",
            "creq": creq, "sts": sts, "authorization": req.headers["Authorization"]}


V = []
# From the published suite (request shapes).
V.append(vector("get-vanilla", "GET", "/"))
V.append(vector("get-vanilla-query", "GET", "/"))
V.append(vector("get-vanilla-empty-query-key", "GET", "/", params=[("Param1", "value1")]))
V.append(vector("get-vanilla-query-order-key", "GET", "/",
                params=[("Param2", "value2"), ("Param1", "value1")]))
V.append(vector("get-vanilla-query-order-key-case", "GET", "/",
                params=[("Param2", "value2"), ("Param1", "value1")]))
V.append(vector("get-vanilla-query-order-value", "GET", "/",
                params=[("Param1", "value2"), ("Param1", "Value1")]))
V.append(vector("get-vanilla-query-unreserved", "GET", "/", params=[
    ("-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
     "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")]))
V.append(vector("get-vanilla-utf8-query", "GET", "/", params=[("\u1234", "bar")]))
V.append(vector("get-utf8", "GET", "/%E1%88%B4"))
V.append(vector("get-space", "GET", "/example%20space/"))
V.append(vector("get-unreserved", "GET",
                "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
V.append(vector("get-slash", "GET", "//"))
V.append(vector("get-slashes", "GET", "//example//"))
V.append(vector("get-slash-dot-slash", "GET", "/./"))
V.append(vector("get-slash-pointless-dot", "GET", "/./example"))
V.append(vector("get-relative", "GET", "/example/.."))
V.append(vector("get-relative-relative", "GET", "/example1/example2/../.."))
V.append(vector("get-header-key-duplicate", "GET", "/",
                headers=[("My-Header1", "value2"), ("My-Header1", "value2"),
                         ("My-Header1", "value1")]))
V.append(vector("get-header-value-order", "GET", "/",
                headers=[("My-Header1", "value4"), ("My-Header1", "value1"),
                         ("My-Header1", "value3"), ("My-Header1", "value2")]))
V.append(vector("get-header-value-trim", "GET", "/",
                headers=[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")]))
V.append(vector("post-vanilla", "POST", "/"))
V.append(vector("post-vanilla-query", "POST", "/", params=[("Param1", "value1")]))
V.append(vector("post-header-key-case", "POST", "/"))
V.append(vector("post-header-key-sort", "POST", "/", headers=[("My-Header1", "value1")]))
V.append(vector("post-header-value-case", "POST", "/", headers=[("My-Header1", "VALUE1")]))
V.append(vector("post-x-www-form-urlencoded", "POST", "/",
                headers=[("Content-Type", "application/x-www-form-urlencoded")],
                body=b"Param1=value1"))
V.append(vector("post-x-www-form-urlencoded-parameters", "POST", "/",
                headers=[("Content-Type", "application/x-www-form-urlencoded; charset=utf8")],
                body=b"Param1=value1"))
V.append(vector("post-sts-header-before", "POST", "/", token=TOKEN))
# What the forwarder sends.
V.append(vector("s3-put-object", "PUT", "/my-bucket/dicom/b-20261124T030000Z-0a1b2c3d/1.2.840.1.dcm",
                headers=[("x-amz-checksum-sha256", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
                         ("x-amz-server-side-encryption", "AES256")],
                body=b"", service="s3", s3=True, host="127.0.0.1:4566"))
V.append(vector("s3-key-with-space", "GET", "/my-bucket/a%20b/c%2Bd.dcm", service="s3", s3=True,
                host="my-bucket.s3.us-east-1.amazonaws.com"))
V.append(vector("s3-create-multipart", "POST", "/my-bucket/k.dcm", params=[("uploads", "")],
                headers=[("x-amz-checksum-algorithm", "SHA256")], service="s3", s3=True,
                host="127.0.0.1:4566", token=TOKEN))
V.append(vector("s3-upload-part-unsigned", "PUT", "/my-bucket/k.dcm",
                params=[("uploadId", "abc/def+g=="), ("partNumber", "2")], body=b"x" * 10,
                service="s3", s3=True, unsigned=True))
V.append(vector("dynamodb-putitem", "POST", "/",
                headers=[("Content-Type", "application/x-amz-json-1.0"),
                         ("X-Amz-Target", "DynamoDB_20120810.PutItem")],
                body=b'{"TableName":"t","Item":{"pk":{"S":"a"}}}', service="dynamodb",
                region="eu-west-1", host="dynamodb.eu-west-1.amazonaws.com", token=TOKEN))
V.append(vector("medical-imaging-get-job", "GET",
                "/getDICOMImportJob/datastore/0123456789abcdef0123456789abcdef/job/0a1b2c",
                service="medical-imaging", host="medical-imaging.us-east-1.amazonaws.com"))
print(json.dumps({"access_key_id": AKID, "secret_access_key": SECRET,
                  "time": "2015-08-30T12:36:00Z", "time_unix": 1440938160,
                  "generated_by": "tests/support/gen_sigv4_vectors.py (botocore)",
                  "vectors": V}, indent=1))
