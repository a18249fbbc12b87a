#!/usr/bin/env python3
"""Structural checks of compose/ and cloudformation/ against the programs and CONTRACTS.md, for
tests/integration/test_deploy_*.sh. Interpreter: pyenv python3 (PyYAML). Each sub-command prints
one line per problem and exits 1 if there is any:

  deploy_checks.py compose SRC CONFIG.yml      CONFIG.yml = `docker-compose ... config` output
  deploy_checks.py needed-libs DOCKERFILE BINARY...   runtime packages cover the binaries' NEEDED
  deploy_checks.py cfn SRC                     template vs CONTRACTS.md / forwarder schema
  deploy_checks.py core-env SRC OUTDIR         render the task definition's GW_CONFIG_JSON for
                                               several parameter sets into OUTDIR/*.json
  deploy_checks.py rewrite IN OUT FROM=TO...   copy a JSON file, replacing path prefixes
"""
import json
import os
import re
import shlex
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import task_policy  # noqa: E402

problems = []


def problem(msg):
    problems.append(msg)
    print("PROBLEM: " + msg)


def ok(msg):
    print("ok: " + msg)


# ------------------------------------------------------------------ Dockerfiles
def parse_dockerfile(path):
    """-> list of stages: {"from": image, "name": alias, "ins": [(INSTR, args)]}."""
    lines, cur = [], ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            lines.append(cur + line)
            cur = ""
    stages = []
    for line in lines:
        instr, _, args = line.strip().partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            parts = args.split()
            stages.append({"from": parts[0], "name": parts[2] if len(parts) > 2 else None,
                           "ins": []})
        elif stages:
            stages[-1]["ins"].append((instr, args.strip()))
    return stages


def exec_form(args):
    args = args.strip()
    if args.startswith("["):
        return json.loads(args)
    return ["/bin/sh", "-c", args]


def apt_packages(stage):
    pkgs = []
    for instr, args in stage["ins"]:
        if instr != "RUN":
            continue
        for cmd in re.split(r"&&|;", args):
            words = cmd.split()
            if "apt-get" in words and "install" in words:
                pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def final_stage_facts(src, dockerfile):
    stages = parse_dockerfile(os.path.join(src, dockerfile))
    final = stages[-1]
    facts = {"from": final["from"], "user": None, "entrypoint": None, "cmd": None,
             "healthcheck": None, "expose": set(), "copies": {}, "apt": apt_packages(final),
             "volumes": set()}
    for instr, args in final["ins"]:
        if instr == "USER":
            facts["user"] = args
        elif instr == "ENTRYPOINT":
            facts["entrypoint"] = exec_form(args)
        elif instr == "CMD":
            facts["cmd"] = exec_form(args)
        elif instr == "HEALTHCHECK":
            m = re.search(r"CMD\s+(.*)$", args)
            facts["healthcheck"] = exec_form(m.group(1)) if m else None
        elif instr == "EXPOSE":
            facts["expose"] |= {int(p.split("/")[0]) for p in args.split()}
        elif instr == "VOLUME":
            vols = json.loads(args) if args.startswith("[") else args.split()
            facts["volumes"] |= set(vols)
        elif instr == "COPY":
            words = shlex.split(args)
            from_stage = None
            files = []
            for w in words:
                if w.startswith("--from="):
                    from_stage = w.split("=", 1)[1]
                elif not w.startswith("--"):
                    files.append(w)
            for s in files[:-1]:
                facts["copies"][files[-1] if len(files) == 2 else files[-1] + os.path.basename(s)] = (from_stage, s)
    # every COPY source of every stage must exist in the build context
    for st in stages:
        for instr, args in st["ins"]:
            if instr != "COPY" or "--from=" in args:
                continue
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            for s in words[:-1]:
                if s == "." or os.path.exists(os.path.join(src, s)):
                    continue
                if not os.path.exists(os.path.join(src, s.split("/")[0])):
                    # an area written in parallel (certs/, edge/) that this branch lacks yet
                    print("note: %s: COPY source %s: %s/ is not on this branch yet"
                          % (dockerfile, s, s.split("/")[0]))
                else:
                    problem("%s: COPY source %s does not exist" % (dockerfile, s))
    return facts


