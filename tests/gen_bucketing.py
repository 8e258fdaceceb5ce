#!/usr/bin/env python3
"""Deterministic generator of Flagship bucketing files and visitors for the
differential test against the official JS SDK (@flagship.io/js-sdk 5.2.0).

    python3 gen_bucketing.py --seed 7 --visitors 1000 --out-dir /tmp/case7
        -> /tmp/case7/bucketing.json   (CDN camelCase format)
           /tmp/case7/visitors.jsonl   (one `decision-fcgi eval` request body per line)

    python3 gen_bucketing.py --profile scale --campaigns 1000 --seed 1 --visitors 4096 --out-dir /tmp/s
        -> the same two files shaped like a big Flagship account's (see generate_scale()
           below): used by bench/scale.py, bench/bench_engine and tests/integration/test_scale.py.

Python 3 standard library only; the same seed always gives byte-identical files.

The generated files exercise: ab / toggle / perso campaigns with several variation
groups each; OR of targeting groups, AND of targetings; operators EQUALS, NOT_EQUALS,
CONTAINS, NOT_CONTAINS, GREATER_THAN, LOWER_THAN, GREATER_THAN_OR_EQUALS,
LOWER_THAN_OR_EQUALS, STARTS_WITH, ENDS_WITH, EXISTS, NOT_EXISTS on string, number and
bool context values; list targeting values; fs_all_users and fs_users (visitor id)
targetings; empty targeting groups; allocations summing to 100 or less (untracked
traffic), 0 % variations, reference variations without an `allocation` key, single
100 % variations, groups without variations; campaigns whose first matching variation
group leaves the visitor untracked.

It deliberately stays inside the region where the decision-api (which mod_decision
copies) and the JS SDK's local bucketing agree.  Every constraint below is one such
difference (spec = /work/shared/spec/DECISION-API.md §4.4; "SDK" = what was read in
node_modules/@flagship.io/js-sdk/dist, BucketingManager / DefaultStrategy / MurmurHash):

 C1  No SEMVER_* operators: the SDK has none (its evaluateOperator returns false).
 C2  Every context holds every key that any targeting uses (except the "ghost" keys of
     C5).  A missing key in the SDK: NOT_EQUALS `undefined !== v` is TRUE (server:
     false), and CONTAINS / NOT_CONTAINS / STARTS_WITH / ENDS_WITH call
     `undefined.toString()`, which throws and makes fetchFlags() give that visitor NO
     campaign at all (also the unrelated ones).
 C3  Each context key has one fixed type, and targetings on it use that type only
     (lists: homogeneous, same type).  The server errors on a type mismatch and fails
     the whole variation group; the SDK compares with JS coercion ("30" > 18 is true,
     `toString()` makes CONTAINS work on numbers).
 C4  String operators (CONTAINS, NOT_CONTAINS, STARTS_WITH, ENDS_WITH) only on string
     keys; ordering operators only on string or number keys; bools only get
     EQUALS / NOT_EQUALS / EXISTS (server: "operator not handled" error; SDK: JS
     `true > false`, `toString()`).
 C5  EXISTS / NOT_EXISTS only with value `true`: the SDK ignores the value (EXISTS =
     present and not null), the server honours it (EXISTS+false = absent).  With value
     true the two agree for present keys (EXISTS true, NOT_EXISTS false) and for absent
     keys (EXISTS false, NOT_EXISTS true), so those two operators -- and only those --
     also target "ghost" keys that no context has.
 C6  All strings (context values, targeting values, visitor ids) are lower-case ASCII:
     the server compares case-insensitively (Unicode folding / lower-casing), the SDK
     case-sensitively; ordering of non-ASCII strings (UTF-8 bytes vs UTF-16 units) also
     differs.
 C7  Visitor ids and variation group ids are ASCII: the SDK's MurmurHash reads UTF-16
     code units truncated to 8 bits, the server hashes UTF-8 bytes.
 C8  List targeting values only with EQUALS, NOT_EQUALS, CONTAINS, NOT_CONTAINS: for
     any other operator the server never matches a list, the SDK matches when any
     element does.
 C9  bucketRanges is always [[0, 100]]: the SDK ignores campaign bucket ranges; the
     server serves only the visitors whose bucket falls in a range (and none without
     ranges).
 C10 Campaign ids are unique: the server drops a repeated campaign id (first wins), the
     SDK decides every copy.
 C11 panic false, accountSettings.enabled1V1T and enabledXPC false, no
     visitorConsolidation, no troubleshooting block: the SDK's bucketing mode
     implements neither one-visitor-one-test nor experience continuity, and a
     troubleshooting window makes it queue extra hits.
 C12 Integer allocations only (a fractional one makes the decision-api reject the whole
     file; mod_decision accepts it, the SDK adds it as a float).
 C13 Context values are scalars (string / number / bool): the SDK drops list, object
     and null context values on updateContext(), the server evaluates them.
 C14 Context keys never start with `fs_` or `sdk_`, and no targeting uses such a key
     (fs_users / fs_all_users aside): the SDK injects fs_client="TypeScript",
     fs_version="5.2.0" and fs_users=<visitor id> into every visitor's context (so a
     targeting on fs_client matches in the SDK but not on the server, which only sees
     the request's context), ignores caller values for those keys and type-checks its
     predefined sdk_* keys, dropping values of the wrong type.
 C15 Targeting keys are never `fs_all_users` / `fs_users` in contexts, and fs_all_users
     targetings always use EQUALS "" (both sides treat the key as always true whatever
     the operator, but that is the shape the CDN emits).
 C16 Every variation of campaign C carries the flag key `cf_<C>`, unique to C: the
     SDK's flag map lets later campaigns override a key, so only a unique key lets
     sdk_decide.mjs cross-check its campaign list against the public flag metadata.
 C17 Number values are small integers or multiples of 0.25 (exact in binary): no
     precision surprises between JSON parsers; no -0, NaN or huge values.
 C18 Every campaign has a `variationGroups` array and every variation group a
     `targeting` object and a `variations` array (possibly empty): the SDK iterates them
     without a guard, so a missing one throws and the visitor gets NO campaign at all
     (checked: "variationGroups is not iterable"); the server just skips them.
Differences that need no constraint because both sides behave alike: OR of groups /
AND of targetings, empty targeting groups and empty `targetings` (no match), first
matching variation group wins and an untracked visitor does NOT fall through to the
next group (both drop the campaign), 0 % and missing allocations never win, empty list
values (EQUALS/CONTAINS [] false, NOT_EQUALS/NOT_CONTAINS [] true).
"""

