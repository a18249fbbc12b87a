#!/usr/bin/env python3
"""Reads what an audit repository (tests/support/rsyslog_lib.sh) received: one raw RFC 5424
syslog message per line, as rsyslog's %rawmsg% writes it. Standard library only.

  audit_check.py split LOG OUTDIR   check each header (PS3.15 A.6: facility 10, version 1,
                                    MSGID DICOM+RFC3881, no structured data, BOM + XML), write
                                    the XML to OUTDIR/NNNN.xml; prints the count; exit 1 on a bad
                                    header
  audit_check.py events LOG         EventID csd-code of each message, one per line
  audit_check.py types LOG          EventTypeCode csd-codes of each message (space separated)
  audit_check.py seq LOG PREFIX     I of each urn:gw-audit:PREFIX:I subject, in arrival order
  audit_check.py lost LOG           the MessagesLost count of each "audit messages lost" alert
  audit_check.py order LOG PREFIX N every I in 1..N arrived, first arrivals in order; prints
                                    "duplicates D"; exit 1 otherwise
"""
import base64
import os
import re
import sys

HDR = re.compile(rb'^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) - \xef\xbb\xbf(<\?xml .*)$')


def lines(path):
    with open(path, 'rb') as f:
        return [ln.rstrip(b'\n') for ln in f if ln.strip()]


def xml_of(line):
    m = HDR.match(line)
    return m.group(7).decode('utf-8') if m else None


def split(log, outdir):
    os.makedirs(outdir, exist_ok=True)
    bad = 0
    n = 0
    for i, ln in enumerate(lines(log)):
        m = HDR.match(ln)
        if not m:
            print('bad header in message %d: %r' % (i + 1, ln[:120]), file=sys.stderr)
            bad += 1
            continue
        pri = int(m.group(1))
        if pri // 8 != 10 or m.group(6) != b'DICOM+RFC3881' or m.group(4) == b'-':
            print('bad PRI/MSGID/APP-NAME in message %d: %r' % (i + 1, ln[:120]),
                  file=sys.stderr)
            bad += 1
        with open(os.path.join(outdir, '%04d.xml' % (i + 1)), 'wb') as f:
            f.write(m.group(7))
        n += 1
    print(n)
    return 1 if bad else 0


def events(log):
    for ln in lines(log):
        x = xml_of(ln) or ''
        m = re.search(r'<EventID csd-code="([^"]+)"', x)
        print(m.group(1) if m else '?')


def types(log):
    for ln in lines(log):
        x = xml_of(ln) or ''
        print(' '.join(re.findall(r'<EventTypeCode csd-code="([^"]+)"', x)) or '-')


def seqs(log, prefix):
    pat = re.compile(r'ParticipantObjectID="urn:gw-audit:%s:(\d+)"' % re.escape(prefix))
    out = []
    for ln in lines(log):
        m = pat.search(xml_of(ln) or '')
        if m:
            out.append(int(m.group(1)))
    return out


def lost(log):
    for ln in lines(log):
        x = xml_of(ln) or ''
        m = re.search(r'<ParticipantObjectDetail type="MessagesLost" value="([^"]*)"', x)
        if m:
            print(base64.b64decode(m.group(1)).decode())


def order(log, prefix, n):
    got = seqs(log, prefix)
    first = []
    seen = set()
    for s in got:
        if s not in seen:
            seen.add(s)
            first.append(s)
    missing = sorted(set(range(1, n + 1)) - seen)
    print('duplicates %d' % (len(got) - len(first)))
    ok = True
    if missing:
        print('missing %s' % missing[:20], file=sys.stderr)
        ok = False
    if first != sorted(first):
        print('out of order: %s' % first[:40], file=sys.stderr)
        ok = False
    return 0 if ok else 1


def main(argv):
    cmd = argv[1]
    if cmd == 'split':
        return split(argv[2], argv[3])
    if cmd == 'events':
        events(argv[2])
    elif cmd == 'types':
        types(argv[2])
    elif cmd == 'seq':
        for s in seqs(argv[2], argv[3]):
            print(s)
    elif cmd == 'lost':
        lost(argv[2])
    elif cmd == 'order':
        return order(argv[2], argv[3], int(argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