def port_of(hostport):
    return int(hostport.rsplit(":", 1)[1])


def is_root_user(user):
    return user is None or user.split(":")[0] in ("root", "0")


# ------------------------------------------------------------------ compose
PROGRAM_CONFIG_DIRS = {"/usr/local/bin/dicom-core": "core", "/usr/local/bin/dicom-edge": "edge"}


def check_compose(src, config_path):
    with open(config_path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    services = cfg.get("services", {})
    declared_volumes = set((cfg.get("volumes") or {}).keys())
    built_images = {s.get("image") for s in services.values() if s.get("build")}
    facts_by_image = {}
    for name, svc in services.items():
        b = svc.get("build")
        if b:
            ctx = b.get("context") if isinstance(b, dict) else b
            df = b.get("dockerfile", "Dockerfile") if isinstance(b, dict) else "Dockerfile"
            if os.path.realpath(ctx) != os.path.realpath(src):
                problem("%s: build context %s is not the repository root" % (name, ctx))
            if not os.path.isfile(os.path.join(src, df)):
                problem("%s: dockerfile %s missing" % (name, df))
                continue
            facts_by_image[svc.get("image")] = final_stage_facts(src, df)
        elif svc.get("image") and svc["image"].startswith("dicom-gateway/") \
                and svc["image"] not in built_images:
            problem("%s: image %s is built by no service" % (name, svc["image"]))

    for name, svc in services.items():
        facts = facts_by_image.get(svc.get("image"))
        # volumes
        mounts = {}
        for v in svc.get("volumes", []):
            if isinstance(v, dict):
                source, target = v.get("source"), v.get("target")
            else:
                parts = v.split(":")
                source, target = parts[0], parts[1]
            mounts[target] = source
            if source.startswith("/"):
                if not os.path.exists(source):
                    problem("%s: bind mount source %s does not exist" % (name, source))
                elif not os.path.realpath(source).startswith(os.path.realpath(src) + os.sep):
                    problem("%s: bind mount %s is outside the repository" % (name, source))
            elif source not in declared_volumes:
                problem("%s: volume %s is not declared" % (name, source))
        if not facts:
            continue
        if is_root_user(facts["user"]):
            problem("%s: image runs as root (USER %s)" % (name, facts["user"]))
        entry = facts["entrypoint"] or []
        for path in entry[:2]:
            if path.startswith("/") and path not in facts["copies"]:
                problem("%s: entrypoint %s is not copied into the image" % (name, path))
        prog = next((p for p in entry if p in PROGRAM_CONFIG_DIRS), None)
        if not prog:
            continue
        kind = PROGRAM_CONFIG_DIRS[prog]
        if facts["from"] != "debian:12-slim":
            problem("%s: runtime stage is %s, not debian:12-slim" % (name, facts["from"]))
        if not facts["healthcheck"]:
            problem("%s: image has no HEALTHCHECK" % name)
        dev = [p for p in facts["apt"] if p.endswith("-dev") or p in ("build-essential", "gcc",
                                                                       "cmake", "curl")]
        if dev:
            problem("%s: runtime stage installs build tools %s" % (name, dev))
        cmd = svc.get("command") or facts["cmd"] or []
        if "--config" not in cmd:
            problem("%s: command %s has no --config" % (name, cmd))
            continue
        cfg_path = cmd[cmd.index("--config") + 1]
        host_cfg = mounts.get(cfg_path)
        if not host_cfg or not host_cfg.startswith("/"):
            problem("%s: --config %s is not a file mounted from the repository" % (name, cfg_path))
            continue
        with open(host_cfg, encoding="utf-8") as f:
            pcfg = json.load(f)
        listen = port_of(pcfg.get("listen", "0.0.0.0:11112" if kind == "core" else "0.0.0.0:2762"))
        http = pcfg.get("http_listen", "127.0.0.1:9112" if kind == "core" else "127.0.0.1:9111")
        http_port = port_of(http) if http else None
        if listen not in facts["expose"]:
            problem("%s: listen port %d not EXPOSEd (%s)" % (name, listen, sorted(facts["expose"])))
        if http_port and http_port not in facts["expose"]:
            problem("%s: http port %d not EXPOSEd" % (name, http_port))
        hc = facts["healthcheck"] or []
        if http_port is None or str(http_port) not in hc:
            problem("%s: HEALTHCHECK %s does not hit the http_listen port %s" % (name, hc, http_port))
        for p in svc.get("ports", []):
            target = int(p.get("target")) if isinstance(p, dict) else \
                int(str(p).split("/")[0].rsplit(":", 1)[-1])
            if target not in (listen, http_port):
                problem("%s: published port %d is neither listen nor http_listen" % (name, target))
            published = p if isinstance(p, str) else str(p.get("host_ip", "")) + ":" + str(p.get("published"))
            if target == http_port and not str(published).startswith("127.0.0.1:"):
                problem("%s: /metrics port published beyond 127.0.0.1" % name)
        # every absolute path in the program's config must be inside a mount
        for path in json_paths(pcfg):
            if not any(path == t or path.startswith(t.rstrip("/") + "/") for t in mounts):
                problem("%s: %s path %s is not on a mounted volume" % (name, os.path.basename(host_cfg), path))
        print("config %s %s %s" % (name, kind, host_cfg))
        ok("%s: %s, user %s, entry %s, ports %d/%s, health %s" % (
            name, facts["from"], facts["user"], " ".join(entry), listen, http_port, " ".join(hc)))

    # the edge's address is the one the cores trust for PROXY v2
    edge_ip = ((services.get("edge", {}).get("networks") or {}).get("gw") or {}).get("ipv4_address")
    for name in ("core", "core-aws"):
        svc = services.get(name)
        if not svc:
            continue
        cfg_file = dict((v.split(":")[1], v.split(":")[0]) for v in svc.get("volumes", [])
                        if isinstance(v, str)).get("/etc/dicom-core/core.json")
        if not cfg_file:
            continue
        with open(cfg_file, encoding="utf-8") as f:
            trusted = json.load(f).get("proxy_protocol", {}).get("trusted", [])
        if edge_ip and edge_ip + "/32" not in trusted:
            problem("%s: trusts PROXY v2 from %s, not from the edge %s" % (name, trusted, edge_ip))
    # routes of the edge policy point at compose services and their listen ports
    routes_file = os.path.join(src, "compose", "config", "policy-routes.json")
    with open(routes_file, encoding="utf-8") as f:
        routes = json.load(f).get("routes", {})
    for rname, r in routes.items():
        host, _, port = r.get("upstream", "").rpartition(":")
        if host not in services:
            problem("route %s: upstream host %s is not a compose service" % (rname, host))
        elif int(port) != 11112:
            problem("route %s: upstream port %s is not the core's 11112" % (rname, port))
    for name, svc in services.items():
        for dep in (svc.get("depends_on") or {}):
            if dep not in services:
                problem("%s depends on unknown service %s" % (name, dep))


def json_paths(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from json_paths(v)
    elif isinstance(node, list):
        for v in node:
            yield from json_paths(v)
    elif isinstance(node, str) and node.startswith("/"):
        yield node


def check_needed_libs(dockerfile, binaries):
    facts = final_stage_facts(os.path.dirname(os.path.dirname(os.path.abspath(dockerfile))),
                              os.path.relpath(dockerfile, os.path.dirname(os.path.dirname(
                                  os.path.abspath(dockerfile)))))
    pkgs = set(facts["apt"])
    for binary in binaries:
        out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True,
                             check=True).stdout
        for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out):
            if re.match(r"lib(asan|ubsan|lsan|tsan)\b", lib):
                continue  # sanitizer runtimes of a test build
            path = subprocess.run(["sh", "-c", "ldconfig -p | awk '$1==\"%s\" {print $NF; exit}'" % lib],
                                  capture_output=True, text=True).stdout.strip()
            owner = ""
            for cand in (path, "/usr" + path, os.path.realpath(path)) if path else ():
                r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
                if r.returncode == 0:
                    owner = r.stdout.split(":")[0].strip()
                    break
            if owner in ("libc6",) or owner in pkgs:
                ok("%s needs %s from %s" % (os.path.basename(binary), lib, owner))
            else:
                problem("%s needs %s (package %s) which %s does not install (%s)" % (
                    os.path.basename(binary), lib, owner or "?", dockerfile, sorted(pkgs)))