import argparse
import json
import os
import random
import string

# ---------------------------------------------------------------- vocabulary
# C6: lower-case ASCII only.  C14: no fs_/sdk_ prefixes.
STRING_KEYS = {
    "country": ["fr", "de", "us", "es", "it", "gb", "be", "ch"],
    "plan": ["free", "pro", "team", "enterprise", "trial"],
    "browser": ["chrome", "firefox", "safari", "edge", "opera"],
    "lang": ["fr-fr", "en-us", "en-gb", "de-de", "es-es", "fr-be"],
    "email": [n + "@" + d for n in ("alice", "bob", "carol", "dave", "erin", "frank")
              for d in ("example.com", "beta.example", "corp.io", "mail.fr")],
    "page": ["/home", "/products/shoes", "/products/hats", "/checkout/cart",
             "/checkout/pay", "/account", "/blog/2024/news", ""],
    "segment": ["a", "b", "c", "ab", "abc", "b2b", "b2c", "zz"],
}
NUMBER_KEYS = {
    # (values a context may take, thresholds a targeting may use)  C17
    "age": (list(range(13, 81)), [16, 18, 21, 25, 30, 40, 50, 65]),
    "visits": (list(range(0, 60)) + [100, 250, 1000], [0, 1, 3, 5, 10, 50, 100]),
    "score": ([x / 4 for x in range(0, 41)], [0, 2.5, 5, 7.25, 7.5, 9.75, 10]),
    "cartTotal": ([0, 9.5, 19.75, 49, 99.25, 150, 499.5, 1200], [0, 20, 49, 100, 500]),
    "temperature": (list(range(-20, 41, 3)), [-10, -1, 0, 5, 20, 35]),
}
BOOL_KEYS = ["isVip", "beta", "newsletter", "mobile"]
GHOST_KEYS = ["ghostKey", "neverSet", "legacy_flag"]  # C5: in no context, EXISTS/NOT_EXISTS only

