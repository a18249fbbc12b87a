#!/usr/bin/env python3
"""THIS IS AN EMULATOR of AWS HealthImaging, written for this project's tests. It is not AWS and
not a complete copy of it: it follows the `medical-imaging` service model shipped in the image's
botocore (operation paths, member names, required members, patterns, status codes, error shapes)
and, for the DICOMweb APIs botocore does not model, AWS's HealthImaging developer guide and
Service Authorization Reference (docs/testing-aws.md "HealthImaging DICOMweb read APIs: facts we
rely on" lists what was verified and what the emulator chose where AWS says nothing).
Interpreter: pyenv `python3` (boto3). Modules: hi_dicom.py (Part-10 parser, DICOM JSON,
transcoding), hi_iam.py (policies, keys, STS shim), hi_dicomweb.py (store, QIDO-RS, WADO-RS).

One HTTP/1.1 port on 127.0.0.1 serves:
  control plane (rest-json, SigV4 signing name "medical-imaging"):
    POST /startDICOMImportJob/datastore/{datastoreId}          StartDICOMImportJob
    GET  /getDICOMImportJob/datastore/{datastoreId}/job/{jobId} GetDICOMImportJob
    GET  /listDICOMImportJobs/datastore/{datastoreId}          ListDICOMImportJobs (jobStatus,
                                                               maxResults, nextToken)
    GET  /datastore/{datastoreId}                               GetDatastore
  DICOMweb (as dicom-medical-imaging.{region}.amazonaws.com; SigV4 name "medical-imaging"; the
  query string must be signed as AWS canonicalises it: every byte but A-Z a-z 0-9 - _ . ~
  percent-encoded, so send it encoded that way; errors as below, JSON {"message"} with
  x-amzn-ErrorType). {ds} is the datastore id, {study}/{series}/{sop} UIDs ([0-9.]{1,64}):
    POST /datastore/{ds}/studies[/{study}]  StoreDICOM / StoreDICOMStudy (STOW-RS): body
         multipart/related; type="application/dicom"; answer application/dicom+json PS3.18
         Store Instances Response (RetrieveURL, ReferencedSOPSequence, FailedSOPSequence with
         FailureReason); HTTP 200 all stored, 202 some failed, 409 none stored, 400 bad body,
         415 wrong media type, 413 over 1 GB.
    QIDO-RS, answer 200 application/dicom+json (a JSON array; [] when nothing matches, or 204
    with the qido_empty_status knob), Accept application/dicom+json (or absent):
    GET  /datastore/{ds}/studies                                 SearchDICOMStudies
    GET  /datastore/{ds}/studies/{study}/series                  SearchDICOMSeries
    GET  /datastore/{ds}/studies/{study}/series/{series}/instances SearchDICOMInstances
    GET  /datastore/{ds}/studies/{study}/instances               SearchDICOMStudyInstances
    GET  /datastore/{ds}/series                                  SearchDICOMAllSeries
    GET  /datastore/{ds}/instances                               SearchDICOMAllInstances
         query: {attribute}={value} by keyword (PatientID) or tag (00100020), only the keys
         AWS's table lists for that API (400 ValidationException otherwise; knob
         qido_strict_keys); matching per PS3.4 C.2.2.2: single value, * and ? wildcards
         (case-sensitive), UID lists (comma or backslash), DA/TM/DT ranges (a-b, -b, a-),
         universal (empty value), fuzzymatching=true: PatientName/ReferringPhysicianName
         case-insensitive word-prefix matching; includefield={tag|keyword|all} (repeatable,
         at most 50; a dotted SQ path returns its top-level sequence; private tags, at the
         instance level; a private creator given as a query key is not a filter); limit (default 1000, 1..1000) and offset (0..
         1,000,000): 400 ValidationException outside those. Only primary image sets are
         searched. Order: studies and a study's instances by last update, latest first;
         series by Series Number; instances by Instance Number. At most 10,000 matches are
         ever returned (the first 10,000 in that order; offset past them gives []); nothing
         in the answer says so (no Warning header): a client sees a full last page ending at
         result 10,000. Returned attributes: PS3.18's default set for the level (study
         attributes too when no study is in the path, series attributes when no series is),
         those used as match keys, and includefield's; study level computes
         ModalitiesInStudy, SOPClassesInStudy, NumberOfStudyRelatedSeries/-Instances, series
         level NumberOfSeriesRelatedInstances; RetrieveURL points back at this emulator.
    WADO-RS; optional query imageSetId=[0-9a-z]{32} reads that image set, else the primary
    image set holding the instance (404 ResourceNotFoundException when none):
    GET  .../studies/{study}/series/{series}/instances/{sop}     GetDICOMInstance
         Accept: application/dicom[; transfer-syntax=UID|*] (AWS's documented form; also
         */* or absent) -> 200 Content-Type: application/dicom; transfer-syntax=UID, the
         Part-10 file as the body; or multipart/related; type="application/dicom" (PS3.18
         form, not documented by AWS) -> one part. Default transfer syntax: explicit VR little
         endian (1.2.840.10008.1.2.1); "*" or the stored UID: the file exactly as stored;
         implicit VR LE and deflated instances are returned as explicit VR LE (a copy made
         when stored); compressed and big endian instances only as stored: anything else
         406 NotAcceptableException ("retry with transfer-syntax=*").
    GET  .../instances/{sop}/metadata                            GetDICOMInstanceMetadata
    GET  .../studies/{study}/series/{series}/metadata            GetDICOMSeriesMetadata
         application/dicom+json: [DICOM JSON per instance] (series: by Instance Number);
         includes 00020010 = the stored transfer syntax (AWS: metadata shows the stored one);
         Pixel Data and binary values over 1 MB as BulkDataURI, smaller ones InlineBinary.
    GET  .../instances/{sop}/frames/{1,2,..}                     GetDICOMInstanceFrames
         multipart/related; type="application/octet-stream"; transfer-syntax=UID, one part per
         frame in the order asked; native pixels as explicit VR LE (or as stored with "*"),
         compressed frames only with "*" or their UID; 400 on a bad list, 404 on a frame past
         the end.
    GET  .../instances/{sop}/bulkdata/{hash}                     GetDICOMBulkdata
         application/octet-stream: the raw value (encapsulated Pixel Data: its fragments).
    Bodies are copied from the files in 1 MiB chunks with Content-Length (wado_chunked knob:
    chunked transfer coding instead); a 1 GiB instance is never held in memory.
  STS (query protocol, SigV4 signing name "sts"), because moto 5.2.1's STS accepts what AWS
  refuses and does not publish expiry:
    POST /   Action=AssumeRole (form body, or GET /?Action=...): checks as AWS does: RoleArn,
             RoleSessionName (2-64 [\w+=,.@-]), DurationSeconds (900..the role's
             MaxSessionDuration), Policy (at most 2,048 characters of \t \n \r and
             0x20-0xFF, valid policy JSON: MalformedPolicyDocument otherwise); the role must
             exist and its trust policy name the caller (or trust the account and the caller's
             identity policy allow sts:AssumeRole): 403 AccessDenied otherwise. Then asks moto
             for the keys (as its --service-cred user) and records the session policy and
             expiry; answers AWS's AssumeRoleResponse XML (PackedPolicySize is moto's, or
             computed from the sts_packed_limit knob, which also yields PackedPolicyTooLarge).
             Other actions (GetCallerIdentity...) are re-signed with the caller's key and sent
             to moto unchanged. Errors: <ErrorResponse> XML (ValidationError 400,
             MalformedPolicyDocument 400, PackedPolicyTooLarge 400, AccessDenied 403,
             ExpiredToken 403). /_emulator/down (503) and /_emulator/throttle do not apply.
  test control (no SigV4; JSON bodies; answer 200 {"ok": true, ...}):
    POST /_emulator/fail     {"sop_uids": [..], "keys": [..], "exception_type":
                              "ValidationException", "message": "..", "jobs": N,
                              "job_message": ".."}
        files whose SOP Instance UID is listed, or whose S3 key ends with one of "keys", fail
        (failure.ndjson in imports, FailedSOPSequence reason 0x0110 in STOW); "jobs": the next N
        import jobs end FAILED with job_message. Repeated calls add to the set.
    POST /_emulator/throttle {"count": N, "seconds": S, "operations": ["GetDICOMInstance",..]}
        the next N matching requests, and every matching request for S seconds, get 429
        ThrottlingException (operations omitted = all). Operation names are the API names
        above (StoreDICOM covers both STOW forms).
    POST /_emulator/down     {"seconds": S, "mode": "503" | "refuse"}
        for S seconds every request gets 503 ServiceUnavailableException, or ("refuse") the
        listening socket is closed (connection refused) and open connections are dropped; the
        port is bound again afterwards.
    POST /_emulator/reset    {} clears every fault and restores the DICOMweb knobs below to
                             AWS's values; {"state": true} also forgets jobs, client tokens,
                             image sets and stored instances (files included).
    POST /_emulator/config   {"job_delay": seconds, "hold": null | "SUBMITTED" | "IN_PROGRESS",
                              TEST KNOBS (defaults follow AWS): "qido_max_results": 10000,
                              "qido_default_limit": 1000, "qido_max_limit": 1000,
                              "qido_max_offset": 1000000, "qido_max_includefield": 50,
                              "qido_empty_status": 200 | 204, "qido_strict_keys": true,
                              "wado_chunked": false, "sts_packed_limit": null | characters}
        hold: jobs stay at that status until hold changes (deterministic tests, crash tests);
        the knobs make the cap and paging testable with a few instances.
    POST /_emulator/load     {"datastoreId": ds (default the first), "paths": [files],
                              "dir": directory} -> {"loaded": [{"path", "SOPInstanceUID",
                              "StudyInstanceUID", "SeriesInstanceUID", "imageSetId",
                              "isPrimary"}], "failed": [{"path", "message"}]}
        TEST KNOB: Part-10 files from local paths into the data store, placed in image sets as
        an import job would (no S3, no job); files are copied in 1 MiB chunks.
    POST /_emulator/expire   {"access_key_ids": [..]} those temporary keys are expired from
                             now on (ExpiredTokenException without waiting 15 minutes).
    GET  /_emulator/sessions {"sessions": {AccessKeyId: {"RoleName", "RoleSessionName",
                             "SessionPolicy", "Expiration" (epoch s or null), "Expired",
                             "Source": "sts-shim" | "moto"}}} (no secrets)
    GET  /_emulator/jobs     {"jobs": [jobProperties + clientToken, ...]} (every job)
    GET  /_emulator/instances {"instances": {SOPInstanceUID: {"datastoreId", "imageSetId",
                             "isPrimary", "imports": times imported by jobs and STOW,
                             "stored": [{"imageSetId", "isPrimary", "StudyInstanceUID",
                             "SeriesInstanceUID", "transferSyntax", "size", "path"}]}}}
    GET  /_emulator/state    counters: requests per operation, throttled, down_rejected,
                             auth_failures, access_denied, expired_tokens, stow_instances,
                             loaded, wado_bytes; jobs by status; image sets; stored
                             instances; the knobs.
Authentication: the Authorization header is verified (sigv4_check.py) against the secret of its
access key: keys given with --cred AKID:SECRET[:TOKEN] (then every action is allowed), keys in
--creds-file (JSON {"keys": [{"AccessKeyId", "SecretAccessKey", "SessionToken"?, "UserName"? |
"RoleName"?}]}, reread when it changes), keys issued by the STS shim, or any key moto's IAM/STS
knows (looked up through moto's /moto-api/data.json, with an assumed role's session policy, and
its expiry when moto runs under aws_env.py). Failures answer 403 MissingAuthenticationToken-
Exception, UnrecognizedClientException or InvalidSignatureException like AWS; a temporary key
past its expiry (or declared expired) 403 ExpiredTokenException "The security token included in
the request is expired".
Authorization: for keys of a moto IAM user or assumed role, the identity policies are read from
moto's IAM (with --service-cred, an IAM user the harness creates; cached for
--policy-cache-seconds, default 1) and evaluated here, intersected with the key's session policy
when it has one (both must allow; an explicit Deny in either refuses): actions
medical-imaging:<Operation> on arn:aws:medical-imaging:{region}:{account}:datastore/{id}, with
the condition keys medical-imaging:StudyInstanceUID / medical-imaging:SeriesInstanceUID set from
the path for the actions the Service Authorization Reference lists them on (StudyInstanceUID:
SearchDICOMSeries, SearchDICOMInstances, StoreDICOMStudy and the Get* DICOMweb actions;
SeriesInstanceUID: SearchDICOMInstances and the Get* actions; neither: SearchDICOMStudies,
StoreDICOM). SearchDICOMStudyInstances / SearchDICOMAllSeries / SearchDICOMAllInstances are
authorized as SearchDICOMInstances / SearchDICOMSeries / SearchDICOMInstances with the keys
their path carries (AWS does not list them). A condition on a key the request does not carry
does not match, so a study-scoped session policy never allows SearchDICOMStudies. For
StartDICOMImportJob also iam:PassRole on dataAccessRoleArn with iam:PassedToService =
medical-imaging.amazonaws.com. Refusals: 403 AccessDeniedException "User: <arn> is not
authorized to perform: <action> on resource: <arn> because no identity-based policy allows the
<action> action" (or "... no session policy allows ..."). The role must exist in moto.
Instances: every instance received (import jobs read them from moto S3, STOW-RS, /_emulator/load)
is a file under --data-dir (default WATCH_DIR/hi-data): {ds}/{imageSetId}/{SOP}.dcm as stored,
{SOP}.ele.dcm (explicit VR LE copy of implicit and deflated instances) and {SOP}.json (index:
image set, primary flag, DICOM JSON metadata, bulk data and frame offsets), reloaded at start.
Import jobs: clientToken idempotency (same token and parameters -> same jobId; other parameters
-> 409 ConflictException); SUBMITTED -> IN_PROGRESS -> COMPLETED | FAILED, each step --job-delay
seconds; input and output buckets must be one of --bucket; the job assumes dataAccessRoleArn
through moto's STS and with those credentials lists inputS3Uri, streams every object to disk,
validates it as DICOM Part-10 (128-byte preamble, "DICM", group 0002 with Transfer Syntax; SOP
Instance, Study and Series UIDs in the data set; gzip content-encoding refused), and writes
under {outputS3Uri}{datastoreId}-DicomImport-{jobId}/:
    job-output-manifest.json  {"jobSummary": {jobId, datastoreId, inputS3Uri, outputS3Uri,
                               successOutputS3Uri, failureOutputS3Uri, numberOfScannedFiles,
                               numberOfImportedFiles, numberOfFilesWithCustomerError,
                               numberOfFilesWithServerError, numberOfGeneratedImageSets,
                               imageSetsSummary: [{imageSetId, numberOfMatchedSOPInstances,
                               isPrimary}]}}
    SUCCESS/success.ndjson    one line per imported file: {"inputFile": "<key>",
                               "importResponse": {"imageSetId": "..", "isPrimary": true}}
    FAILURE/failure.ndjson    one line per failed file: {"inputFile": "<key>", "exception":
                               {"exceptionType": "ValidationException", "message": ".."}}
  Each ndjson file is written only when it has lines (clients must treat a missing one as empty).
  inputFile is the object key within the bucket. Instances are grouped into one image set per
  series; an instance whose patient/study attributes conflict with the series' primary image set
  lands in a non-primary set (isPrimary false), as AWS documents; the primary copy stays. Quotas:
  5,000 files and 10 GB per job, 4 GB per file (job FAILED beyond), --max-concurrent-jobs (402
  beyond).
"""

