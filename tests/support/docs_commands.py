#!/usr/bin/env python3
"""Check and run the shell commands shown in the documentation (the convention is described in
docs/operations.md, "Commands in these documents"). Interpreter: pyenv python3.

  docs_commands.py check SRC [FILE.md ...]   every ```sh / ```bash block parses (bash -n, with
                                             <placeholders> replaced) and the first word of
                                             every command exists; default files: README.md,
                                             SECURITY.md, docs/*.md
  docs_commands.py run SRC BUILD [FILE.md ...] run each ```sh test block in a fresh copy of the
                                             repository (tracked files) with build/ -> BUILD

Prints one PASS/FAIL line per block and "N blocks checked, M run"; exits 1 on any failure.
"""
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

SHELLS = ("sh", "bash", "shell")
# our programs, as users type them once installed or on PATH
OUR_PROGRAMS = {"dicom-core", "dicom-edge", "pki"}
# tools a block is about that a CI machine need not have (checked by name only)
EXTERNAL = {"docker", "aws", "sudo", "systemctl", "journalctl", "scp", "ssh"}
KEYWORDS = {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case",
            "esac", "in", "function", "{", "}", "!", "time", "[[", "]]", "select"}
PLACEHOLDER = re.compile(r"<[A-Za-z][A-Za-z0-9 _.:/|-]*>")
FENCE = re.compile(r"^(\s*)```+\s*([A-Za-z0-9_+-]*)\s*(.*)$")


def blocks(path):
    """-> [(line number, info words, text)] of the shell blocks of a markdown file."""
    out, cur = [], None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = FENCE.match(line)
            if cur is None and m:
                lang, rest = m.group(2).lower(), m.group(3).split()
                cur = {"start": n, "lang": lang, "info": rest, "indent": len(m.group(1)),
                       "lines": []}
            elif cur is not None and line.strip().startswith("```"):
                if cur["lang"] in SHELLS:
                    text = "".join(l[cur["indent"]:] if l[:cur["indent"]].strip() == "" else l
                                   for l in cur["lines"])
                    out.append((cur["start"], cur["info"], text))
                cur = None
            elif cur is not None:
                cur["lines"].append(line)
    return out


CRON = re.compile(r"^\s*(?:[0-9*/,-]+\s+){5}(?=\S)")


