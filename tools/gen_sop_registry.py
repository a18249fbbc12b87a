#!/usr/bin/python3
"""Generate core/common/sop_registry.c, the table of every Storage SOP Class of the DICOM standard.

Sources:
  * the UID registry of PS3.6 Table A-1 as pydicom ships it (pydicom._uid_dict; Debian 12's
    python3-pydicom 2.3.1 carries the 2022a edition), and
  * tools/sop_registry_supplement.tsv: storage classes the standard added after that edition.

A registry entry is a Storage SOP Class (PS3.4 Annex B and the storage-like service classes that
also move instances with C-STORE: hanging protocols, color palettes, implant templates, the RT
delivery instructions, the retired print storage classes) when its type is "SOP Class" and its
name, without a trailing "SOP Class" and "(Retired)", ends in "Storage", "Storage - For
Presentation", "Storage - For Processing" or "Storage - Trial". Storage Commitment, Storage
Management and Media Storage Directory Storage (the DICOMDIR, never sent with C-STORE) are not.

The output is sorted by UID in byte order (the C side binary-searches it with strcmp) and depends
only on the two inputs, so running this twice gives the same file.

Usage: /usr/bin/python3 tools/gen_sop_registry.py [--output FILE] [--supplement FILE] [--check]
"""

import argparse
import os
import re
import sys

COMMAND = "/usr/bin/python3 tools/gen_sop_registry.py"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUTPUT = os.path.join(ROOT, "core", "common", "sop_registry.c")
DEFAULT_SUPPLEMENT = os.path.join(ROOT, "tools", "sop_registry_supplement.tsv")

UID_MAX = 64  # PS3.5 9.1
UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")
STORAGE_RE = re.compile(r"Storage( - (For Presentation|For Processing|Trial))?$")
NOT_STORAGE_PREFIXES = ("Storage Commitment", "Storage Management", "Media Storage Directory")
RETIRED_SUFFIX = " (Retired)"
LINE_MAX = 100


class InputError(Exception):
    pass


def strip_retired(name):
    while name.endswith(RETIRED_SUFFIX):
        name = name[: -len(RETIRED_SUFFIX)]
    return name


def is_storage_name(name):
    base = strip_retired(name)
    if base.endswith(" SOP Class"):
        base = base[: -len(" SOP Class")]
    if base.startswith(NOT_STORAGE_PREFIXES):
        return False
    return STORAGE_RE.search(base) is not None


def check_uid(uid, where):
    if len(uid) > UID_MAX or not UID_RE.match(uid):
        raise InputError("%s: not a valid UID: %r" % (where, uid))


def check_name(name, where):
    if not name or any(c in name for c in '"\\') or not all(" " <= c <= "~" for c in name):
        raise InputError("%s: name must be non-empty printable ASCII without quotes: %r"
                         % (where, name))


def load_pydicom():
    """Storage classes of pydicom's UID dictionary: ({uid: (name, retired)}, version)."""
    try:
        import pydicom
        from pydicom._uid_dict import UID_dictionary
    except ImportError as e:
        raise InputError("pydicom is needed (Debian: apt-get install python3-pydicom; run with "
                         "/usr/bin/python3): %s" % e)
    out = {}
    for uid, entry in UID_dictionary.items():
        name, uid_type, _info, retired = entry[0], entry[1], entry[2], entry[3]
        if uid_type != "SOP Class" or not is_storage_name(name):
            continue
        where = "pydicom UID dictionary, %s" % uid
        check_uid(uid, where)
        check_name(name, where)
        out[uid] = (strip_retired(name), retired == "Retired" or name.endswith(RETIRED_SUFFIX))
    return out, pydicom.__version__


def load_supplement(path):
    """Rows of the supplement file: [(uid, name, retired)], in file order."""
    rows = []
    seen = set()
    shown = os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            where = "%s:%d" % (shown, lineno)
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 3:
                raise InputError("%s: expected uid<TAB>name<TAB>retired(0/1)" % where)
            uid, name, retired = cols
            check_uid(uid, where)
            check_name(name, where)
            if strip_retired(name) != name:
                raise InputError("%s: write the name without (Retired); use the flag" % where)
            if retired not in ("0", "1"):
                raise InputError("%s: retired must be 0 or 1, got %r" % (where, retired))
            if uid in seen:
                raise InputError("%s: duplicate UID %s" % (where, uid))
            seen.add(uid)
            rows.append((uid, name, retired == "1"))
    return rows