import argparse
import base64
import json
import os
import re
import secrets
import socket
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aws_harness_watchdog  # noqa: E402
import hi_dicom as hd  # noqa: E402
import hi_dicomweb as hw  # noqa: E402
import hi_iam  # noqa: E402
import sigv4_check  # noqa: E402

SERVICE = "medical-imaging"
ERR_SUFFIX = ":http://internal.amazon.com/coral/com.amazonaws.medicalimaging/"
MAX_FILES_PER_JOB = 5000
MAX_BYTES_PER_JOB = 10 * 1024 ** 3
MAX_BYTES_PER_FILE = 4 * 1024 ** 3
MAX_STOW_BODY = 1024 ** 3


# DICOMweb behaviour: AWS's values (developer guide) unless a test lowers them through
# POST /_emulator/config; see the module docstring.
DICOMWEB_DEFAULTS = {
    "qido_max_results": 10000,      # "QIDO-RS actions can return a maximum of 10,000 records"
    "qido_default_limit": 1000,     # "The default value of limit is 1000"
    "qido_max_limit": 1000,         # "Max limit = 1000"
    "qido_max_offset": 1000000,     # "Max offset = 1,000,000"
    "qido_max_includefield": 50,    # "A request can include up to 50 includefield parameters"
    "qido_empty_status": 200,       # not documented by AWS: 200 [] (current PS3.18) or 204
    "qido_strict_keys": True,       # keys outside AWS's per-API tables: 400 (False: accepted)
    "wado_chunked": False,          # WADO bodies with Content-Length (True: chunked encoding)
}