OPS_ORDER = ["GREATER_THAN", "LOWER_THAN", "GREATER_THAN_OR_EQUALS", "LOWER_THAN_OR_EQUALS"]
OPS_STR = ["CONTAINS", "NOT_CONTAINS", "STARTS_WITH", "ENDS_WITH"]
OPS_LISTABLE = {"EQUALS", "NOT_EQUALS", "CONTAINS", "NOT_CONTAINS"}  # C8
CAMPAIGN_TYPES = ["ab", "toggle", "perso"]
ID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"  # the CDN's xid ids (C7: ASCII)


def _xid(rng):
    return "".join(rng.choice(ID_ALPHABET) for _ in range(20))


def visitor_id_pool(seed, size=400):
    """ASCII lower-case visitor ids (C6, C7), shared by fs_users targetings and visitors."""
    rng = random.Random("ids-%d" % seed)
    pool = []
    for i in range(size):
        kind = rng.randrange(5)
        if kind == 0:
            vid = "user-%d" % rng.randrange(100000)
        elif kind == 1:
            vid = "v%d" % i
        elif kind == 2:
            vid = "-".join("".join(rng.choice("0123456789abcdef") for _ in range(n)) for n in (8, 4, 4, 4, 12))
        elif kind == 3:
            vid = rng.choice(["alice", "bob", "carol", "dave", "erin"]) + str(rng.randrange(1000))
        else:
            vid = "".join(rng.choice(string.ascii_lowercase + string.digits + "_.") for _ in range(rng.randrange(1, 24)))
        pool.append(vid)
    # unique, order-preserving
    return list(dict.fromkeys(pool))


# ---------------------------------------------------------------- targetings
def _substring(rng, s):
    if not s:
        return ""
    i = rng.randrange(len(s))
    j = rng.randrange(i, len(s) + 1)
    return s[i:j]


def _string_target(rng, op, vocab):
    """A scalar string targeting value for `op` on a key whose values come from vocab."""
    v = rng.choice(vocab)
    if op in ("EQUALS", "NOT_EQUALS"):
        return v if rng.random() < 0.85 else rng.choice(["xx", "zz-top", ""])
    if op in ("CONTAINS", "NOT_CONTAINS"):
        return _substring(rng, v) if rng.random() < 0.85 else rng.choice(["q", ".com", "-", "/"])
    if op == "STARTS_WITH":
        return v[: rng.randrange(0, len(v) + 1)]
    if op == "ENDS_WITH":
        return v[rng.randrange(0, len(v) + 1):] if v else ""
    # ordering: a vocabulary value or a prefix of one (lexicographic, C6)
    return v if rng.random() < 0.6 else v[: rng.randrange(0, len(v) + 1)]


def _list_of(rng, make, allow_empty=True):
    if allow_empty and rng.random() < 0.04:
        return []
    return [make() for _ in range(rng.randrange(1, 5))]