# ------------------------------------------------------------------ CloudFormation
CONTRACT_TASK_ACTIONS = {
    "s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload",
    "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:Query",
    "medical-imaging:StartDICOMImportJob", "medical-imaging:GetDICOMImportJob",
    "medical-imaging:StoreDICOM", "iam:PassRole",
    "sts:AssumeRole"}  # the reader role, for the read path (issue 15)
CONTRACT_KMS_ACTIONS = {"kms:GenerateDataKey", "kms:Decrypt"}
# the reader role: HealthImaging's DICOMweb read actions (Service Authorization Reference), no
# store, no import
CONTRACT_READER_ACTIONS = {
    "medical-imaging:SearchDICOMStudies", "medical-imaging:SearchDICOMSeries",
    "medical-imaging:SearchDICOMInstances", "medical-imaging:GetDICOMInstance",
    "medical-imaging:GetDICOMInstanceMetadata", "medical-imaging:GetDICOMInstanceFrames",
    "medical-imaging:GetDICOMSeriesMetadata", "medical-imaging:GetDICOMBulkdata"}
CONTRACT_TABLE = {
    "BillingMode": "PAY_PER_REQUEST",
    "KeySchema": [("pk", "HASH"), ("sk", "RANGE")],
    "AttributeTypes": {"pk": "S", "sk": "S", "study_uid": "S", "client_id": "S"},
    "GlobalSecondaryIndexes": {"study_index": ([("study_uid", "HASH"), ("pk", "RANGE")], "ALL"),
                               "client_index": ([("client_id", "HASH"), ("study_uid", "RANGE")],
                                                "KEYS_ONLY")},
}