# API name -> (QIDO level, order): AWS orders studies and a study's instances by last update
# (latest first), series by Series Number and instances by Instance Number (ascending).
SEARCH_LEVELS = {
    "SearchDICOMStudies": ("study", "updated"),
    "SearchDICOMSeries": ("series", "natural"),
    "SearchDICOMAllSeries": ("series", "natural"),
    "SearchDICOMInstances": ("instance", "natural"),
    "SearchDICOMStudyInstances": ("instance", "updated"),
    "SearchDICOMAllInstances": ("instance", "natural"),
}


def dicomweb_action(op, groups):
    """IAM action and condition context of a DICOMweb API (Service Authorization Reference:
    the study key for SearchDICOMSeries and StoreDICOMStudy, both keys for the instance and
    series retrieval and instance search actions, neither for SearchDICOMStudies). The three
    newer search APIs are not in the reference: the emulator maps them to the IAM action of
    the same level with the keys their path carries."""
    study = groups[1] if len(groups) > 1 else None
    series = groups[2] if len(groups) > 2 else None
    action = {"SearchDICOMStudyInstances": "SearchDICOMInstances",
              "SearchDICOMAllSeries": "SearchDICOMSeries",
              "SearchDICOMAllInstances": "SearchDICOMInstances"}.get(op, op)
    ctx = {}
    if op != "SearchDICOMStudies" and study:
        ctx["medical-imaging:StudyInstanceUID"] = study
    if op not in ("SearchDICOMStudies", "SearchDICOMSeries") and series:
        ctx["medical-imaging:SeriesInstanceUID"] = series
    return action, ctx


def now_ts():
    return time.time()


def new_id():
    return secrets.token_hex(16)  # 32 chars of [0-9a-f]


class ApiError(Exception):
    def __init__(self, status, etype, message):
        super().__init__(message)
        self.status, self.etype, self.message = status, etype, message


# The Part-10 parser, IAM evaluation and the DICOMweb read side live in hi_dicom.py, hi_iam.py
# and hi_dicomweb.py next to this file.
P10Error = hd.P10Error
parse_part10 = hd.parse_part10


# ---------------------------------------------------------------- service model validation

def load_model():
    import botocore.session
    return botocore.session.get_session().get_service_model(SERVICE)


def validate_input(model, op_name, params):
    """Checks required members and string/integer constraints of the operation's input shape,
    like AWS's front end; raises ApiError(400, ValidationException)."""
    shape = model.operation_model(op_name).input_shape
    errors = []
    for req in shape.required_members:
        if params.get(req) in (None, ""):
            errors.append(f"Value null at '{req}' failed to satisfy constraint: Member must "
                          "not be null")
    for name, member in shape.members.items():
        v = params.get(name)
        if v is None:
            continue
        md = member.metadata
        if member.type_name == "string":
            if not isinstance(v, str):
                errors.append(f"Value at '{name}' must be a string")
                continue
            if "min" in md and len(v) < md["min"] or "max" in md and len(v) > md["max"]:
                errors.append(f"Value '{v}' at '{name}' failed to satisfy constraint: Member "
                              f"must have length between {md.get('min', 0)} and "
                              f"{md.get('max', 'inf')}")
            elif "pattern" in md and not re.fullmatch(md["pattern"], v):
                errors.append(f"Value '{v}' at '{name}' failed to satisfy constraint: Member "
                              f"must satisfy regular expression pattern: {md['pattern']}")
            elif member.enum and v not in member.enum:
                errors.append(f"Value '{v}' at '{name}' failed to satisfy constraint: Member "
                              f"must satisfy enum value set: [{', '.join(member.enum)}]")
        elif member.type_name == "integer":
            try:
                iv = int(v)
            except (TypeError, ValueError):
                errors.append(f"Value '{v}' at '{name}' must be an integer")
                continue
            if "min" in md and iv < md["min"] or "max" in md and iv > md["max"]:
                errors.append(f"Value '{v}' at '{name}' failed to satisfy constraint: Member "
                              f"must have value between {md.get('min')} and {md.get('max')}")
    if errors:
        raise ApiError(400, "ValidationException",
                       f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} "
                       f"detected: " + "; ".join(errors))


# ---------------------------------------------------------------- emulator state

class Job:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def props(self):
        d = {"jobId": self.job_id, "jobName": self.job_name, "jobStatus": self.status,
             "datastoreId": self.datastore_id, "dataAccessRoleArn": self.role_arn,
             "submittedAt": self.submitted_at, "inputS3Uri": self.input_uri,
             "outputS3Uri": self.output_uri}
        if self.ended_at is not None:
            d["endedAt"] = self.ended_at
        if self.message:
            d["message"] = self.message
        return d


