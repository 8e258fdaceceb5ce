"""A strict parser of the Prometheus text exposition format (version 0.0.4).

Stricter than scrapers on purpose, so that what it accepts any scraper
accepts: every sample belongs to a family announced by # HELP and # TYPE
before its first sample; a family's samples are contiguous; names and label
names match the format's grammar; label values use only the three escapes
(\\\\, \\", \\n); values are Go floats; no series appears twice; histograms
have ascending le buckets that never decrease, end with le="+Inf", and
_count equals that bucket. Raises PromParseError with the line number.
"""
import math
import re

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class PromParseError(ValueError):
    pass


def _float(text, lineno):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
        raise PromParseError("line %d: bad value %r" % (lineno, text))
    return float(text)


def _labels(text, lineno):
    """Parses 'a="x",b="y"' (the part inside braces); returns a tuple of pairs."""
    labels, i = [], 0
    while i < len(text):
        m = re.match(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", text[i:])
        if not m:
            raise PromParseError("line %d: bad label at %r" % (lineno, text[i:]))
        name = m.group(1)
        i += m.end()
        value = []
        while True:
            if i >= len(text):
                raise PromParseError("line %d: unterminated label value" % lineno)
            c = text[i]
            if c == "\\":
                nxt = text[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise PromParseError("line %d: bad escape \\%s" % (lineno, nxt))
                value.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise PromParseError("line %d: raw newline in label value" % lineno)
            else:
                value.append(c)
                i += 1
        if name in dict(labels):
            raise PromParseError("line %d: label %s twice" % (lineno, name))
        labels.append((name, "".join(value)))
        if i < len(text):
            if text[i] != ",":
                raise PromParseError("line %d: expected ',' in labels" % lineno)
            i += 1
    return tuple(labels)


def _family_of(sample_name, families):
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample_name[: -len(suffix)] if sample_name.endswith(suffix) else None
        if base and base in families and families[base]["type"] in ("histogram", "summary"):
            return base
    return sample_name


def parse(text):
    """Returns {family: {"type", "help", "samples": [(name, labels dict, value)]}}."""
    if text and not text.endswith("\n"):
        raise PromParseError("the exposition must end with a newline")
    families, order, current, seen_series = {}, [], None, set()
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not METRIC_NAME.match(name):
                    raise PromParseError("line %d: bad metric name %r" % (lineno, name))
                fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
                if fam["samples"]:
                    raise PromParseError("line %d: %s after its samples" % (lineno, parts[1]))
                if parts[1] == "HELP":
                    if fam["help"] is not None:
                        raise PromParseError("line %d: second HELP for %s" % (lineno, name))
                    help_text = parts[3] if len(parts) > 3 else ""
                    if re.search(r"\\[^\\n]", help_text.replace("\\\\", "")):
                        raise PromParseError("line %d: bad escape in HELP" % lineno)
                    fam["help"] = help_text
                else:
                    if fam["type"] is not None:
                        raise PromParseError("line %d: second TYPE for %s" % (lineno, name))
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise PromParseError("line %d: bad TYPE line" % lineno)
                    fam["type"] = parts[3]
                if name not in order:
                    order.append(name)
                current = name
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( (-?\d+))?\Z", line)
        if not m:
            raise PromParseError("line %d: not a sample: %r" % (lineno, line))
        name, labels, value = m.group(1), _labels(m.group(3) or "", lineno), _float(m.group(4), lineno)
        family = _family_of(name, families)
        if family not in families or families[family]["type"] is None or families[family]["help"] is None:
            raise PromParseError("line %d: %s has no # HELP and # TYPE before it" % (lineno, name))
        if family != current:
            raise PromParseError("line %d: samples of %s are not contiguous" % (lineno, family))
        key = (name, labels)
        if key in seen_series:
            raise PromParseError("line %d: series %s%s twice" % (lineno, name, dict(labels)))
        seen_series.add(key)
        if families[family]["type"] == "counter" and (value < 0 or math.isnan(value)):
            raise PromParseError("line %d: counter %s is %r" % (lineno, name, value))
        families[family]["samples"].append((name, dict(labels), value))
    for name, fam in families.items():
        if fam["type"] == "histogram":
            _check_histogram(name, fam["samples"])
    return families


def _check_histogram(name, samples):
    groups = {}
    for sample, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sample == name + "_bucket":
            if "le" not in labels:
                raise PromParseError("%s_bucket without le" % name)
            g["buckets"].append((_float(labels["le"], 0), value))
        elif sample == name + "_sum":
            g["sum"] = value
        elif sample == name + "_count":
            g["count"] = value
        else:
            raise PromParseError("%s: unexpected sample %s" % (name, sample))
    for rest, g in groups.items():
        les = [le for le, _ in g["buckets"]]
        if not les or les[-1] != math.inf:
            raise PromParseError("%s%s: no le=\"+Inf\" bucket last" % (name, dict(rest)))
        if les != sorted(les) or len(set(les)) != len(les):
            raise PromParseError("%s%s: le not strictly ascending" % (name, dict(rest)))
        counts = [c for _, c in g["buckets"]]
        if any(b < a for a, b in zip(counts, counts[1:])):
            raise PromParseError("%s%s: buckets decrease" % (name, dict(rest)))
        if g["count"] is None or g["sum"] is None or g["count"] != counts[-1]:
            raise PromParseError("%s%s: _count/_sum missing or _count != +Inf bucket" % (name, dict(rest)))


def value(families, family, sample=None, **labels):
    """The value of one series (sample name defaults to the family's)."""
    for name, lab, v in families[family]["samples"]:
        if name == (sample or family) and lab == labels:
            return v
    raise KeyError("%s%s" % (sample or family, labels))