def _targeting(rng, id_pool):
    r = rng.random()
    if r < 0.07:  # fs_users: the visitor id (C15)
        op = rng.choice(["EQUALS", "EQUALS", "NOT_EQUALS", "CONTAINS", "STARTS_WITH", "ENDS_WITH",
                         "GREATER_THAN", "LOWER_THAN_OR_EQUALS"])
        if op in ("EQUALS", "NOT_EQUALS"):
            value = [rng.choice(id_pool) for _ in range(rng.randrange(1, 40))]
            if rng.random() < 0.3:
                value = value[0]
        else:
            value = _string_target(rng, op, id_pool)
        return {"operator": op, "key": "fs_users", "value": value}
    if r < 0.12:  # C5: EXISTS / NOT_EXISTS, value true only
        op = rng.choice(["EXISTS", "NOT_EXISTS"])
        pool = GHOST_KEYS if rng.random() < 0.5 else list(STRING_KEYS) + list(NUMBER_KEYS) + BOOL_KEYS
        return {"operator": op, "key": rng.choice(pool), "value": True}
    if r < 0.55:  # string key
        key = rng.choice(list(STRING_KEYS))
        vocab = STRING_KEYS[key]
        op = rng.choice(["EQUALS", "EQUALS", "NOT_EQUALS"] + OPS_STR + OPS_ORDER)
        if op in OPS_LISTABLE and rng.random() < 0.35:
            value = _list_of(rng, lambda: _string_target(rng, op, vocab))
        else:
            value = _string_target(rng, op, vocab)
        return {"operator": op, "key": key, "value": value}
    if r < 0.85:  # number key: C3/C4 no string operators
        key = rng.choice(list(NUMBER_KEYS))
        values, thresholds = NUMBER_KEYS[key]
        op = rng.choice(["EQUALS", "NOT_EQUALS"] + OPS_ORDER + OPS_ORDER)
        pick = (lambda: rng.choice(values)) if op in ("EQUALS", "NOT_EQUALS") else (lambda: rng.choice(thresholds))
        if op in OPS_LISTABLE and rng.random() < 0.4:
            value = _list_of(rng, pick)
        else:
            value = pick()
        return {"operator": op, "key": key, "value": value}
    # bool key: C4 EQUALS / NOT_EQUALS only
    key = rng.choice(BOOL_KEYS)
    op = rng.choice(["EQUALS", "NOT_EQUALS"])
    if rng.random() < 0.2:
        value = _list_of(rng, lambda: rng.random() < 0.5)
    else:
        value = rng.random() < 0.5
    return {"operator": op, "key": key, "value": value}


def _targeting_block(rng, id_pool, catch_all=False):
    if catch_all:
        return {"targetingGroups": [{"targetings": [
            {"operator": "EQUALS", "key": "fs_all_users", "value": ""}]}]}
    if rng.random() < 0.02:
        return {"targetingGroups": []}  # never matches, on both sides
    groups = []
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        if rng.random() < 0.03:
            groups.append({"targetings": []})  # an empty AND never matches
            continue
        ts = [_targeting(rng, id_pool) for _ in range(rng.choice([1, 1, 2, 2, 3]))]
        if rng.random() < 0.08:  # fs_all_users mixed into an AND is neutral
            ts.insert(rng.randrange(len(ts) + 1), {"operator": "EQUALS", "key": "fs_all_users", "value": ""})
        groups.append({"targetings": ts})
    return {"targetingGroups": groups}


# ---------------------------------------------------------------- variations
def _split(rng, total, parts):
    """`parts` non-negative integers summing to `total` (C12)."""
    cuts = sorted(rng.randint(0, total) for _ in range(parts - 1))
    return [b - a for a, b in zip([0] + cuts, cuts + [total])]


def _allocations(rng):
    """List of allocations (None = no `allocation` key at all, i.e. 0)."""
    kind = rng.choice(["single100", "single100", "split", "split", "split3", "untracked",
                       "zero_in", "ref_no_alloc", "single_partial", "all_zero", "empty", "many"])
    if kind == "single100":
        return [100]
    if kind == "split":
        a = rng.choice([50, 50, 10, 25, 33, 70, 90, 1, 99])
        return [a, 100 - a]
    if kind == "split3":
        return _split(rng, 100, 3)
    if kind == "untracked":  # sum < 100: the rest of the traffic is untracked
        return _split(rng, rng.choice([20, 50, 75, 90, 99]), rng.randrange(1, 4))
    if kind == "zero_in":
        a = rng.randrange(0, 101)
        allocs = [0, a, 100 - a]
        rng.shuffle(allocs)
        return allocs
    if kind == "ref_no_alloc":  # real CDN shape: reference with no allocation key
        return [None] + _split(rng, 100, rng.randrange(1, 4))
    if kind == "single_partial":
        return [rng.choice([0, 30, 60, 95])]
    if kind == "all_zero":
        return [0, None]
    if kind == "empty":
        return []
    return _split(rng, 100, rng.randrange(4, 8))