class Emulator:
    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()
        self.hold = None
        self.hold_cv = threading.Condition(self.lock)
        self.model = load_model()
        self.ids = hi_iam.Identities(args)
        self.sts = hi_iam.StsShim(args, self.ids)
        self.store = hw.Store(args.data_dir)
        self.config = dict(DICOMWEB_DEFAULTS)
        self.qido = hw.Qido(self.store, self.config)
        self.wado = hw.Wado(self.store, self.config)
        self.job_delay = args.job_delay
        self.datastores = {}
        for ds in args.datastore_id:
            self.datastores[ds] = {
                "datastoreId": ds, "datastoreName": f"emulated-{ds[:8]}",
                "datastoreStatus": "ACTIVE",
                "datastoreArn": self.datastore_arn(ds), "createdAt": now_ts(),
                "updatedAt": now_ts()}
        self.tps_tokens, self.tps_last = args.start_burst, now_ts()
        self.server = None
        self.port = None
        self.reset(state=True, clear_store=False)
        self.rebuild_from_store()

    def datastore_arn(self, ds):
        return f"arn:aws:medical-imaging:{self.args.region}:{self.args.account}:datastore/{ds}"

    def reset(self, state=False, clear_store=True):
        with self.lock:
            self.config.clear()
            self.config.update(DICOMWEB_DEFAULTS)
            self.sts.packed_limit = None
            self.hold = None
            self.hold_cv.notify_all()
            self.fail_sops, self.fail_keys = set(), []
            self.fail_type, self.fail_msg = "ValidationException", "Injected failure"
            self.fail_jobs, self.fail_job_msg = 0, "Injected job failure"
            self.throttle_count, self.throttle_until, self.throttle_ops = 0, 0.0, None
            self.down_until, self.down_mode = 0.0, None
            if state:
                self.jobs, self.tokens = {}, {}
                self.series = {}      # (ds, series_uid) -> {"primary": id, "attrs": tuple}
                self.instances = {}   # (ds, sop_uid) -> image set id
                self.import_counts = {}  # (ds, sop_uid) -> times imported (jobs and STOW)
                self.image_sets = {}  # id -> {"series": .., "primary": bool, "count": n}
                self.counters = {"requests": {}, "throttled": 0, "down_rejected": 0,
                                 "auth_failures": 0, "access_denied": 0, "expired_tokens": 0,
                                 "stow_instances": 0, "stow_failed": 0, "loaded": 0,
                                 "wado_bytes": 0}
                if clear_store:
                    self.store.clear()

    def rebuild_from_store(self):
        """Image sets and series placement from the instances found in --data-dir."""
        with self.lock:
            for rec in sorted(self.store.records.values(), key=lambda r: r["seq"]):
                m = rec["meta"]

                def v(tag):
                    return (hw._strings(m.get(tag)) or [""])[0]
                attrs = (v("00100020"), v("00100010"), v("00100030"), v("00080050"),
                         rec["study"])
                skey = (rec["ds"], rec["series"])
                s = self.series.setdefault(skey, {"primary": None, "attrs": None, "others": {}})
                if rec["primary"]:
                    s["primary"], s["attrs"] = rec["sid"], attrs
                else:
                    s["others"][attrs] = rec["sid"]
                iset = self.image_sets.setdefault(rec["sid"], {
                    "series": rec["series"], "primary": rec["primary"], "count": 0})
                iset["count"] += 1
                self.instances[(rec["ds"], rec["sop"])] = rec["sid"]
                self.import_counts[(rec["ds"], rec["sop"])] = 1

    def count(self, op):
        with self.lock:
            self.counters["requests"][op] = self.counters["requests"].get(op, 0) + 1

    # -- faults
    def check_throttle(self, op):
        with self.lock:
            if self.throttle_ops is not None and op not in self.throttle_ops:
                return
            hit = False
            if self.throttle_count > 0:
                self.throttle_count -= 1
                hit = True
            elif now_ts() < self.throttle_until:
                hit = True
            if hit:
                self.counters["throttled"] += 1
                raise ApiError(429, "ThrottlingException", "Rate exceeded")

    def check_start_tps(self):
        if self.args.start_tps <= 0:
            return
        with self.lock:
            t = now_ts()
            self.tps_tokens = min(self.args.start_burst,
                                  self.tps_tokens + (t - self.tps_last) * self.args.start_tps)
            self.tps_last = t
            if self.tps_tokens < 1.0:
                self.counters["throttled"] += 1
                raise ApiError(429, "ThrottlingException", "Rate exceeded")
            self.tps_tokens -= 1.0

    def should_fail(self, key, sop_uid):
        with self.lock:
            if sop_uid and sop_uid in self.fail_sops:
                return self.fail_type, self.fail_msg
            if key and any(key.endswith(k) for k in self.fail_keys):
                return self.fail_type, self.fail_msg
        return None

    # -- image sets (caller holds the lock)
    def place_instance(self, ds, info):
        attrs = (info.get("patient_id", ""), info.get("patient_name", ""),
                 info.get("patient_birth_date", ""), info.get("accession", ""),
                 info["study_uid"])
        skey = (ds, info["series_uid"])
        s = self.series.get(skey)
        if s is None:
            sid = new_id()
            self.series[skey] = {"primary": sid, "attrs": attrs, "others": {}}
            self.image_sets[sid] = {"series": info["series_uid"], "primary": True, "count": 0}
            s = self.series[skey]
        if s["attrs"] == attrs:
            sid, primary = s["primary"], True
        else:
            sid = s["others"].get(attrs)
            if sid is None:
                sid = new_id()
                s["others"][attrs] = sid
                self.image_sets[sid] = {"series": info["series_uid"], "primary": False,
                                        "count": 0}
            primary = False
        if self.instances.get((ds, info["sop_uid"])) != sid:
            self.image_sets[sid]["count"] += 1
        self.instances[(ds, info["sop_uid"])] = sid
        self.import_counts[(ds, info["sop_uid"])] = self.import_counts.get(
            (ds, info["sop_uid"]), 0) + 1
        return sid, primary

    # -- S3 through the data access role
    def role_s3(self, role_arn):
        import boto3
        akid, secret = self.args.service_cred.split(":", 1)
        session = boto3.session.Session()  # per job thread: the default one is not thread-safe
        sts = session.client("sts", endpoint_url=self.args.moto_endpoint,
                             region_name=self.args.region, aws_access_key_id=akid,
                             aws_secret_access_key=secret)
        c = sts.assume_role(RoleArn=role_arn, RoleSessionName="HealthImagingImport")[
            "Credentials"]
        return session.client("s3", endpoint_url=self.args.moto_endpoint,
                              region_name=self.args.region, aws_access_key_id=c["AccessKeyId"],
                              aws_secret_access_key=c["SecretAccessKey"],
                              aws_session_token=c["SessionToken"])

    def wait_hold(self, status):
        """Blocks while the test holds jobs at this status (POST /_emulator/config hold)."""
        with self.hold_cv:
            while self.hold == status:
                self.hold_cv.wait()

    def run_job(self, job):
        try:
            time.sleep(self.job_delay)
            self.wait_hold("SUBMITTED")
            with self.lock:
                job.status = "IN_PROGRESS"
            time.sleep(self.job_delay)
            self.wait_hold("IN_PROGRESS")
            with self.lock:
                if self.fail_jobs > 0:
                    self.fail_jobs -= 1
                    raise ApiError(0, "", self.fail_job_msg)
            self.import_files(job)
            with self.lock:
                job.status, job.ended_at = "COMPLETED", now_ts()
        except Exception as e:  # the job ends FAILED with a message, as AWS reports it
            msg = e.message if isinstance(e, ApiError) else f"{type(e).__name__}: {e}"
            msg = re.sub(r"[^\w \-:`]", " ", msg)[:2048] or "Job failed"
            with self.lock:
                job.status, job.ended_at, job.message = "FAILED", now_ts(), msg

    def import_files(self, job):
        from botocore.exceptions import ClientError
        try:
            s3 = self.role_s3(job.role_arn)
        except ClientError as e:
            raise ApiError(0, "", f"Failed to assume dataAccessRoleArn: {e}")
        bucket, prefix = split_s3(job.input_uri)
        keys, total = [], 0
        try:
            pag = s3.get_paginator("list_objects_v2")
            for page in pag.paginate(Bucket=bucket, Prefix=prefix):
                for o in page.get("Contents", []):
                    if o["Key"].endswith("/"):
                        continue
                    keys.append((o["Key"], o["Size"]))
                    total += o["Size"]
        except ClientError as e:
            raise ApiError(0, "", f"Unable to list inputS3Uri with dataAccessRoleArn: {e}")
        if not keys:
            raise ApiError(0, "", "No files found under inputS3Uri")
        if len(keys) > MAX_FILES_PER_JOB or total > MAX_BYTES_PER_JOB:
            raise ApiError(0, "", "Import job exceeds the quota of 5000 files or 10 GB")
        ok, failed = [], []
        for key, size in keys:
            err = None
            info = None
            spool = None
            if size > MAX_BYTES_PER_FILE:
                err = ("ValidationException", "File exceeds the 4 GB limit")
            else:
                try:
                    obj = s3.get_object(Bucket=bucket, Key=key)
                    enc = (obj.get("ContentEncoding") or "").lower()
                    if "gzip" in enc:
                        obj["Body"].close()
                        err = ("ValidationException",
                               "Content-Encoding gzip is not supported for DICOM P10 files")
                    else:
                        spool = self.store.spool_path()  # streamed: never whole in memory
                        with open(spool, "wb") as f:
                            for chunk in obj["Body"].iter_chunks(1024 * 1024):
                                f.write(chunk)
                        info = hd.parse_part10_file(spool)
                except ClientError as e:
                    err = ("AccessDeniedException" if "AccessDenied" in str(e)
                           else "InternalServerException", f"Unable to read object: {e}")
                except P10Error as e:
                    err = ("ValidationException", str(e))
            if err is None:
                err = self.should_fail(key, info["sop_uid"])
            if err:
                if spool and os.path.exists(spool):
                    os.unlink(spool)
                failed.append({"inputFile": key, "exception": {
                    "exceptionType": err[0], "message": err[1]}})
                continue
            with self.lock:
                sid, primary = self.place_instance(job.datastore_id, info)
            self.store.add(job.datastore_id, sid, primary, spool, info)
            ok.append({"inputFile": key, "importResponse": {"imageSetId": sid,
                                                              "isPrimary": primary}})
        base = job.output_uri + f"{job.datastore_id}-DicomImport-{job.job_id}/"
        obucket, oprefix = split_s3(base)
        sets = {}
        for rec in ok:
            r = rec["importResponse"]
            s = sets.setdefault(r["imageSetId"], {"imageSetId": r["imageSetId"],
                                                  "numberOfMatchedSOPInstances": 0,
                                                  "isPrimary": r["isPrimary"]})
            s["numberOfMatchedSOPInstances"] += 1
        manifest = {"jobSummary": {
            "jobId": job.job_id, "datastoreId": job.datastore_id,
            "inputS3Uri": job.input_uri, "outputS3Uri": base,
            "successOutputS3Uri": base + "SUCCESS/", "failureOutputS3Uri": base + "FAILURE/",
            "numberOfScannedFiles": len(keys), "numberOfImportedFiles": len(ok),
            "numberOfFilesWithCustomerError": sum(
                1 for f in failed if f["exception"]["exceptionType"] != "InternalServerException"),
            "numberOfFilesWithServerError": sum(
                1 for f in failed if f["exception"]["exceptionType"] == "InternalServerException"),
            "numberOfGeneratedImageSets": len(sets),
            "imageSetsSummary": list(sets.values())}}
        try:
            if ok:
                s3.put_object(Bucket=obucket, Key=oprefix + "SUCCESS/success.ndjson",
                              Body="".join(json.dumps(r) + "\n" for r in ok).encode())
            if failed:
                s3.put_object(Bucket=obucket, Key=oprefix + "FAILURE/failure.ndjson",
                              Body="".join(json.dumps(r) + "\n" for r in failed).encode())
            s3.put_object(Bucket=obucket, Key=oprefix + "job-output-manifest.json",
                          Body=json.dumps(manifest, indent=1).encode())
        except ClientError as e:
            raise ApiError(0, "", f"Unable to write to outputS3Uri with dataAccessRoleArn: {e}")

    # -- operations
    def authorize(self, key, action, resource, ctx=None):
        """Identity policies, and the session policy of a temporary key (both must allow)."""
        why = self.ids.authorize(key, action, resource, ctx or {})
        if why is None:
            return
        with self.lock:
            self.counters["access_denied"] += 1
        tail = {"explicit": "with an explicit deny",
                "session": f"because no session policy allows the {action} action",
                "identity-based": f"because no identity-based policy allows the {action} action"}
        raise ApiError(403, "AccessDeniedException",
                       f"User: {self.ids.principal_arn(key)} is not authorized to perform: "
                       f"{action} on resource: {resource} {tail[why]}")

    def datastore(self, ds):
        if ds not in self.datastores:
            raise ApiError(404, "ResourceNotFoundException", f"Datastore {ds} not found")
        return self.datastores[ds]

    def replay(self, ds, token, sig):
        """The answer for a clientToken already used, or None (idempotency)."""
        with self.lock:
            prev = self.tokens.get((ds, token))
            if prev is None:
                return None
            job = self.jobs[prev]
            if job.sig != sig:
                raise ApiError(409, "ConflictException",
                               "clientToken was already used with other parameters")
            return {"datastoreId": ds, "jobId": job.job_id, "jobStatus": job.status,
                    "submittedAt": job.submitted_at}

    def op_start(self, key, ds, body):
        try:
            params = json.loads(body or b"{}")
            if not isinstance(params, dict):
                raise ValueError
        except ValueError:
            raise ApiError(400, "ValidationException", "Request body is not a JSON object")
        params["datastoreId"] = ds
        validate_input(self.model, "StartDICOMImportJob", params)
        self.datastore(ds)
        self.authorize(key, "medical-imaging:StartDICOMImportJob", self.datastore_arn(ds))
        role = params["dataAccessRoleArn"]
        self.authorize(key, "iam:PassRole", role,
                       {"iam:PassedToService": "medical-imaging.amazonaws.com"})
        for uri in (params["inputS3Uri"], params["outputS3Uri"]):
            b, _ = split_s3(uri)
            if b not in self.args.bucket:
                raise ApiError(400, "ValidationException",
                               f"S3 bucket {b} is not accessible to this data store")
        out = params["outputS3Uri"]
        if not out.endswith("/"):
            out += "/"
        sig = (params.get("jobName"), role, params["inputS3Uri"], out)
        replay = self.replay(ds, params["clientToken"], sig)
        if replay:
            return replay
        if not self.ids.role_exists(role):
            raise ApiError(400, "ValidationException",
                           f"dataAccessRoleArn {role} does not exist or cannot be assumed")
        with self.lock:
            replay = self.replay(ds, params["clientToken"], sig)  # a concurrent twin won
            if replay:
                return replay
            active = sum(1 for j in self.jobs.values()
                         if j.datastore_id == ds and j.status in ("SUBMITTED", "IN_PROGRESS"))
            if active >= self.args.max_concurrent_jobs:
                raise ApiError(402, "ServiceQuotaExceededException",
                               "Too many concurrent import jobs for this data store")
            self.check_start_tps()
            jid = new_id()
            job = Job(job_id=jid, job_name=params.get("jobName") or f"import-{jid[:12]}",
                      status="SUBMITTED", datastore_id=ds, role_arn=role,
                      input_uri=params["inputS3Uri"], output_uri=out,
                      submitted_at=now_ts(), ended_at=None, message=None, sig=sig,
                      client_token=params["clientToken"])
            self.jobs[jid] = job
            self.tokens[(ds, params["clientToken"])] = jid
        threading.Thread(target=self.run_job, args=(job,), daemon=True).start()
        return {"datastoreId": ds, "jobId": jid, "jobStatus": "SUBMITTED",
                "submittedAt": job.submitted_at}

    def op_get_job(self, key, ds, jid):
        validate_input(self.model, "GetDICOMImportJob", {"datastoreId": ds, "jobId": jid})
        self.datastore(ds)
        self.authorize(key, "medical-imaging:GetDICOMImportJob", self.datastore_arn(ds))
        with self.lock:
            job = self.jobs.get(jid)
            if job is None or job.datastore_id != ds:
                raise ApiError(404, "ResourceNotFoundException", f"Import job {jid} not found")
            return {"jobProperties": job.props()}

    def op_list_jobs(self, key, ds, query):
        q = dict(parse_qsl(query, keep_blank_values=True))
        params = {"datastoreId": ds}
        params.update({k: v for k, v in q.items() if k in ("jobStatus", "nextToken",
                                                            "maxResults")})
        validate_input(self.model, "ListDICOMImportJobs", params)
        self.datastore(ds)
        self.authorize(key, "medical-imaging:ListDICOMImportJobs", self.datastore_arn(ds))
        start = 0
        if "nextToken" in params:
            try:
                start = int(base64.urlsafe_b64decode(params["nextToken"].encode()).decode())
            except Exception:
                raise ApiError(400, "ValidationException", "Invalid nextToken")
        limit = int(params.get("maxResults", 50))
        with self.lock:
            jobs = sorted((j for j in self.jobs.values() if j.datastore_id == ds and (
                "jobStatus" not in params or j.status == params["jobStatus"])),
                key=lambda j: -j.submitted_at)
            page = jobs[start:start + limit]
            out = {"jobSummaries": [
                {k: v for k, v in j.props().items() if k not in ("inputS3Uri", "outputS3Uri")}
                for j in page]}
        if start + limit < len(jobs):
            out["nextToken"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
        return out

    def op_get_datastore(self, key, ds):
        validate_input(self.model, "GetDatastore", {"datastoreId": ds})
        d = self.datastore(ds)
        self.authorize(key, "medical-imaging:GetDatastore", self.datastore_arn(ds))
        return {"datastoreProperties": d}

    def op_stow(self, key, ds, study, headers, body):
        self.datastore(ds)
        action = "medical-imaging:StoreDICOMStudy" if study else "medical-imaging:StoreDICOM"
        self.authorize(key, action, self.datastore_arn(ds),
                       {"medical-imaging:StudyInstanceUID": study} if study else {})
        ctype = headers.get("content-type", "")
        parts = parse_multipart(ctype, body)
        base = f"http://127.0.0.1:{self.port}/datastore/{ds}/studies"
        refs, fails, study_seen = [], [], study
        for part_headers, data in parts:
            info, reason = None, None
            try:
                info = parse_part10(data)
            except P10Error:
                reason = 0xC000  # PS3.18 I.2.2: cannot understand
            if info is not None:
                if study and info["study_uid"] != study:
                    reason = 0xA900  # PS3.18: does not match the study in the URL
                elif self.should_fail(None, info["sop_uid"]):
                    reason = 0x0110  # processing failure
            if reason is not None:
                item = {"00081197": {"vr": "US", "Value": [reason]}}
                if info is not None:
                    item["00081150"] = {"vr": "UI", "Value": [info["sop_class_uid"]]}
                    item["00081155"] = {"vr": "UI", "Value": [info["sop_uid"]]}
                fails.append(item)
                continue
            spool = self.store.spool_path()
            with open(spool, "wb") as f:
                f.write(data)
            with self.lock:
                sid, primary = self.place_instance(ds, info)
            self.store.add(ds, sid, primary, spool, info)
            study_seen = study_seen or info["study_uid"]
            refs.append({
                "00081150": {"vr": "UI", "Value": [info["sop_class_uid"]]},
                "00081155": {"vr": "UI", "Value": [info["sop_uid"]]},
                "00081190": {"vr": "UR", "Value": [
                    f"{base}/{info['study_uid']}/series/{info['series_uid']}/instances/"
                    f"{info['sop_uid']}"]}})
        with self.lock:
            self.counters["stow_instances"] += len(refs)
            self.counters["stow_failed"] += len(fails)
        resp = {}
        if study_seen:
            resp["00081190"] = {"vr": "UR", "Value": [f"{base}/{study_seen}"]}
        if fails:
            resp["00081198"] = {"vr": "SQ", "Value": fails}
        if refs:
            resp["00081199"] = {"vr": "SQ", "Value": refs}
        status = 200 if not fails else (202 if refs else 409)
        return status, resp

    # -- DICOMweb reads (QIDO-RS, WADO-RS)
    def dicomweb(self, key, op, groups, query, headers):
        """-> hw.Response. groups: the route's path parameters (datastore first)."""
        ds = groups[0]
        self.datastore(ds)
        for uid in groups[1:4]:  # study, series, SOP instance UIDs in the path
            if uid is not None and not hw.UID_RX.fullmatch(uid):
                raise ApiError(400, "ValidationException", f"Invalid UID '{uid}'")
        action, ctx = dicomweb_action(op, groups)
        self.authorize(key, "medical-imaging:" + action, self.datastore_arn(ds), ctx)
        q = dict(parse_qsl(query, keep_blank_values=True))
        image_set = q.get("imageSetId")
        if image_set is not None and not hw.IMAGE_SET_RX.fullmatch(image_set):
            raise ApiError(400, "ValidationException", f"Invalid imageSetId '{image_set}'")
        base = f"http://127.0.0.1:{self.port}/datastore/{ds}"
        accept = headers.get("accept")
        if op.startswith("Search"):
            if accept and not any(m in ("application/dicom+json", "application/json", "*/*",
                                        "application/*") for m, _p in hw.parse_accept(accept)):
                raise ApiError(406, "NotAcceptableException", "Accept must be "
                               "application/dicom+json")
            level, order = SEARCH_LEVELS[op]
            return self.qido.search(ds, level, query, base, study=groups[1] if len(groups) > 1
                                    else None, series=groups[2] if len(groups) > 2 else None,
                                    order=order)
        study, series = groups[1], groups[2]
        if op == "GetDICOMSeriesMetadata":
            recs = self.store.series_records(ds, study, series, image_set)
            return hw.json_response([hw.expand_bulk(
                r["meta"], f"{base}/studies/{study}/series/{series}/instances/{r['sop']}")
                for r in recs])
        rec = self.store.find(ds, study, series, groups[3], image_set)
        inst = f"{base}/studies/{study}/series/{series}/instances/{rec['sop']}"
        if op == "GetDICOMInstanceMetadata":
            return hw.json_response([hw.expand_bulk(rec["meta"], inst)])
        if op == "GetDICOMInstance":
            return self.wado.instance(rec, accept)
        if op == "GetDICOMInstanceFrames":
            return self.wado.frames(rec, groups[4], accept)
        return self.wado.bulk(rec, groups[4])

    def load_files(self, req):
        """POST /_emulator/load: files from local paths into the data store, as an import job
        would place them (test knob: no S3, no job)."""
        ds = req.get("datastoreId") or self.args.datastore_id[0]
        self.datastore(ds)
        paths = list(req.get("paths") or [])
        if req.get("dir"):
            for root, _dirs, files in os.walk(req["dir"]):
                paths.extend(os.path.join(root, f) for f in sorted(files))
        loaded, failed = [], []
        for path in paths:
            spool = self.store.spool_path()
            try:
                with open(path, "rb") as src, open(spool, "wb") as dst:
                    while True:
                        b = src.read(1024 * 1024)
                        if not b:
                            break
                        dst.write(b)
                info = hd.parse_part10_file(spool)
            except (OSError, P10Error) as e:
                if os.path.exists(spool):
                    os.unlink(spool)
                failed.append({"path": path, "message": str(e)})
                continue
            with self.lock:
                sid, primary = self.place_instance(ds, info)
                self.counters["loaded"] += 1
            self.store.add(ds, sid, primary, spool, info)
            loaded.append({"path": path, "SOPInstanceUID": info["sop_uid"],
                           "StudyInstanceUID": info["study_uid"],
                           "SeriesInstanceUID": info["series_uid"],
                           "imageSetId": sid, "isPrimary": primary})
        return {"loaded": loaded, "failed": failed}

    def state(self):
        with self.lock:
            by_status = {}
            for j in self.jobs.values():
                by_status[j.status] = by_status.get(j.status, 0) + 1
            return {"port": self.port, "job_delay": self.job_delay, "counters": self.counters,
                    "jobs": by_status, "image_sets": len(self.image_sets),
                    "instances": len(self.instances),
                    "stored_instances": len(self.store.records),
                    "config": dict(self.config, sts_packed_limit=self.sts.packed_limit),
                    "faults": {"fail_sops": len(self.fail_sops),
                               "fail_keys": len(self.fail_keys), "fail_jobs": self.fail_jobs,
                               "throttle_count": self.throttle_count,
                               "throttle_until": self.throttle_until,
                               "down_until": self.down_until, "down_mode": self.down_mode}}

    def control(self, path, body):
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            raise ApiError(400, "ValidationException", "control body must be JSON")
        if path == "/_emulator/load":
            return {"ok": True, **self.load_files(req)}
        if path == "/_emulator/expire":
            ids = req.get("access_key_ids") or []
            if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
                raise ApiError(400, "ValidationException", "access_key_ids must be a list")
            self.ids.expire(ids)
            return {"ok": True, "expired": ids}
        with self.lock:
            if path == "/_emulator/fail":
                self.fail_sops.update(req.get("sop_uids", []))
                self.fail_keys.extend(req.get("keys", []))
                self.fail_type = req.get("exception_type", self.fail_type)
                self.fail_msg = req.get("message", self.fail_msg)
                self.fail_jobs += int(req.get("jobs", 0))
                self.fail_job_msg = req.get("job_message", self.fail_job_msg)
            elif path == "/_emulator/throttle":
                self.throttle_count += int(req.get("count", 0))
                if req.get("seconds"):
                    self.throttle_until = now_ts() + float(req["seconds"])
                ops = req.get("operations")
                self.throttle_ops = set(ops) if ops else None
            elif path == "/_emulator/down":
                self.down_until = now_ts() + float(req.get("seconds", 5))
                self.down_mode = str(req.get("mode", "503"))
                if self.down_mode == "refuse":
                    threading.Thread(target=self.server.shutdown, daemon=True).start()
            elif path == "/_emulator/reset":
                self.reset(state=bool(req.get("state")))
            elif path == "/_emulator/config":
                if "job_delay" in req:
                    self.job_delay = float(req["job_delay"])
                if "hold" in req:
                    if req["hold"] not in (None, "SUBMITTED", "IN_PROGRESS"):
                        raise ApiError(400, "ValidationException",
                                       "hold must be null, SUBMITTED or IN_PROGRESS")
                    with self.hold_cv:
                        self.hold = req["hold"]
                        self.hold_cv.notify_all()
                for k, v in req.items():
                    if k in ("job_delay", "hold"):
                        continue
                    if k == "sts_packed_limit":
                        if v is not None and (not isinstance(v, int) or v < 1):
                            raise ApiError(400, "ValidationException",
                                           "sts_packed_limit must be null or a positive integer")
                        self.sts.packed_limit = v
                    elif k not in DICOMWEB_DEFAULTS:
                        raise ApiError(400, "ValidationException", f"unknown config key {k}")
                    elif not isinstance(v, type(DICOMWEB_DEFAULTS[k])) or (
                            isinstance(v, bool) != isinstance(DICOMWEB_DEFAULTS[k], bool)) or (
                            k == "qido_empty_status" and v not in (200, 204)) or (
                            isinstance(v, int) and not isinstance(v, bool) and v < 1):
                        raise ApiError(400, "ValidationException", f"bad value for {k}")
                    else:
                        self.config[k] = v
            else:
                raise ApiError(404, "ResourceNotFoundException", "unknown control path")
        return {"ok": True, "state": self.state()}


def split_s3(uri):
    m = re.fullmatch(r"s3://([^/]+)/?(.*)", uri)
    if not m:
        raise ApiError(400, "ValidationException", f"Invalid S3 URI {uri}")
    return m.group(1), m.group(2)


def parse_multipart(ctype, body):
    """multipart/related; type="application/dicom"; boundary=... -> [(headers, bytes)]."""
    m = re.match(r"\s*multipart/related\s*;(.*)$", ctype, re.IGNORECASE | re.DOTALL)
    if not m:
        raise ApiError(415, "UnsupportedMediaTypeException",
                       "Content-Type must be multipart/related; type=\"application/dicom\"")
    params = {}
    for p in re.finditer(r';?\s*([A-Za-z_-]+)\s*=\s*("([^"]*)"|[^;\s]+)', ";" + m.group(1)):
        params[p.group(1).lower()] = p.group(3) if p.group(3) is not None else p.group(2)
    if params.get("type", "").lower() != "application/dicom":
        raise ApiError(415, "UnsupportedMediaTypeException",
                       "Only type=\"application/dicom\" is supported")
    boundary = params.get("boundary")
    if not boundary:
        raise ApiError(400, "ValidationException", "multipart boundary missing")
    # RFC 2046 5.1.1: a delimiter is CRLF "--" boundary; the CRLF belongs to the delimiter
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary.encode())
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ApiError(400, "ValidationException", "malformed multipart body")
    parts = []
    for chunk in chunks[1:-1]:
        chunk = chunk.lstrip(b" \t")  # transport padding
        if not chunk.startswith(b"\r\n"):
            raise ApiError(400, "ValidationException", "malformed multipart delimiter")
        chunk = chunk[2:]
        if chunk.startswith(b"\r\n"):  # a part without header fields
            head, data = b"", chunk[2:]
        else:
            head, sep, data = chunk.partition(b"\r\n\r\n")
            if not sep:
                raise ApiError(400, "ValidationException", "multipart part without headers end")
        hdrs = {}
        for line in head.split(b"\r\n"):
            if b":" in line:
                k, v = line.split(b":", 1)
                hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        pt = hdrs.get("content-type", "application/dicom").split(";")[0].strip().lower()
        if pt != "application/dicom":
            raise ApiError(415, "UnsupportedMediaTypeException",
                           f"part Content-Type {pt} is not application/dicom")
        parts.append((hdrs, data))
    if not parts:
        raise ApiError(400, "ValidationException", "no parts in multipart body")
    return parts


