#!/usr/bin/env python3
"""Render an IAM policy of cloudformation/dicom-gateway.yaml for concrete resource names.

The moto tests run the forwarder with credentials whose IAM policy is exactly the one the
CloudFormation template gives dicom-core's task role, so that a missing or excess permission in
the template shows up as a failing test. This script reads the template (CloudFormation YAML
with its short-form tags), takes the role's inline policy and evaluates the intrinsic functions
in it (!Sub, !GetAtt, !Ref, !If with the template's Conditions, !Join, !Select, ...) against the
names given on the command line. Anything it cannot resolve is an error, never a guess.

Run with pyenv's python3 (PyYAML):

    python3 tests/support/task_policy.py --bucket B --table T --datastore-id D \\
        --role-arn arn:aws:iam::123456789012:role/hi-data-access [--kms-key-arn ARN] \\
        [--reader-role-arn ARN] [--region us-east-1] [--account 123456789012] \\
        [--role task|data-access|reader] [--drop-action s3:GetObject] [--moto] \\
        [--list-actions] [--out FILE]

prints the policy document as JSON (or writes it to FILE). The task role's policy is its inline
policy plus every AWS::IAM::Policy resource attached to it (Roles: [!Ref TaskRole]): the template
attaches sts:AssumeRole on the reader role that way, since the reader role's trust names the
task role. --list-actions prints the actions
one per line instead. --drop-action removes one action (repeatable): tests use it to show that
the forwarder fails without it. As a module: render(bucket=..., table=..., ...) -> dict.

--moto: a plain moto_server (5.2) authorizes DynamoDB and KMS calls against the resource "*",
so an exact table ARN denies everything there. --moto widens the Resource of the DynamoDB and
KMS statements to "*" and says so on stderr; the actions stay exactly the template's, and S3
(checked by moto) and medical-imaging (checked by tests/support/hi_emulator.py) keep their exact
ARNs. tests/support/aws_env.py needs no --moto: it patches moto to check DynamoDB resources. tests/integration/test_deploy_cfn.sh checks the
unwidened resources against CONTRACTS.md.
"""
import argparse
import copy
import json
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TEMPLATE = os.path.normpath(os.path.join(HERE, "..", "..", "cloudformation",
                                                 "dicom-gateway.yaml"))
MOTO_UNCHECKED = {"dynamodb", "kms"}  # moto authorizes these against the resource "*"
ROLE_RESOURCES = {"task": "TaskRole", "data-access": "DataAccessRole", "reader": "ReaderRole"}


class RenderError(Exception):
    pass