def strip_substitutions(line):
    """Replace $(...) and `...` by a word; -> (line, [command texts inside]); $((...)) is
    arithmetic, not a command."""
    out, inner, i = [], [], 0
    while i < len(line):
        if line.startswith("$(", i):
            arith = line.startswith("$((", i)
            depth, j = 0, i + 1
            while j < len(line):
                if line[j] == "(":
                    depth += 1
                elif line[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            body = line[i + (3 if arith else 2):j - (1 if arith else 0)]
            if not arith:
                inner.append(body)
            else:
                inner += strip_substitutions(body)[1]
            out.append("SUBST")
            i = j + 1
            continue
        out.append(line[i])
        i += 1
    return "".join(out), inner


def commands(text):
    """First words of the simple commands of a block (heredoc bodies skipped)."""
    logical, cur, heredoc = [], "", None
    for line in text.splitlines():
        if heredoc:
            if line.strip() == heredoc:
                heredoc = None
            continue
        m = re.search(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?", line)
        if m:
            heredoc = m.group(1)
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        logical.append(cur + line)
        cur = ""
    if cur:
        logical.append(cur)
    words = []
    for line in logical:
        line = PLACEHOLDER.sub("PLACEHOLDER", line)
        line = CRON.sub("", line)  # a crontab entry: its command follows the five time fields
        line, inner = strip_substitutions(line)
        words += [w for part in inner for w in commands(part)]
        try:
            lex = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
            lex.whitespace_split = True
            lex.commenters = "#"
            toks = list(lex)
        except ValueError:
            continue
        start = True
        skip_next = False
        for_list = False  # after `for`/`select`: the variable and its word list, up to `do`
        for t in toks:
            if skip_next:
                skip_next = False
                continue
            if for_list:
                if t == "do":
                    for_list, start = False, True
                continue
            if start and t in ("for", "select"):
                for_list = True
                continue
            if t in (";", "&&", "||", "|", "&", "(", ")", ";;", "|&"):
                start = True
                continue
            if t in ("<", ">", ">>", "<<", "<<<", "2>", ">&", "<&"):
                skip_next = True
                continue
            if not start:
                continue
            if t in KEYWORDS or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", t):
                continue  # keyword or assignment: the command comes next
            if t in ("env", "exec", "command", "nohup", "timeout") or re.match(r"^-", t):
                continue
            if re.match(r"^[0-9.]+[smh]?$", t):  # timeout's duration
                continue
            words.append(t)
            start = False
    return words


def resolvable(word, src, build):
    if word.startswith("$") or word in ("PLACEHOLDER", "SUBST"):
        return True  # a variable or a placeholder the reader fills in
    if "/" in word:
        if word.startswith("./build/") or word.startswith("build/"):
            return os.path.exists(os.path.join(build, word.split("build/", 1)[1]))
        if word.startswith("/"):
            return os.path.exists(word) or os.path.basename(word) in OUR_PROGRAMS
        return os.path.exists(os.path.join(src, word))
    if word in OUR_PROGRAMS or word in EXTERNAL:
        return True
    r = subprocess.run(["bash", "-c", 'type -t -- "$1" >/dev/null', "_", word])
    return r.returncode == 0


def doc_files(src, files):
    if files:
        return files
    return [p for p in [os.path.join(src, "README.md"), os.path.join(src, "SECURITY.md")]
            + sorted(glob.glob(os.path.join(src, "docs", "*.md"))) if os.path.exists(p)]


def check(src, build, files):
    failed, n = 0, 0
    for path in doc_files(src, files):
        rel = os.path.relpath(path, src)
        for line, info, text in blocks(path):
            n += 1
            where = "%s:%d" % (rel, line)
            syntax = subprocess.run(["bash", "-n"], input=PLACEHOLDER.sub("PLACEHOLDER", text),
                                    capture_output=True, text=True)
            missing = [w for w in commands(text) if not resolvable(w, src, build)]
            if syntax.returncode != 0 or missing:
                failed += 1
                print("FAIL %s: %s%s" % (where, syntax.stderr.strip().replace("\n", "; "),
                                         (" unknown commands: " + ", ".join(missing)) if missing else ""))
            else:
                print("PASS %s parses; commands exist" % where)
    print("%d blocks checked" % n)
    return failed


def run(src, build, files):
    failed, n = 0, 0
    tracked = subprocess.run(["git", "-C", src, "ls-files", "-z"], capture_output=True)
    names = [x for x in tracked.stdout.decode().split("\0") if x] if tracked.returncode == 0 else None
    for path in doc_files(src, files):
        rel = os.path.relpath(path, src)
        for line, info, text in blocks(path):
            if "test" not in info:
                continue
            n += 1
            work = tempfile.mkdtemp(prefix="docs-cmd.")
            try:
                repo = os.path.join(work, "repo")
                if names is None:
                    shutil.copytree(src, repo, symlinks=True,
                                    ignore=shutil.ignore_patterns("build*", ".git"))
                else:
                    for name in names:
                        dst = os.path.join(repo, name)
                        os.makedirs(os.path.dirname(dst), exist_ok=True)
                        if os.path.lexists(os.path.join(src, name)):
                            shutil.copy2(os.path.join(src, name), dst, follow_symlinks=False)
                os.symlink(os.path.abspath(build), os.path.join(repo, "build"))
                env = dict(os.environ, HOME=work, TMPDIR=work)
                try:
                    r = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=repo, env=env,
                                       capture_output=True, text=True, timeout=120)
                    ok = r.returncode == 0
                    detail = "exit %d: %s" % (r.returncode, (r.stdout + r.stderr)[-2000:])
                except subprocess.TimeoutExpired:
                    ok, detail = False, "timed out after 120 s"
            finally:
                shutil.rmtree(work, ignore_errors=True)
            if ok:
                print("PASS %s:%d runs" % (rel, line))
            else:
                failed += 1
                print("FAIL %s:%d %s" % (rel, line, detail.replace("\n", "\n    ")))
    print("%d blocks run" % n)
    return failed


def main(argv):
    if len(argv) < 3 or argv[1] not in ("check", "run"):
        print(__doc__)
        return 2
    src = argv[2]
    if argv[1] == "check":
        build = os.environ.get("GW_BUILD", os.path.join(src, "build"))
        return 1 if check(src, build, argv[3:]) else 0
    if len(argv) < 4:
        print(__doc__)
        return 2
    return 1 if run(src, argv[3], argv[4:]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