_DS = r"^/datastore/([^/]+)"
_INST = _DS + r"/studies/([^/]+)/series/([^/]+)/instances/([^/]+)"
ROUTES = [
    ("POST", re.compile(r"^/startDICOMImportJob/datastore/([^/]+)$"), "StartDICOMImportJob"),
    ("GET", re.compile(r"^/getDICOMImportJob/datastore/([^/]+)/job/([^/]+)$"),
     "GetDICOMImportJob"),
    ("GET", re.compile(r"^/listDICOMImportJobs/datastore/([^/]+)$"), "ListDICOMImportJobs"),
    ("POST", re.compile(_DS + r"/studies(?:/([^/]+))?$"), "StoreDICOM"),
    ("GET", re.compile(_DS + r"/studies$"), "SearchDICOMStudies"),
    ("GET", re.compile(_DS + r"/studies/([^/]+)/series$"), "SearchDICOMSeries"),
    ("GET", re.compile(_DS + r"/studies/([^/]+)/series/([^/]+)/instances$"),
     "SearchDICOMInstances"),
    ("GET", re.compile(_DS + r"/studies/([^/]+)/instances$"), "SearchDICOMStudyInstances"),
    ("GET", re.compile(_DS + r"/series$"), "SearchDICOMAllSeries"),
    ("GET", re.compile(_DS + r"/instances$"), "SearchDICOMAllInstances"),
    ("GET", re.compile(_DS + r"/studies/([^/]+)/series/([^/]+)/metadata$"),
     "GetDICOMSeriesMetadata"),
    ("GET", re.compile(_INST + r"$"), "GetDICOMInstance"),
    ("GET", re.compile(_INST + r"/metadata$"), "GetDICOMInstanceMetadata"),
    ("GET", re.compile(_INST + r"/frames/([^/]+)$"), "GetDICOMInstanceFrames"),
    ("GET", re.compile(_INST + r"/bulkdata/([^/]+)$"), "GetDICOMBulkdata"),
    ("GET", re.compile(_DS + r"$"), "GetDatastore"),
    ("POST", re.compile(r"^/$"), "STS"),
]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hi-emulator"
    emu = None  # set in main

    def log_message(self, fmt, *a):
        if self.emu.args.verbose:
            sys.stderr.write("hi-emulator: " + (fmt % a) + "\n")

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                if len(out) + size > MAX_STOW_BODY:
                    raise ApiError(413, "PayloadTooLargeException", "Request body over 1 GB")
                out += self.rfile.read(size)
                self.rfile.readline(1024)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_STOW_BODY:
            raise ApiError(413, "PayloadTooLargeException", "Request body over 1 GB")
        return self.rfile.read(n) if n else b""

    def send_json(self, status, obj, ctype="application/json", extra=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", secrets.token_hex(16))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_bytes(self, status, ctype, data):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_response_obj(self, resp):
        """A hw.Response: bytes pieces and file ranges copied in 1 MiB chunks, with
        Content-Length, or chunked transfer coding when the test asked for it."""
        chunked = self.emu.config["wado_chunked"] and resp.status == 200
        self.send_response(resp.status)
        for k, v in resp.headers:
            self.send_header(k, v)
        self.send_header("x-amzn-RequestId", secrets.token_hex(16))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif resp.status != 204:
            self.send_header("Content-Length", str(resp.length()))
        self.end_headers()
        sent = 0

        def out(b):
            if chunked:
                self.wfile.write(b"%x\r\n" % len(b) + b + b"\r\n")
            else:
                self.wfile.write(b)
        try:
            for piece in resp.pieces:
                if isinstance(piece, bytes):
                    if piece:
                        out(piece)
                        sent += len(piece)
                    continue
                fpath, off, n = piece
                with open(fpath, "rb") as f:
                    f.seek(off)
                    while n > 0:
                        b = f.read(min(n, 1024 * 1024))
                        if not b:
                            raise OSError(f"{fpath} shorter than its index says")
                        out(b)
                        sent += len(b)
                        n -= len(b)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-body
        finally:
            with self.emu.lock:
                self.emu.counters["wado_bytes"] += sent

    def send_error_shape(self, e):
        self.send_json(e.status, {"message": e.message},
                       extra={"x-amzn-ErrorType": e.etype + ERR_SUFFIX})

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def dispatch(self):
        emu = self.emu
        split = urlsplit(self.path)
        path, query = split.path, split.query
        try:
            body = self.read_body()
        except ApiError as e:
            self.close_connection = True
            return self.send_error_shape(e)
        try:
            if path.startswith("/_emulator/"):
                if self.command == "GET" and path == "/_emulator/state":
                    return self.send_json(200, emu.state())
                if self.command == "GET" and path == "/_emulator/instances":
                    with emu.lock:
                        inst = {sop: {"datastoreId": ds, "imageSetId": sid,
                                      "isPrimary": emu.image_sets[sid]["primary"],
                                      "imports": emu.import_counts.get((ds, sop), 0),
                                      "stored": []}
                                for (ds, sop), sid in emu.instances.items()}
                        for r in sorted(emu.store.records.values(), key=lambda r: r["seq"]):
                            if r["sop"] in inst:
                                inst[r["sop"]]["stored"].append({
                                    "imageSetId": r["sid"], "isPrimary": r["primary"],
                                    "StudyInstanceUID": r["study"],
                                    "SeriesInstanceUID": r["series"],
                                    "transferSyntax": r["ts"], "size": r["size"],
                                    "path": r["file"]})
                    return self.send_json(200, {"instances": inst})
                if self.command == "GET" and path == "/_emulator/sessions":
                    return self.send_json(200, {"sessions": emu.ids.session_list()})
                if self.command == "GET" and path == "/_emulator/jobs":
                    with emu.lock:
                        jobs = [dict(j.props(), clientToken=j.client_token)
                                for j in emu.jobs.values()]
                    return self.send_json(200, {"jobs": jobs})
                return self.send_json(200, emu.control(path, body))
            op, m = None, None
            for method, rx, name in ROUTES:
                m = rx.match(path)
                if m and method == self.command:
                    op = name
                    break
            if op is None and self.command == "GET" and path == "/" and "Action=" in query:
                op, m = "STS", re.match(r"^/$", path)
            with emu.lock:
                down = now_ts() < emu.down_until and op != "STS"  # STS is another service
                mode = emu.down_mode
                if down:
                    emu.counters["down_rejected"] += 1
            if down and mode == "refuse":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return None
            if down:
                raise ApiError(503, "ServiceUnavailableException", "Service Unavailable")
            if op is None:
                raise ApiError(404, "UnknownOperationException", "Unknown operation")
            emu.count(op)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                auth = sigv4_check.verify(self.command, path, query, list(self.headers.items()),
                                          body, emu.ids.lookup_secret, emu.args.region,
                                          "sts" if op == "STS" else SERVICE)
            except sigv4_check.SigV4Error as e:
                with emu.lock:
                    emu.counters["auth_failures"] += 1
                if op == "STS":
                    code = {"missing": "MissingAuthenticationToken",
                            "unknown_key": "InvalidClientTokenId",
                            "bad_token": "InvalidClientTokenId",
                            "malformed": "IncompleteSignature"}.get(e.kind, "SignatureDoesNotMatch")
                    return self.send_bytes(*hi_iam.sts_error(403, code, e.message))
                etype = {"missing": "MissingAuthenticationTokenException",
                         "unknown_key": "UnrecognizedClientException",
                         "bad_token": "UnrecognizedClientException",
                         "malformed": "IncompleteSignatureException"}.get(
                             e.kind, "InvalidSignatureException")
                raise ApiError(403, etype, e.message)
            key = emu.ids.find(auth["akid"])
            if emu.ids.is_expired(auth["akid"], key):
                with emu.lock:
                    emu.counters["expired_tokens"] += 1
                if op == "STS":
                    return self.send_bytes(*hi_iam.sts_error(
                        403, "ExpiredToken", "The security token included in the request is "
                        "expired"))
                raise ApiError(403, "ExpiredTokenException",
                               "The security token included in the request is expired")
            if op == "STS":
                params = hi_iam.parse_params(query, body, headers.get("content-type"))
                return self.send_bytes(*emu.sts.handle(key, auth["akid"], params))
            emu.check_throttle(op)
            groups = [unquote(g) if g else g for g in m.groups()]
            if op == "StartDICOMImportJob":
                return self.send_json(200, emu.op_start(key, groups[0], body))
            if op == "GetDICOMImportJob":
                return self.send_json(200, emu.op_get_job(key, groups[0], groups[1]))
            if op == "ListDICOMImportJobs":
                return self.send_json(200, emu.op_list_jobs(key, groups[0], query))
            if op == "GetDatastore":
                return self.send_json(200, emu.op_get_datastore(key, groups[0]))
            if op == "StoreDICOM":
                status, resp = emu.op_stow(key, groups[0], groups[1], headers, body)
                return self.send_json(status, resp, ctype="application/dicom+json")
            try:
                resp = emu.dicomweb(key, op, groups, query, headers)
            except hw.DicomWebError as e:
                raise ApiError(e.status, e.etype, e.message)
            return self.send_response_obj(resp)
        except ApiError as e:
            return self.send_error_shape(e)
        except Exception as e:  # a bug here must show as a 500, never as a hang
            import traceback
            traceback.print_exc()
            return self.send_error_shape(ApiError(500, "InternalServerException", str(e)))


def serve(emu, port_file):
    port = emu.args.port
    first = True
    while True:
        srv = None
        for _ in range(100):
            try:
                srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
                break
            except OSError:
                if first:
                    raise
                time.sleep(0.1)  # rebinding after "refuse": the port may linger briefly
        srv.daemon_threads = True
        emu.server = srv
        emu.port = srv.server_address[1]
        port = emu.port
        if first and port_file:
            tmp = port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"{port}\n")
            os.rename(tmp, port_file)
        first = False
        srv.serve_forever(poll_interval=0.2)
        srv.server_close()
        with emu.lock:
            wait = emu.down_until - now_ts() if emu.down_mode == "refuse" else 0
        if wait > 0:
            time.sleep(wait)