# ------------------------------------------------------------------ CloudFormation YAML
class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns the short-form tags into their long (JSON) form."""


def _tag(name):
    long_name = name if name in ("Ref", "Condition") else "Fn::" + name

    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {long_name: value}
    return construct


for _n in ("Ref", "Sub", "GetAtt", "If", "Join", "Select", "Split", "Equals", "Not", "And", "Or",
           "Condition", "FindInMap", "Base64", "Cidr", "GetAZs", "ImportValue", "Length",
           "ToJsonString"):
    CfnLoader.add_constructor("!" + _n, _tag(_n))


def load_template(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


# ------------------------------------------------------------------ evaluation
_NOVALUE = object()


class Context:
    def __init__(self, template, params, region, account, partition, names):
        self.template = template
        self.params = params
        self.pseudo = {"AWS::Region": region, "AWS::AccountId": account,
                       "AWS::Partition": partition, "AWS::StackName": "dicom-gateway",
                       "AWS::URLSuffix": "amazonaws.com"}
        self.names = names  # resource -> {"Ref": ..., attr: ...}
        self._cond_cache = {}

    def ref(self, name):
        if name == "AWS::NoValue":
            return _NOVALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in self.names and "Ref" in self.names[name]:
            return self.names[name]["Ref"]
        raise RenderError("cannot resolve Ref %s" % name)

    def getatt(self, resource, attr):
        try:
            return self.names[resource][attr]
        except KeyError:
            raise RenderError("cannot resolve GetAtt %s.%s" % (resource, attr)) from None

    def condition(self, name):
        if name not in self._cond_cache:
            conds = self.template.get("Conditions", {})
            if name not in conds:
                raise RenderError("unknown condition %s" % name)
            value = self.eval(conds[name])
            if not isinstance(value, bool):
                raise RenderError("condition %s is not a boolean" % name)
            self._cond_cache[name] = value
        return self._cond_cache[name]

    def sub(self, arg):
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.eval(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def repl(m):
            key = m.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in variables:
                return str(variables[key])
            if "." in key:
                res, attr = key.split(".", 1)
                return str(self.getatt(res, attr))
            value = self.ref(key)
            if value is _NOVALUE or isinstance(value, list):
                raise RenderError("cannot substitute %s in a string" % key)
            return str(value)
        return re.sub(r"\$\{([^}]+)\}", repl, text)

    def eval(self, node):
        if isinstance(node, list):
            out = [self.eval(x) for x in node]
            return [x for x in out if x is not _NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                res, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(res, attr)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::If":
                name, yes, no = arg
                return self.eval(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                a, b = (self.eval(x) for x in arg)
                return a == b
            if key == "Fn::Not":
                return not self.eval(arg[0])
            if key == "Fn::And":
                return all(self.eval(x) for x in arg)
            if key == "Fn::Or":
                return any(self.eval(x) for x in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Join":
                sep, items = arg
                items = self.eval(items)
                return sep.join(str(x) for x in items)
            if key == "Fn::Select":
                idx, items = arg
                return self.eval(items)[int(self.eval(idx))]
            if key == "Fn::Split":
                sep, text = arg
                return self.eval(text).split(sep)
            if key.startswith("Fn::") or key == "Ref":
                raise RenderError("unsupported intrinsic %s in the policy" % key)
        out = {}
        for k, v in node.items():
            v = self.eval(v)
            if v is not _NOVALUE:
                out[k] = v
        return out


def _defaults(template):
    return {k: v.get("Default") for k, v in template.get("Parameters", {}).items()
            if "Default" in v}


def render(bucket, table, datastore_id, role_arn, region="us-east-1", account="123456789012",
           partition="aws", kms_key_arn=None, role="task", drop_actions=(), template=None,
           moto=False, reader_role_arn=None):
    """Return the policy document (dict) of the template's role ("task", "data-access" or
    "reader"). reader_role_arn: the reader role's ARN (default arn:...:role/dicom-core-reader)."""
    tpl = load_template(template or DEFAULT_TEMPLATE)
    if role not in ROLE_RESOURCES:
        raise RenderError("role must be one of %s" % ", ".join(ROLE_RESOURCES))
    resource = tpl.get("Resources", {}).get(ROLE_RESOURCES[role])
    if not resource:
        raise RenderError("template has no %s resource" % ROLE_RESOURCES[role])
    params = _defaults(tpl)
    params.update({"Encryption": "SSE-KMS" if kms_key_arn else "SSE-S3",
                   "KmsKeyArn": kms_key_arn or ""})
    role_name = role_arn.rsplit("/", 1)[-1]
    reader_role_arn = reader_role_arn or "arn:%s:iam::%s:role/dicom-core-reader" % (partition,
                                                                                account)
    names = {
        "ReaderRole": {"Ref": reader_role_arn.rsplit("/", 1)[-1], "Arn": reader_role_arn},
        "TaskRole": {"Ref": "dicom-core-task",
                     "Arn": "arn:%s:iam::%s:role/dicom-core-task" % (partition, account)},
        "Bucket": {"Ref": bucket, "Arn": "arn:%s:s3:::%s" % (partition, bucket)},
        "Table": {"Ref": table,
                  "Arn": "arn:%s:dynamodb:%s:%s:table/%s" % (partition, region, account, table)},
        "Datastore": {"DatastoreId": datastore_id,
                      "DatastoreArn": "arn:%s:medical-imaging:%s:%s:datastore/%s"
                                      % (partition, region, account, datastore_id)},
        "DataAccessRole": {"Ref": role_name, "Arn": role_arn},
    }
    ctx = Context(tpl, params, region, account, partition, names)
    policies = resource.get("Properties", {}).get("Policies", [])
    policies = [p for p in ctx.eval(policies) if p]
    if len(policies) != 1:
        raise RenderError("%s must have exactly one inline policy, has %d"
                          % (ROLE_RESOURCES[role], len(policies)))
    doc = copy.deepcopy(policies[0]["PolicyDocument"])
    for name, res in tpl.get("Resources", {}).items():  # policies attached to the role
        if not isinstance(res, dict) or res.get("Type") != "AWS::IAM::Policy" or \
                "Condition" in res:
            continue
        props = res.get("Properties", {})
        if {"Ref": ROLE_RESOURCES[role]} not in props.get("Roles", []):
            continue
        extra = ctx.eval(props["PolicyDocument"])
        doc["Statement"].extend(extra.get("Statement", []))
    drop = set(drop_actions)
    if drop:
        known = {a for st in doc["Statement"] for a in _as_list(st["Action"])}
        unknown = drop - known
        if unknown:
            raise RenderError("--drop-action not in the policy: %s" % ", ".join(sorted(unknown)))
        for st in doc["Statement"]:
            st["Action"] = [a for a in _as_list(st["Action"]) if a not in drop]
        doc["Statement"] = [st for st in doc["Statement"] if st["Action"]]
    if moto:
        for st in doc["Statement"]:
            services = {a.split(":", 1)[0] for a in _as_list(st["Action"])}
            if services & MOTO_UNCHECKED:
                print("task_policy: --moto: Resource of %s widened to \"*\" (moto checks no "
                      "resource for %s)" % (st.get("Sid", "?"), ", ".join(sorted(services))),
                      file=sys.stderr)
                st["Resource"] = "*"
    return doc


def _as_list(x):
    return x if isinstance(x, list) else [x]


def actions(doc):
    """Sorted list of the Allow actions of a policy document."""
    return sorted({a for st in doc["Statement"] if st.get("Effect") == "Allow"
                   for a in _as_list(st["Action"])})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--datastore-id", required=True)
    ap.add_argument("--role-arn", required=True, help="the HealthImaging data access role ARN")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--account", default="123456789012")
    ap.add_argument("--partition", default="aws")
    ap.add_argument("--kms-key-arn", default=None, help="render the SSE-KMS variant")
    ap.add_argument("--reader-role-arn", default=None, help="the HealthImaging reader role's ARN")
    ap.add_argument("--role", default="task", choices=sorted(ROLE_RESOURCES))
    ap.add_argument("--drop-action", action="append", default=[])
    ap.add_argument("--template", default=DEFAULT_TEMPLATE)
    ap.add_argument("--moto", action="store_true",
                    help="widen resources moto cannot check to \"*\" (see the header)")
    ap.add_argument("--list-actions", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    try:
        doc = render(a.bucket, a.table, a.datastore_id, a.role_arn, a.region, a.account,
                     a.partition, a.kms_key_arn, a.role, a.drop_action, a.template, a.moto,
                     a.reader_role_arn)
    except (RenderError, OSError, yaml.YAMLError) as e:
        print("task_policy: %s" % e, file=sys.stderr)
        return 2
    text = "\n".join(actions(doc)) if a.list_actions else json.dumps(doc, indent=2)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