def _variations(rng, cid):
    allocs = _allocations(rng)
    out = []
    for i, a in enumerate(allocs):
        value = {"cf_" + cid: rng.choice([True, False, "on", "off", 1, 2.5, None, {"k": i}])}  # C16
        if rng.random() < 0.5:  # a key shared across campaigns (later campaigns override it in the SDK)
            value["shared_" + rng.choice("ab")] = i
        v = {"id": _xid(rng), "name": "variation %d" % i}
        if i == 0 and rng.random() < 0.8:
            v["reference"] = True
        elif rng.random() < 0.5:
            v["reference"] = False
        if a is not None:
            v["allocation"] = a
        v["modifications"] = {"type": rng.choice(["FLAG", "FLAG", "JSON"]), "value": value}
        out.append(v)
    return out


# ---------------------------------------------------------------- file
def generate_bucketing(seed, n_campaigns=None):
    rng = random.Random("bucketing-%d" % seed)
    id_pool = visitor_id_pool(seed)
    if n_campaigns is None:
        n_campaigns = rng.randrange(10, 21)
    campaigns = []
    for ci in range(n_campaigns):
        cid = "c%02d%s" % (ci, _xid(rng)[:10])  # C10 unique
        vgs = []
        n_vg = rng.choice([1, 1, 2, 2, 3, 4])
        for gi in range(n_vg):
            catch_all = (gi == n_vg - 1 and rng.random() < 0.3) or (n_vg == 1 and rng.random() < 0.25)
            vgs.append({
                "id": _xid(rng),
                "name": "group %d" % gi,
                "targeting": _targeting_block(rng, id_pool, catch_all=catch_all),
                "variations": _variations(rng, cid),
            })
        c = {
            "id": cid,
            "name": "campaign %d" % ci,
            "type": rng.choice(CAMPAIGN_TYPES),
            "slug": ("slug-%d" % ci) if rng.random() < 0.5 else None,
            "bucketRanges": [{"r": [0, 100]}],  # C9
            "variationGroups": vgs,
        }
        campaigns.append(c)
    return {
        "panic": False,  # C11
        "campaigns": campaigns,
        "accountSettings": {"enabledXPC": False, "enabled1V1T": False},  # C11
    }


def generate_visitors(seed, n):
    """`n` request bodies for `decision-fcgi eval`: every non-ghost key present, typed (C2, C3, C13)."""
    rng = random.Random("visitors-%d" % seed)
    id_pool = visitor_id_pool(seed)
    out = []
    for i in range(n):
        if i < len(id_pool) and rng.random() < 0.7:
            vid = id_pool[i]
        elif rng.random() < 0.3:
            vid = rng.choice(id_pool)  # a repeated id: decided independently on both sides
        else:
            vid = "vis-%d-%d" % (seed, i)
        ctx = {}
        for k, vocab in STRING_KEYS.items():
            ctx[k] = rng.choice(vocab)
        for k, (values, _) in NUMBER_KEYS.items():
            ctx[k] = rng.choice(values)
        for k in BOOL_KEYS:
            ctx[k] = rng.random() < 0.5
        out.append({"visitor_id": vid, "context": ctx, "trigger_hit": False})
    return out


# ---------------------------------------------------------------- scale profile
# A big account's file (bench/scale.py, tests/integration/test_scale.py): not used by
# the SDK differential test, so constraints C1 (SEMVER_*), C6 (mixed case: the server
# compares case-insensitively) and C9 (partial bucket ranges) do not apply.  The mix
# follows what such accounts hold: many campaigns for everyone (fs_all_users), many
# targeted on a country, a platform and an app version, allow lists of visitor ids
# (fs_users, QA and beta testers), age / VIP / plan / e-mail rules, OR of AND groups,
# several variation groups per campaign, traffic allocation by bucket ranges.
SCALE_COUNTRIES = ["FR", "DE", "US", "ES", "IT", "GB", "BE", "CH", "NL", "PT", "PL", "SE", "NO", "DK",
                   "FI", "IE", "AT", "CZ", "BR", "MX", "CA", "JP", "KR", "IN", "AU", "NZ", "ZA",
                   "AR", "CL", "CO"]
