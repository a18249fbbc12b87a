#!/usr/bin/env python3
"""The layer rule (STYLE.md section 1, DESIGN.md "Layers", docs/architecture.md), checked from the
sources: every `#include "..."` in core/, edge/ and forwarder/ is resolved to a file of the tree,
and the directory it lives in must be one the including directory may use. Modules (foo.c +
foo.h + foo_int.h, and every file that includes foo_int.h) must not include each other in a
circle either.

  check_layers.py [SRC]      prints one line per violation; exit 1 if any, else 0

Layers, lowest first (a layer uses only itself and those listed for it):
  common    core/common                       pure code
  net       core/net                          libuv, OpenSSL, PROXY v2, metrics
  spool     core/spool                        the on-disk format, the backend interface
  audit     core/audit                        DICOM audit messages, syslog transport
  scp       core/*.c (not main*.c)            upper layer, DIMSE services
  edge      edge/*.c (not main.c)             mTLS terminator, policy, proxy
  aws       forwarder/aws                     AWS clients (HTTP, SigV4, S3, DynamoDB, ...)
  backend   core/backend_file, forwarder/*.c  the file and aws backends
  program   core/main*.c, edge/main.c, forwarder/tool_*.c
"""
import os
import re
import sys

MAY_USE = {
    "common": {"common"},
    "net": {"common", "net"},
    "spool": {"common", "net", "spool"},
    "audit": {"common", "net", "audit"},
    "scp": {"common", "net", "spool", "audit", "scp"},
    "edge": {"common", "net", "audit", "edge"},
    "aws": {"common", "net", "aws"},
    "backend": {"common", "net", "spool", "aws", "backend"},
    "program": {"common", "net", "spool", "audit", "scp", "edge", "aws", "backend", "program"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(rel):
    parts = rel.split("/")
    name = parts[-1]
    if parts[0] == "core":
        if len(parts) == 2:
            return "program" if name.startswith("main") else "scp"
        sub = parts[1]
        if sub == "backend_file":
            return "backend"
        return sub if sub in MAY_USE else None
    if parts[0] == "edge":
        return "program" if name == "main.c" else "edge"
    if parts[0] == "forwarder":
        if len(parts) > 2 and parts[1] == "aws":
            return "aws"
        return "program" if name.startswith("tool_") else "backend"
    return None


def resolve(src, rel, inc):
    """The tree file an include names: its own directory first, then the include roots."""
    here = os.path.dirname(rel)
    for base in (here, "core", "", "edge", "forwarder", "forwarder/aws"):
        cand = os.path.normpath(os.path.join(base, inc))
        if os.path.isfile(os.path.join(src, cand)):
            return cand
    return None


GROUP = {}  # file stem -> module, for the files of a module split by job (they share X_int.h)


def module_of(rel):
    stem = os.path.splitext(rel)[0]
    if stem.endswith("_int"):
        return stem[:-4]
    return GROUP.get(stem, stem)


def main():
    src = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                          os.path.join(os.path.dirname(__file__), "..", ".."))
    problems = []
    edges = {}
    # a module split along its jobs is one module: every file that includes X_int.h (a .c, or the
    # header of one of its parts) is part of X (STYLE.md section 2: helpers shared between a module's own files
    # go in foo_int.h); circles inside it are its own business, circles between modules are not
    for top in ("core", "edge", "forwarder"):
        for root, _, files in os.walk(os.path.join(src, top)):
            for f in files:
                if not f.endswith((".c", ".h")) or f.endswith("_int.h"):
                    continue
                rel = os.path.relpath(os.path.join(root, f), src)
                with open(os.path.join(src, rel), encoding="utf-8", errors="replace") as fh:
                    for inc in INCLUDE.findall(fh.read()):
                        target = resolve(src, rel, inc)
                        if target and target.endswith("_int.h"):
                            GROUP[os.path.splitext(rel)[0]] = target[:-6]
    for top in ("core", "edge", "forwarder"):
        for root, _, files in os.walk(os.path.join(src, top)):
            for f in files:
                if not f.endswith((".c", ".h")):
                    continue
                rel = os.path.relpath(os.path.join(root, f), src)
                lay = layer_of(rel)
                if lay is None:
                    problems.append(f"{rel}: in no layer (add its directory to the table)")
                    continue
                with open(os.path.join(src, rel), encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
                for inc in INCLUDE.findall(text):
                    target = resolve(src, rel, inc)
                    if target is None:
                        problems.append(f'{rel}: #include "{inc}" names no file of the tree')
                        continue
                    tl = layer_of(target)
                    if tl is None or tl not in MAY_USE[lay]:
                        problems.append(f'{rel} ({lay}) includes {target} ({tl}): not allowed')
                    a, b = module_of(rel), module_of(target)
                    if a != b:
                        edges.setdefault(a, set()).add(b)
    # circles between modules (Tarjan's strongly connected components)
    index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    for comp in sccs:
        problems.append("modules include each other in a circle: " + " <-> ".join(comp))
    for p in problems:
        print(p)
    print(f"{len(problems)} layer problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