def table_shape(props):
    return {
        "BillingMode": props.get("BillingMode"),
        "KeySchema": [(k["AttributeName"], k["KeyType"]) for k in props.get("KeySchema", [])],
        "AttributeTypes": {a["AttributeName"]: a["AttributeType"]
                           for a in props.get("AttributeDefinitions", [])},
        "GlobalSecondaryIndexes": {
            g["IndexName"]: ([(k["AttributeName"], k["KeyType"]) for k in g["KeySchema"]],
                             g["Projection"]["ProjectionType"])
            for g in props.get("GlobalSecondaryIndexes", [])},
    }


def check_cfn(src):
    tpl_path = os.path.join(src, "cloudformation", "dicom-gateway.yaml")
    tpl = task_policy.load_template(tpl_path)
    res = tpl["Resources"]

    # DynamoDB table: the forwarder's schema file (source of truth) or CONTRACTS.md
    table = res["Table"]["Properties"]
    got = table_shape(table)
    schema_file = os.path.join(src, "forwarder", "schema", "dynamodb-table.json")
    if os.path.exists(schema_file):
        with open(schema_file, encoding="utf-8") as f:
            schema = json.load(f)
        want = table_shape(schema)
        origin = "forwarder/schema/dynamodb-table.json"
        ttl = schema.get("_ttl", {}).get("AttributeName")
        if ttl and table.get("TimeToLiveSpecification", {}).get("AttributeName") != ttl:
            problem("Table: TTL attribute differs from the schema's %s" % ttl)
        if schema.get("_pitr", {}).get("PointInTimeRecoveryEnabled") is False:
            problem("the forwarder's schema turns PITR off; CONTRACTS.md wants it on")
    else:
        want, origin = CONTRACT_TABLE, "CONTRACTS.md (forwarder/schema/dynamodb-table.json absent)"
    for k in want:
        if got[k] != want[k]:
            problem("Table %s: template %s, %s %s" % (k, got[k], origin, want[k]))
    if want != CONTRACT_TABLE:
        problem("%s differs from CONTRACTS.md: %s" % (origin, want))
    if table.get("TimeToLiveSpecification") != {"AttributeName": "ttl", "Enabled": True}:
        problem("Table: TTL must be on attribute ttl")
    if table.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
        problem("Table: PITR off")
    if table.get("SSESpecification", {}).get("SSEEnabled") is not True:
        problem("Table: SSE off")
    ok("DynamoDB table matches %s (keys, GSIs study_index and client_index, PITR, SSE, TTL ttl)"
       % origin)

    # task role: exactly the contract's actions on exactly the contract's resources
    names = dict(bucket="bkt", table="tbl", datastore_id="0123456789abcdef0123456789abcdef",
                 role_arn="arn:aws:iam::123456789012:role/data-access")
    kms = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    for variant, key in (("SSE-S3", None), ("SSE-KMS", kms)):
        doc = task_policy.render(kms_key_arn=key, template=tpl_path, **names)
        acts = set(task_policy.actions(doc))
        want_acts = CONTRACT_TASK_ACTIONS | (CONTRACT_KMS_ACTIONS if key else set())
        if acts != want_acts:
            problem("task role (%s): extra %s, missing %s" % (
                variant, sorted(acts - want_acts), sorted(want_acts - acts)))
        for st in doc["Statement"]:
            if st.get("Effect") != "Allow":
                problem("task role: non-Allow statement %s" % st.get("Sid"))
            for r in task_policy._as_list(st["Resource"]):
                if r == "*" or r.endswith(":*") or r == "arn:aws:s3:::*":
                    problem("task role: wildcard resource %s in %s" % (r, st.get("Sid")))
        by_action = {}
        for st in doc["Statement"]:
            for a in task_policy._as_list(st["Action"]):
                by_action[a] = (sorted(task_policy._as_list(st["Resource"])), st.get("Condition"))
        expect = {
            "s3:PutObject": ["arn:aws:s3:::bkt/*"],
            "dynamodb:Query": sorted(["arn:aws:dynamodb:us-east-1:123456789012:table/tbl",
                                      "arn:aws:dynamodb:us-east-1:123456789012:table/tbl/index/*"]),
            "medical-imaging:StoreDICOM": [
                "arn:aws:medical-imaging:us-east-1:123456789012:datastore/" + names["datastore_id"]],
            "iam:PassRole": [names["role_arn"]],
            "sts:AssumeRole": ["arn:aws:iam::123456789012:role/dicom-core-reader"],
        }
        if key:
            expect["kms:Decrypt"] = [key]
        for a, r in expect.items():
            if by_action.get(a, (None,))[0] != r:
                problem("task role (%s): %s on %s, expected %s" % (variant, a, by_action.get(a), r))
        cond = by_action.get("iam:PassRole", (None, None))[1]
        if cond != {"StringEquals": {"iam:PassedToService": "medical-imaging.amazonaws.com"}}:
            problem("task role: iam:PassRole condition is %s" % cond)
        ok("task role (%s): exactly %d actions of CONTRACTS.md on exact resources" % (variant, len(acts)))

    # reader role: exactly the DICOMweb read actions on the data store (plus the key's Decrypt
    # with SSE-KMS), trusted by the task role alone
    for variant, key in (("SSE-S3", None), ("SSE-KMS", kms)):
        rd = task_policy.render(kms_key_arn=key, template=tpl_path, role="reader", **names)
        got = {a: sorted(task_policy._as_list(st["Resource"])) for st in rd["Statement"]
               for a in task_policy._as_list(st["Action"])}
        want = {a: ["arn:aws:medical-imaging:us-east-1:123456789012:datastore/"
                    + names["datastore_id"]] for a in CONTRACT_READER_ACTIONS}
        if key:
            want["kms:Decrypt"] = [key]
        if got != want:
            problem("reader role (%s): extra %s, missing %s, resources %s" % (
                variant, sorted(set(got) - set(want)), sorted(set(want) - set(got)),
                {a: r for a, r in got.items() if want.get(a) not in (None, r)}))
        if any(st.get("Effect") != "Allow" or "Condition" in st for st in rd["Statement"]):
            problem("reader role (%s): a Deny or a Condition (session policies narrow it)" % variant)
    rtrust = res["ReaderRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    if len(rtrust) != 1 or rtrust[0].get("Principal") != {"AWS": {"Fn::GetAtt": ["TaskRole", "Arn"]}} \
            or rtrust[0].get("Action") != "sts:AssumeRole":
        problem("reader role trusts %s, not the task role alone" % rtrust)
    if res["ReaderRole"]["Properties"].get("MaxSessionDuration", 3600) > 3600:
        problem("reader role: MaxSessionDuration over 1 hour (role chaining caps it at 1 hour)")
    ok("reader role: exactly %d DICOMweb read actions on the data store, trusted by the task "
       "role alone" % len(CONTRACT_READER_ACTIONS))

    da = task_policy.render(template=tpl_path, role="data-access", **names)
    da_acts = {a: sorted(task_policy._as_list(st["Resource"])) for st in da["Statement"]
               for a in task_policy._as_list(st["Action"])}
    want_da = {"s3:GetObject": ["arn:aws:s3:::bkt/dicom/*"], "s3:ListBucket": ["arn:aws:s3:::bkt"],
               "s3:PutObject": ["arn:aws:s3:::bkt/import-output/*"]}
    if da_acts != want_da:
        problem("data access role: %s, expected %s" % (da_acts, want_da))
    trust = res["DataAccessRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    if trust["Principal"] != {"Service": "medical-imaging.amazonaws.com"}:
        problem("data access role trusts %s" % trust["Principal"])
    ok("data access role: read dicom/, list with prefix, write import-output/, trusted by medical-imaging only")

    # bucket
    b = res["Bucket"]["Properties"]
    if b.get("PublicAccessBlockConfiguration") != {k: True for k in (
            "BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")}:
        problem("Bucket: public access not fully blocked")
    pol = res["BucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    if not any(s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get(
            "aws:SecureTransport") == "false" for s in pol):
        problem("BucketPolicy: no TLS-only deny")
    rules = {r.get("Prefix"): r for r in b["LifecycleConfiguration"]["Rules"]}
    if "dicom/" not in rules or "ExpirationInDays" not in rules["dicom/"]:
        problem("Bucket: no lifecycle expiry on the staging prefix dicom/")
    ok("bucket: public access blocked, TLS-only policy, lifecycle on dicom/ and import-output/")

    # network: only the edges reach 11112; tasks only from the NLB
    for name, r in res.items():
        if not isinstance(r, dict):
            continue
        if r.get("Type") == "AWS::EC2::SecurityGroup":
            for rule in r["Properties"].get("SecurityGroupIngress", []):
                if rule.get("CidrIp") == "0.0.0.0/0" or rule.get("CidrIpv6") == "::/0":
                    problem("%s: ingress open to the world" % name)
    each = [k for k in tpl["Resources"] if k.startswith("Fn::ForEach::EdgeIngress")]
    if not each:
        problem("no per-edge-CIDR ingress on the NLB security group")
    tg = res["TargetGroup"]["Properties"]
    if (tg["Port"], tg["HealthCheckPort"], tg["HealthCheckPath"]) != (11112, "9112", "/healthz"):
        problem("TargetGroup: port/health check %s" % ((tg["Port"], tg["HealthCheckPort"], tg["HealthCheckPath"]),))
    attrs = {a["Key"] for a in tg["TargetGroupAttributes"]}
    if "proxy_protocol_v2.enabled" not in attrs:
        problem("TargetGroup: no proxy_protocol_v2.enabled attribute")
    if res["Listener"]["Properties"]["Port"] != 11112:
        problem("Listener port is not 11112")
    ok("network: NLB 11112 from edge CIDRs only, target group health check 9112 /healthz, PROXY v2 option")

    # the container matches the image (compose/core.Dockerfile)
    facts = final_stage_facts(src, "compose/core.Dockerfile")
    c = res["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    ports = {p["ContainerPort"] for p in c["PortMappings"]}
    if ports != {11112, 9112} or not ports <= facts["expose"]:
        problem("task ports %s vs image EXPOSE %s" % (ports, facts["expose"]))
    hc = c["HealthCheck"]["Command"][1:]
    if hc != facts["healthcheck"]:
        problem("task health check %s differs from the image's %s" % (hc, facts["healthcheck"]))
    if hc[0] not in facts["copies"]:
        problem("task health check %s is not in the image" % hc[0])
    if c.get("User", "").split(":")[0] != (facts["user"] or "").split(":")[0]:
        problem("task user %s differs from the image's %s" % (c.get("User"), facts["user"]))
    mounts = {m["ContainerPath"] for m in c["MountPoints"]}
    if not {"/var/lib/dicom-core", "/run/gw"} <= mounts:
        problem("task mounts %s lack the spool or /run/gw (read-only root)" % mounts)
    if not mounts <= facts["volumes"]:
        # Fargate bind mounts are root-owned unless the image declares the path a VOLUME
        problem("task mounts %s are not VOLUMEs of the image %s: user 10001 could not write them"
                % (sorted(mounts - facts["volumes"]), sorted(facts["volumes"])))
    envs = {e["Name"] for e in c.get("Environment", [])}
    if "GW_CONFIG_JSON" not in envs:
        problem("task definition passes no GW_CONFIG_JSON")
    ok("task definition: ports, health check, user and mounts match compose/core.Dockerfile")

    # log groups have retention; flow logs; endpoints; alarms
    for name, r in res.items():
        if isinstance(r, dict) and r.get("Type") == "AWS::Logs::LogGroup" and \
                "RetentionInDays" not in r["Properties"]:
            problem("%s: no retention" % name)
    want_alarms = {"SpoolDepthAlarm", "ImportFailureAlarm", "UnhealthyTargetsAlarm"}
    if not want_alarms <= set(res):
        problem("alarms missing: %s" % (want_alarms - set(res)))
    endpoints = tpl["Resources"].get("Fn::ForEach::InterfaceEndpoints", [None, []])[1]
    for svc in ("ecr.api", "ecr.dkr", "logs", "sts", "medical-imaging"):
        if svc not in endpoints:
            problem("no %s interface endpoint" % svc)
    for gw in ("S3GatewayEndpoint", "DynamoDbGatewayEndpoint", "FlowLog", "Datastore"):
        if gw not in res:
            problem("%s missing" % gw)
    ok("log retention, flow logs, gateway and interface endpoints, alarms present")

    # every log event a metric filter counts is one the programs write
    sources = ""
    for d in ("core", "forwarder"):
        for root, _, files in os.walk(os.path.join(src, d)):
            for f in files:
                if f.endswith(".c"):
                    with open(os.path.join(root, f), encoding="utf-8", errors="replace") as fh:
                        sources += fh.read()
    for name, r in res.items():
        if not (isinstance(r, dict) and r.get("Type") == "AWS::Logs::MetricFilter"):
            continue
        pattern = r["Properties"]["FilterPattern"]
        for ev in re.findall(r'\$\.ev = "([a-z_]+)"', pattern):
            if '"%s"' % ev in sources:
                ok("%s counts log event %s, which the programs write" % (name, ev))
            elif ev in PENDING_EVENTS:
                print("note: %s counts log event %s: %s" % (name, ev, PENDING_EVENTS[ev]))
            elif not os.path.isdir(os.path.join(src, "forwarder")):
                print("note: %s counts log event %s; forwarder/ not on this branch yet" % (name, ev))
            else:
                problem("%s counts log event %s, which no program writes" % (name, ev))


# Log events the template relies on that a program does not write yet (none now).
PENDING_EVENTS = {}

PARAM_SETS = {
    "default": {"EdgeCidrs": "192.0.2.0/28,198.51.100.0/28"},
    "existing-vpc-tls-nlbproxy": {
        "EdgeCidrs": "192.0.2.0/28", "VpcId": "vpc-0123456789abcdef0", "VpcCidr": "10.1.0.0/16",
        "Encryption": "SSE-S3", "ListenerProtocol": "TLS", "ProxyProtocol": "nlb",
        "CoreTlsSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:core-tls-AbCdEf"},
    "stow-kms-key": {
        "EdgeCidrs": "192.0.2.0/28", "ProxyProtocol": "none", "Ack": "healthimaging",
        "HealthImagingMode": "stow",
        "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"},
}


def core_env(src, outdir):
    """Render the task definition's GW_CONFIG_JSON for each PARAM_SETS entry."""
    tpl = task_policy.load_template(os.path.join(src, "cloudformation", "dicom-gateway.yaml"))
    c = tpl["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    env = next(e["Value"] for e in c["Environment"] if e["Name"] == "GW_CONFIG_JSON")
    for label, overrides in PARAM_SETS.items():
        params = {k: v.get("Default") for k, v in tpl["Parameters"].items()}
        params.update(overrides)
        for k, v in tpl["Parameters"].items():
            if v["Type"] == "CommaDelimitedList" and isinstance(params.get(k), str):
                params[k] = params[k].split(",") if params[k] else [""]
        names = {
            "Bucket": {"Ref": "dicom-gateway-bucket"},
            "Table": {"Ref": "dicom-gateway-table"},
            "Datastore": {"DatastoreId": "0123456789abcdef0123456789abcdef"},
            "DataAccessRole": {"Arn": "arn:aws:iam::123456789012:role/dicom-gateway-DataAccessRole"},
            "ReaderRole": {"Arn": "arn:aws:iam::123456789012:role/dicom-gateway-ReaderRole"},
            "Key": {"Arn": "arn:aws:kms:us-east-1:123456789012:key/created-by-stack"},
        }
        ctx = task_policy.Context(tpl, params, "us-east-1", "123456789012", "aws", names)
        text = ctx.eval(env)
        try:
            doc = json.loads(text)
        except ValueError as e:
            problem("GW_CONFIG_JSON (%s) is not JSON: %s: %s" % (label, e, text))
            continue
        with open(os.path.join(outdir, label + ".json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
        print("rendered %s" % label)


def rewrite(inp, out, maps):
    pairs = [m.split("=", 1) for m in maps]

    def fix(node):
        if isinstance(node, dict):
            return {k: fix(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fix(v) for v in node]
        if isinstance(node, str):
            for a, b in pairs:
                if node == a or node.startswith(a.rstrip("/") + "/"):
                    return b + node[len(a):]
        return node
    with open(inp, encoding="utf-8") as f:
        doc = json.load(f)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(fix(doc), f, indent=2)


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "compose":
        check_compose(*args)
    elif cmd == "needed-libs":
        check_needed_libs(args[0], args[1:])
    elif cmd == "cfn":
        check_cfn(*args)
    elif cmd == "core-env":
        core_env(*args)
    elif cmd == "rewrite":
        rewrite(args[0], args[1], args[2:])
    else:
        print(__doc__)
        return 2
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
