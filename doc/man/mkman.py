#!/usr/bin/python3
"""Writes a manual page from its template and the one source of its reference part.

    mkman.py fcgi   TEMPLATE VERSION DECISION_FCGI    > decision-fcgi.8
    mkman.py module TEMPLATE VERSION mod_decision.c   > mod_decision.8

decision-fcgi(8): the settings and the usage of each command are what the built
program's --help prints (`decision-fcgi --help`, `decision-fcgi ship --help`),
which come from the settings table in common/dc_settings.c and the usage
functions in fcgi/. mod_decision(8): the directives are the module's command
table (mod_decision/mod_decision.c, `static const command_rec ...[]`), the same
entries and one-line descriptions `apache2 -L` shows, with the context httpd
derives from each entry's scope. So a page cannot disagree with --help or -L;
tests/integration/test_man.py checks both ways.

The template is the page's prose in roff, with marker lines (@SYNOPSIS@,
@SETTINGS@, @EVAL@, @SHIP@, @DIRECTIVES@) replaced, and @VERSION@ anywhere.
"""
import os
import re
import subprocess
import sys


def roff(text):
    """Text for a roff line: backslashes escaped, no leading control character."""
    text = text.replace("\\", "\\e")
    return "\\&" + text if text[:1] in (".", "'") else text


def literal(lines):
    return [".nf"] + [roff(line) for line in lines] + [".fi"]


def run(args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        sys.exit("mkman: %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p.stdout + p.stderr


# ---- decision-fcgi --------------------------------------------------------------------------

def split_help(text, program):
    """--help's text → (usage lines, settings [(env, yaml, meaning, default)], eval usage lines)."""
    text = text.replace(program, "decision-fcgi")
    lines = text.splitlines()
    try:
        start = next(i for i, l in enumerate(lines) if l.startswith("Settings ("))
        eval_start = next(i for i, l in enumerate(lines) if l.startswith("usage: decision-fcgi eval"))
    except StopIteration:
        sys.exit("mkman: --help has no Settings section or eval usage")
    usage = lines[:start]
    while usage and not usage[-1].strip():
        usage.pop()
    settings = []
    i = start + 1
    while i < eval_start:
        m = re.match(r"^  (\S+)\s+(\S+)$", lines[i])
        if not m:
            i += 1
            continue
        meaning = lines[i + 1].strip()
        default = None
        d = re.search(r" \[default: (.*)\]$", meaning)
        if d:
            default, meaning = d.group(1), meaning[:d.start()]
        settings.append((m.group(1), m.group(2), meaning, default))
        i += 2
    return usage, settings, lines[eval_start:]


def settings_roff(settings):
    out = [".ad l"]  # left-aligned: long defaults (header lists) cannot be justified
    for env, yaml, meaning, default in settings:
        out += [".TP", ".B %s" % env]
        out.append("config file: \\fI%s\\fR" % roff(yaml))
        out.append(".br")
        out.append(roff(meaning[:1].upper() + meaning[1:] + ("" if meaning.endswith(".") else ".")))
        if default is not None:
            # a break point after each comma: a long list of names would not fit a line
            out.append("Default: \\fB%s\\fR." % roff(default).replace(",", ",\\:"))
    return out + [".ad b"]


def fcgi_page(template, version, program):
    usage, settings, eval_usage = split_help(run([program, "--help"]), program)
    ship = run([program, "ship", "--help"]).replace(program, "decision-fcgi").splitlines()
    if not settings:
        sys.exit("mkman: no settings in --help")
    parts = {"@SYNOPSIS@": literal(usage), "@SETTINGS@": settings_roff(settings),
             "@EVAL@": literal(eval_usage), "@SHIP@": literal(ship)}
    return fill(template, version, parts)


# ---- mod_decision ---------------------------------------------------------------------------

ARGS = {"FLAG": "On|Off", "TAKE1": "value", "TAKE2": "value value", "ITERATE": "value ...",
        "RAW_ARGS": "arguments", "TAKE12": "value [value]", "NO_ARGS": ""}
SCOPES = {"RSRC_CONF": "server config, virtual host",
          "OR_OPTIONS": "server config, virtual host, directory, .htaccess (Options)",
          "ACCESS_CONF": "directory", "OR_ALL": "server config, virtual host, directory, .htaccess",
          "OR_FILEINFO": "server config, virtual host, directory, .htaccess (FileInfo)"}


def directives(source):
    """The command table's entries: (name, kind, scope, description)."""
    with open(source) as f:
        text = f.read()
    table = re.search(r"static const command_rec \w+\[\] = \{(.*?)\n\};", text, re.S)
    if not table:
        sys.exit("mkman: no command_rec table in %s" % source)
    entry = re.compile(r'AP_INIT_(\w+)\(\s*"(\w+)"\s*,\s*\w+\s*,\s*\w+\s*,\s*([\w| ]+?)\s*,'
                       r'\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\)', re.S)
    found = []
    for m in entry.finditer(table.group(1)):
        kind, name, scope, desc = m.groups()
        desc = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', desc))
        found.append((name, kind, scope.strip(), bytes(desc, "utf-8").decode("unicode_escape")))
    if len(found) != table.group(1).count("AP_INIT_"):
        sys.exit("mkman: could not read every AP_INIT_ entry of %s" % source)
    return found


def directives_roff(entries):
    out = []
    for name, kind, scope, desc in entries:
        if kind not in ARGS or scope not in SCOPES:
            sys.exit("mkman: %s: add %s / %s to mkman.py's tables" % (name, kind, scope))
        out += [".TP", ".B %s%s" % (name, (" \\fI%s\\fR" % ARGS[kind]) if ARGS[kind] else "")]
        out.append(roff(desc[:1].upper() + desc[1:] + ("" if desc.endswith(".") else ".")))
        out.append(".br")
        out.append("Context: %s." % SCOPES[scope])
    return out


def module_page(template, version, source):
    entries = directives(source)
    if not entries:
        sys.exit("mkman: no directives in %s" % source)
    return fill(template, version, {"@DIRECTIVES@": directives_roff(entries)})


def fill(template, version, parts):
    with open(template) as f:
        text = f.read().replace("@VERSION@", version)
    out = []
    for line in text.splitlines():
        if line.strip() in parts:
            out += parts.pop(line.strip())
        else:
            out.append(line)
    if parts:
        sys.exit("mkman: %s has no %s line" % (template, ", ".join(parts)))
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("fcgi", "module"):
        sys.exit(__doc__)
    kind, template, version, source = sys.argv[1:]
    page = fcgi_page(template, version, source) if kind == "fcgi" else \
        module_page(template, version, source)
    sys.stdout.write(page)


if __name__ == "__main__":
    main()