SCALE_PLATFORMS = ["ios", "android", "web", "tvos", "androidtv"]
SCALE_PLANS = ["free", "pro", "team", "enterprise", "trial"]
SCALE_DOMAINS = ["example.com", "corp.io", "mail.fr", "beta.example", "gmail.com"]


def _scale_version(rng):
    return "%d.%d.%d" % (rng.randrange(1, 8), rng.randrange(0, 20), rng.randrange(0, 10))


def _scale_targeting(rng, theme, ids):
    """One AND group of targetings around a theme."""
    ts = []
    if theme == "country":
        if rng.random() < 0.5:
            v = rng.choice(SCALE_COUNTRIES)
            ts.append({"operator": "EQUALS", "key": "country", "value": v if rng.random() < 0.5 else v.lower()})
        else:
            ts.append({"operator": "EQUALS", "key": "country", "value": rng.sample(SCALE_COUNTRIES, rng.randrange(2, 7))})
        if rng.random() < 0.4:
            ts.append({"operator": rng.choice(["GREATER_THAN_OR_EQUALS", "LOWER_THAN"]), "key": "age",
                       "value": rng.choice([18, 21, 25, 35, 50])})
    elif theme == "app":
        ts.append({"operator": "EQUALS", "key": "platform",
                   "value": rng.choice(SCALE_PLATFORMS) if rng.random() < 0.7 else rng.sample(SCALE_PLATFORMS, 2)})
        ts.append({"operator": rng.choice(["SEMVER_GREATER_THAN_OR_EQUALS", "SEMVER_LOWER_THAN",
                                           "SEMVER_EQUALS", "SEMVER_GREATER_THAN"]),
                   "key": "app_version", "value": _scale_version(rng)})
    elif theme == "users":
        n = rng.choice([5, 20, 50, 100, 250])
        ts.append({"operator": "EQUALS", "key": "fs_users", "value": rng.sample(ids, min(n, len(ids)))})
    elif theme == "vip":
        ts.append({"operator": "EQUALS", "key": "isVIP", "value": rng.random() < 0.7})
        if rng.random() < 0.5:
            ts.append({"operator": "GREATER_THAN", "key": "age", "value": rng.choice([18, 30, 40])})
    elif theme == "plan":
        op = rng.choice(["EQUALS", "NOT_EQUALS", "EQUALS"])
        ts.append({"operator": op, "key": "plan",
                   "value": rng.choice(SCALE_PLANS) if rng.random() < 0.6 else rng.sample(SCALE_PLANS, 2)})
    else:  # "email": operators that no index can serve
        op = rng.choice(["ENDS_WITH", "CONTAINS", "NOT_CONTAINS", "STARTS_WITH"])
        d = rng.choice(SCALE_DOMAINS)
        ts.append({"operator": op, "key": "email", "value": ("@" + d) if op != "STARTS_WITH" else "qa"})
    return ts


# Share of campaigns by theme (cumulative); the rest (6 %) OR two themes.
SCALE_THEMES = [(0.30, "all"), (0.52, "country"), (0.66, "app"), (0.76, "users"), (0.84, "vip"),
                (0.90, "plan"), (0.94, "email")]