def main():
    ap = argparse.ArgumentParser(description="HealthImaging EMULATOR for tests (not AWS)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--account", default="123456789012")
    ap.add_argument("--datastore-id", action="append", required=True)
    ap.add_argument("--bucket", action="append", default=[],
                    help="bucket(s) import jobs may read and write")
    ap.add_argument("--moto-endpoint", help="http://127.0.0.1:PORT of moto_server")
    ap.add_argument("--service-cred", help="AKID:SECRET of the emulator's own moto IAM user "
                    "(reads policies, assumes the data access role)")
    ap.add_argument("--cred", action="append", help="AKID:SECRET[:TOKEN], allowed everything")
    ap.add_argument("--creds-file")
    ap.add_argument("--job-delay", type=float, default=0.5)
    ap.add_argument("--max-concurrent-jobs", type=int, default=100)
    ap.add_argument("--start-tps", type=float, default=0.0,
                    help="StartDICOMImportJob rate limit (0 = off)")
    ap.add_argument("--start-burst", type=float, default=5.0)
    ap.add_argument("--policy-cache-seconds", type=float, default=1.0)
    ap.add_argument("--data-dir", help="where received instances are kept (default: "
                    "WATCH_DIR/hi-data, else a new directory under /tmp)")
    ap.add_argument("--dicom-dic", help="DCMTK dicom.dic for VRs and keywords (default: "
                    "/usr/share/libdcmtk*/dicom.dic, else a built-in table)")
    ap.add_argument("--watch-dir", help="exit once this directory is gone")
    ap.add_argument("--max-lifetime", type=float, default=0, help="exit after this many s")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    for ds in args.datastore_id:
        if not re.fullmatch(r"[0-9a-z]{32}", ds):
            ap.error(f"datastore id {ds} must match [0-9a-z]{{32}}")
    aws_harness_watchdog.start(args.watch_dir, args.max_lifetime)
    if not args.data_dir:
        args.data_dir = (os.path.join(args.watch_dir, "hi-data") if args.watch_dir
                         else tempfile.mkdtemp(prefix="hi-emulator-"))
    if args.dicom_dic:
        os.environ["HI_EMULATOR_DICOM_DIC"] = args.dicom_dic
    emu = Emulator(args)
    Handler.emu = emu
    serve(emu, args.port_file)


if __name__ == "__main__":
    main()