def merge(base, supplement):
    """The supplement is the newer, reviewed data: it wins, but a clash is reported."""
    table = dict(base)
    added = 0
    for uid, name, retired in supplement:
        if uid in table:
            if table[uid] != (name, retired):
                print("gen_sop_registry: %s: supplement %r overrides pydicom %r"
                      % (uid, (name, retired), table[uid]), file=sys.stderr)
        else:
            added += 1
        table[uid] = (name, retired)
    return table, added


def c_entry(uid, name, retired):
    flag = "true" if retired else "false"
    one = '    {"%s", "%s", %s},' % (uid, name, flag)
    if len(one) <= LINE_MAX:
        return one
    return '    {"%s",\n     "%s", %s},' % (uid, name, flag)


def render(table, pydicom_version, n_pydicom, n_supplement):
    rows = sorted(table.items(), key=lambda kv: kv[0].encode("ascii"))
    n_retired = sum(1 for _uid, (_name, retired) in rows if retired)
    display = [(uid, name + (RETIRED_SUFFIX if retired else ""), retired)
               for uid, (name, retired) in rows]
    out = []
    out.append("""\
/* sop_registry: every Storage SOP Class of the DICOM standard (PS3.4 Annex B; UIDs and names
 * from the PS3.6 Table A-1 registry), sorted by UID in byte order for binary search.
 *
 * GENERATED FILE, DO NOT EDIT. Regenerate from the repository root with:
 *     %s
 * Inputs: the UID dictionary of pydicom %s (%d storage classes) and
 * tools/sop_registry_supplement.tsv (%d more, added to the standard since).
 * %d classes: %d current, %d retired.
 */
#include "sop_registry.h"

#include <string.h>

/* clang-format off */
static const struct sop_class g_sop[] = {"""
               % (COMMAND, pydicom_version, n_pydicom, n_supplement, len(rows),
                  len(rows) - n_retired, n_retired))
    for uid, name, retired in display:
        out.append(c_entry(uid, name, retired))
    out.append("""\
};
/* clang-format on */

#define SOP_COUNT (sizeof(g_sop) / sizeof(g_sop[0]))

const struct sop_class *sop_registry_find(const char *uid)
{
    if (uid == NULL) {
        return NULL;
    }
    size_t lo = 0;
    size_t hi = SOP_COUNT;
    while (lo < hi) { /* invariant: a match, if any, is in [lo, hi) */
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(uid, g_sop[mid].uid); /* unsigned byte order, as the table is sorted */
        if (c == 0) {
            return &g_sop[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

size_t sop_registry_count(void)
{
    return SOP_COUNT;
}

const struct sop_class *sop_registry_at(size_t i)
{
    return i < SOP_COUNT ? &g_sop[i] : NULL;
}
""")
    return "\n".join(out)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", default=DEFAULT_OUTPUT, help="C file to write")
    ap.add_argument("--supplement", default=DEFAULT_SUPPLEMENT, help="supplement TSV")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if the output file is not up to date")
    args = ap.parse_args(argv)
    try:
        base, version = load_pydicom()
        supplement = load_supplement(args.supplement)
    except (InputError, OSError) as e:
        print("gen_sop_registry: %s" % e, file=sys.stderr)
        return 2
    table, added = merge(base, supplement)
    text = render(table, version, len(base), added)
    try:
        with open(args.output, encoding="utf-8") as f:
            current = f.read()
    except FileNotFoundError:
        current = None
    if args.check:
        if current != text:
            print("gen_sop_registry: %s is stale; run %s" % (args.output, COMMAND),
                  file=sys.stderr)
            return 1
        return 0
    if current != text:
        tmp = args.output + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, args.output)
    print("gen_sop_registry: %d storage classes (%d from pydicom %s, %d from the supplement)"
          % (len(table), len(base), version, added), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