def _scale_campaign(rng, ci, ids):
    cid = "s%04d%s" % (ci, _xid(rng)[:12])
    r = rng.random()
    themes = next(([t] for bound, t in SCALE_THEMES if r < bound), None)
    if themes is None:  # OR of AND groups on different themes
        themes = rng.sample(["country", "app", "users", "vip", "plan", "email"], 2)
    vgs = []
    for gi in range(rng.choice([1, 1, 2, 2, 3, 4])):
        if themes == ["all"]:
            block = {"targetingGroups": [{"targetings": [
                {"operator": "EQUALS", "key": "fs_all_users", "value": ""}]}]}
        else:
            groups = []
            for th in themes:
                ts = _scale_targeting(rng, th, ids)
                if rng.random() < 0.1:
                    ts.insert(0, {"operator": "EQUALS", "key": "fs_all_users", "value": ""})
                groups.append({"targetings": ts})
            block = {"targetingGroups": groups}
        vgs.append({"id": _xid(rng), "name": "group %d" % gi, "targeting": block,
                    "variations": _variations(rng, cid)})
    r = rng.random()
    if r < 0.65:
        ranges = [[0, 100]]
    elif r < 0.85:
        ranges = [[0, rng.choice([5, 10, 20, 25, 50])]]
    elif r < 0.95:
        a = rng.choice([0, 12.5, 25, 50])
        ranges = [[a, a + rng.choice([10, 25, 37.5, 50])]]
    else:
        ranges = [[0, 20], [50, 70]]
    return {"id": cid, "name": "campaign %d" % ci, "type": rng.choice(CAMPAIGN_TYPES),
            "slug": "slug-%d" % ci if rng.random() < 0.5 else None,
            "bucketRanges": [{"r": x} for x in ranges], "variationGroups": vgs}


def generate_scale(seed, n_campaigns=1000):
    rng = random.Random("scale-%d" % seed)
    ids = visitor_id_pool(seed, 2000)
    return {"panic": False,
            "campaigns": [_scale_campaign(rng, ci, ids) for ci in range(n_campaigns)],
            "accountSettings": {"enabledXPC": False, "enabled1V1T": False}}


def generate_scale_visitors(seed, n):
    """Contexts of a mobile / web app: the keys the targetings read, and some no targeting reads."""
    rng = random.Random("scale-visitors-%d" % seed)
    ids = visitor_id_pool(seed, 2000)
    out = []
    for i in range(n):
        vid = rng.choice(ids) if rng.random() < 0.2 else "visitor-%d-%d" % (seed, i)
        ctx = {"country": rng.choice(SCALE_COUNTRIES), "platform": rng.choice(SCALE_PLATFORMS),
               "app_version": _scale_version(rng), "age": rng.randrange(13, 80),
               "isVIP": rng.random() < 0.1, "plan": rng.choice(SCALE_PLANS),
               "email": "%s%d@%s" % (rng.choice(["qa", "alice", "Bob"]), i, rng.choice(SCALE_DOMAINS)),
               # read by no targeting: a reader should not pay for them
               "utm_source": rng.choice(["Newsletter", "Google", "Partner-ACME"]),
               "device_model": rng.choice(["iPhone15,2", "Pixel 8 Pro", "SM-S918B"]),
               "session_id": _xid(rng)}
        out.append({"visitor_id": vid, "context": ctx, "trigger_hit": False})
    return out


def write_case(out_dir, seed, n_visitors, n_campaigns=None, profile="diff"):
    os.makedirs(out_dir, exist_ok=True)
    bucketing_path = os.path.join(out_dir, "bucketing.json")
    visitors_path = os.path.join(out_dir, "visitors.jsonl")
    with open(bucketing_path, "w", encoding="ascii") as f:
        if profile == "scale":
            json.dump(generate_scale(seed, n_campaigns or 1000), f, separators=(",", ":"))
        else:
            json.dump(generate_bucketing(seed, n_campaigns), f, indent=1, sort_keys=False)
        f.write("\n")
    with open(visitors_path, "w", encoding="ascii") as f:
        gen = generate_scale_visitors if profile == "scale" else generate_visitors
        for v in gen(seed, n_visitors):
            f.write(json.dumps(v, separators=(",", ":")) + "\n")
    return bucketing_path, visitors_path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--visitors", type=int, default=1000)
    ap.add_argument("--campaigns", type=int, default=None)
    ap.add_argument("--profile", choices=["diff", "scale"], default="diff",
                    help="diff: the SDK differential test's files (default); scale: a big account's")
    ap.add_argument("--out-dir", required=True)
    a = ap.parse_args()
    b, v = write_case(a.out_dir, a.seed, a.visitors, a.campaigns, a.profile)
    print(b)
    print(v)


if __name__ == "__main__":
    main()
