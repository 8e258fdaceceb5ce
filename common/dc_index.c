#include "dc_index.h"

#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

/* A set this small is walked; a bigger one is searched by halves. */
#define STRSET_WALK 8

typedef struct {
    const char *s;
    size_t len;
} str_t;

struct dc_strset {
    const str_t *items; /* folded forms, by length then bytes */
    size_t n;
};

/* String sets by tid: the EQUALS ones, then the NOT_EQUALS ones. */
typedef struct {
    uint32_t *tids;
    uint32_t n_equals, n;
} sets_t;

/* One index entry: a context key (or fs_users) and a folded string. */
typedef struct {
    const char *key;
    const char *value;
    uint32_t *campaigns; /* ascending */
    sets_t sets;         /* the string sets that hold it */
    uint32_t key_len, value_len, n_campaigns;
    uint32_t last;     /* while building: 1 + the last campaign filed */
    uint32_t last_set; /* while building: 1 + the last set's tid filed */
    int users;         /* fs_users: the visitor id, not a context key */
} entry_t;

/* The string sets on one key (a context key, or fs_users), for dc_index_seed(). */
typedef struct {
    int users;
    uint32_t key_id;
    const char *key;
    size_t key_len;
    sets_t sets;
} seed_t;

/* The SEMVER_* targetings (on a valid version) of one context key: their distinct versions
 * in order; their tids side by side (order_tids), by operator, then by version: for each
 * operator, its tids from..from+n and each one's version's rank among them. */
typedef struct {
    uint32_t key_id;
    const char *key;
    size_t key_len;
    const dc_semver_t **sorted;
    size_t n_sorted;
    struct {
        uint32_t from, n;
        uint8_t bits; /* dc_semver_op_bits() */
        const uint32_t *ranks;
    } ops[6];
    size_t n_ops;
} versions_t;

struct dc_index {
    size_t n_words;
    uint64_t *always; /* campaigns evaluated for every visitor */
    size_t n_always;
    uint64_t *by_bucket; /* [b * n_words ...]: the campaigns whose ranges hold bucket b */
    uint32_t *slots; /* 1 + an entry's number, 0 when free: open addressing */
    size_t mask;     /* slots - 1, a power of two minus one */
    entry_t *entries;
    size_t n_entries;
    str_t *keys; /* context keys with entries, for the lookup of a context */
    size_t n_keys;
    int has_users;
    str_t *read;       /* every context key a targeting reads, by key_id */
    size_t n_read;
    uint32_t *read_slots; /* 1 + key_id, 0 when free: open addressing on the key */
    size_t read_mask;
    size_t n_targetings; /* distinct ones (dc_targeting_t.tid) */
    const dc_targeting_t **by_tid; /* the first targeting of each tid */
    size_t n_group_targetings; /* distinct ones (dc_variation_group_t.targeting_id) */
    size_t n_targeting_uses, n_group_uses; /* all of them, fs_all_users and everyone aside */
    seed_t *seeds; /* the keys string sets read */
    size_t n_seeds;
    versions_t *versions; /* the keys SEMVER_* targetings compare */
    size_t n_versions;
    uint32_t *programs; /* word 0 unused: a program's offset 0 means none */
    size_t n_program_words;
    dc_walk_t walk;
};

static int str_order(const void *a, const void *b)
{
    const str_t *x = a, *y = b;

    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->s, y->s, x->len);
}

int dc_strset_has(const dc_strset_t *set, const char *s, size_t len)
{
    size_t lo = 0, hi = set->n;

    if (set->n < STRSET_WALK) {
        /* short strings of one length (country codes...): the first byte tells most apart */
        for (size_t i = 0; i < set->n; i++)
            if (set->items[i].len == len &&
                (len == 0 || (set->items[i].s[0] == s[0] && memcmp(set->items[i].s, s, len) == 0)))
                return 1;
        return 0;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const str_t *m = &set->items[mid];
        int c = m->len != len ? (m->len < len ? -1 : 1) : memcmp(m->s, s, len);

        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static int all_strings(const dc_value_t *v)
{
    if (v->n_items == 0)
        return 0;
    for (size_t i = 0; i < v->n_items; i++)
        if (v->items[i].kind != DC_KIND_STRING)
            return 0;
    return 1;
}

/* EQUALS / NOT_EQUALS a string or a list of strings: the set of their folded
 * forms, so that a visitor's string is compared by length first and the
 * generic evaluation (a call per list element) is left out. */
static void build_strset(dc_arena_t *mem, dc_targeting_t *t)
{
    const dc_value_t *v = t->value.kind == DC_KIND_LIST ? t->value.items : &t->value;
    size_t n = t->value.kind == DC_KIND_LIST ? t->value.n_items : 1;
    dc_strset_t *set;
    str_t *items;

    if ((t->op != DC_OP_EQUALS && t->op != DC_OP_NOT_EQUALS) ||
        (t->value.kind != DC_KIND_STRING && !(t->value.kind == DC_KIND_LIST && all_strings(&t->value))))
        return;
    items = dc_arena_alloc(mem, n * sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        items[i].s = v[i].folded;
        items[i].len = v[i].folded_len;
    }
    qsort(items, n, sizeof(*items), str_order);
    set = dc_arena_alloc(mem, sizeof(*set));
    set->items = items;
    set->n = n;
    t->set = set;
}

static int is_semver_op(dc_operator_e op)
{
    return op >= DC_OP_SEMVER_EQUALS && op <= DC_OP_SEMVER_LOWER_THAN_OR_EQUALS;
}

/* A SEMVER_* targeting's version, parsed once here rather than at every evaluation. */
static void build_semver(dc_arena_t *mem, dc_targeting_t *t)
{
    dc_semver_t v;

    if (!is_semver_op(t->op) || t->value.kind != DC_KIND_STRING ||
        dc_semver_parse(t->value.str, t->value.len, &v) < 0)
        return; /* evaluated as before: never a match, or a type error */
    t->semver = dc_arena_memdup(mem, &v, sizeof(v));
}

/* Whether the group's targeting is fs_all_users alone, in one targeting group or more:
 * it matches every visitor (no other key, so no type error), without evaluation. */
static int for_everyone(const dc_variation_group_t *vg)
{
    int any = 0;

    for (size_t g = 0; g < vg->n_groups; g++) {
        for (size_t i = 0; i < vg->groups[g].n_targetings; i++)
            if (vg->groups[g].targetings[i].key_kind != DC_KEY_ALL_USERS)
                return 0;
        any = any || vg->groups[g].n_targetings > 0;
    }
    return any;
}

/* EQUALS a string, or a non-empty list of strings, on a context key or fs_users. */
static int indexable(const dc_targeting_t *t)
{
    if (t->op != DC_OP_EQUALS || (t->key_kind != DC_KEY_CONTEXT && t->key_kind != DC_KEY_USERS))
        return 0;
    return t->value.kind == DC_KIND_STRING || (t->value.kind == DC_KIND_LIST && all_strings(&t->value));
}

static size_t n_strings(const dc_targeting_t *t)
{
    return t->value.kind == DC_KIND_LIST ? t->value.n_items : 1;
}

/* The targeting a group (an AND) is filed under, or NULL: the one with the fewest strings. */
static const dc_targeting_t *choose(const dc_targeting_group_t *g)
{
    const dc_targeting_t *best = NULL;

    for (size_t i = 0; i < g->n_targetings; i++) {
        const dc_targeting_t *t = &g->targetings[i];

        if (indexable(t) && (!best || n_strings(t) < n_strings(best)))
            best = t;
    }
    return best;
}

/* Whether the campaign can be found by its groups' strings (0: evaluated for everyone). */
static int campaign_indexable(const dc_campaign_t *c)
{
    for (size_t v = 0; v < c->n_groups; v++)
        for (size_t g = 0; g < c->groups[v].n_groups; g++)
            if (c->groups[v].groups[g].n_targetings > 0 && !choose(&c->groups[v].groups[g]))
                return 0;
    return 1;
}

static uint32_t hash(int users, const char *key, size_t key_len, const char *value, size_t value_len)
{
    uint32_t h = users ? 2166136261u ^ 0x55u : 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < key_len; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    h = (h ^ 0xffu) * 16777619u; /* no key byte of UTF-8 is 0xff */
    for (size_t i = 0; i < value_len; i++)
        h = (h ^ (unsigned char)value[i]) * 16777619u;
    return h;
}

/* The entry's slot (its value is 0 when the entry is not there). */
static uint32_t *find(const dc_index_t *ix, int users, const char *key, size_t key_len,
                      const char *value, size_t value_len)
{
    size_t i = hash(users, key, key_len, value, value_len) & ix->mask;

    for (;; i = (i + 1) & ix->mask) {
        const entry_t *e;

        if (!ix->slots[i])
            return &ix->slots[i];
        e = &ix->entries[ix->slots[i] - 1];
        if (e->users == users && e->key_len == key_len && e->value_len == value_len &&
            memcmp(e->value, value, value_len) == 0 && memcmp(e->key, key, key_len) == 0)
            return &ix->slots[i];
    }
}

/* The entry of string value on t's key (or fs_users), added if it is not there yet. */
static entry_t *entry_for(dc_index_t *ix, const dc_targeting_t *t, const char *value,
                          size_t value_len)
{
    int users = t->key_kind == DC_KEY_USERS;
    const char *key = users ? "" : t->key;
    size_t key_len = users ? 0 : t->key_len;
    uint32_t *slot = find(ix, users, key, key_len, value, value_len);

    if (!*slot) {
        entry_t *e = &ix->entries[ix->n_entries++];

        e->key = key;
        e->key_len = (uint32_t)key_len;
        e->users = users;
        e->value = value;
        e->value_len = (uint32_t)value_len;
        *slot = (uint32_t)ix->n_entries;
    }
    return &ix->entries[*slot - 1];
}

/* Files campaign ci under string (users, key, value): counting on pass 0, storing on pass 1. */
static void file_under(dc_index_t *ix, int pass, uint32_t ci, const dc_targeting_t *t,
                       const char *value, size_t value_len)
{
    entry_t *s = entry_for(ix, t, value, value_len);

    if (s->last == ci + 1)
        return; /* another group of the same campaign */
    s->last = ci + 1;
    if (pass == 0)
        s->n_campaigns++;
    else
        s->campaigns[s->n_campaigns++] = ci;
}

static void file_campaigns(dc_index_t *ix, const dc_config_t *cfg, int pass)
{
    for (size_t ci = 0; ci < cfg->n_campaigns; ci++) {
        const dc_campaign_t *c = &cfg->campaigns[ci];

        if (!campaign_indexable(c))
            continue;
        for (size_t v = 0; v < c->n_groups; v++) {
            for (size_t g = 0; g < c->groups[v].n_groups; g++) {
                const dc_targeting_t *t = choose(&c->groups[v].groups[g]);

                if (!t)
                    continue; /* an empty group: never matches */
                if (t->value.kind == DC_KIND_STRING)
                    file_under(ix, pass, (uint32_t)ci, t, t->value.folded, t->value.folded_len);
                else
                    for (size_t i = 0; i < t->value.n_items; i++)
                        file_under(ix, pass, (uint32_t)ci, t, t->value.items[i].folded,
                                   t->value.items[i].folded_len);
            }
        }
    }
}

/* A string set a decision's outcomes can be seeded with: the first targeting of its tid (each
 * tid is filed once), on a context key or fs_users. */
static int seedable(const dc_index_t *ix, const dc_targeting_t *t)
{
    return t->set && (t->key_kind == DC_KEY_CONTEXT || t->key_kind == DC_KEY_USERS) &&
           ix->by_tid[t->tid] == t;
}

/* Counts (pass 0) or stores (pass 1) a set's tid in a list. */
static void file_set(sets_t *sets, int pass, uint32_t tid, int equals)
{
    if (pass == 1)
        sets->tids[sets->n] = tid;
    sets->n++;
    sets->n_equals += pass == 0 && equals;
}

/* Files each string set's tid under its strings, and on its key's seed: counting on pass 0,
 * storing on pass 1. The EQUALS sets first, so that each list holds them first. */
static void file_sets(dc_index_t *ix, int pass, seed_t *by_key)
{
    for (int equals = 1; equals >= 0; equals--)
        for (size_t tid = 0; tid < ix->n_targetings; tid++) {
            const dc_targeting_t *t = ix->by_tid[tid];
            int users = t->key_kind == DC_KEY_USERS;

            if (!seedable(ix, t) || (t->op == DC_OP_EQUALS) != equals)
                continue;
            file_set(&by_key[users ? ix->n_read : t->key_id].sets, pass, (uint32_t)tid, equals);
            for (size_t i = 0; i < t->set->n; i++) {
                entry_t *e = entry_for(ix, t, t->set->items[i].s, t->set->items[i].len);

                if (e->last_set == tid + 1)
                    continue; /* a string twice in the set */
                e->last_set = (uint32_t)tid + 1;
                file_set(&e->sets, pass, (uint32_t)tid, equals);
            }
        }
}

static uint32_t *read_slot(const dc_index_t *ix, const char *key, size_t key_len)
{
    size_t i = hash(0, key, key_len, "", 0) & ix->read_mask;

    for (;; i = (i + 1) & ix->read_mask) {
        const str_t *k;

        if (!ix->read_slots[i])
            return &ix->read_slots[i];
        k = &ix->read[ix->read_slots[i] - 1];
        if (k->len == key_len && memcmp(k->s, key, key_len) == 0)
            return &ix->read_slots[i];
    }
}

static uint32_t value_hash(uint32_t h, const dc_value_t *v)
{
    h = (h ^ (uint32_t)v->kind) * 16777619u;
    switch (v->kind) {
    case DC_KIND_STRING:
        for (size_t i = 0; i < v->len; i++)
            h = (h ^ (unsigned char)v->str[i]) * 16777619u;
        break;
    case DC_KIND_NUMBER: {
        unsigned char b[sizeof(v->number)];

        memcpy(b, &v->number, sizeof(b));
        for (size_t i = 0; i < sizeof(b); i++)
            h = (h ^ b[i]) * 16777619u;
        break;
    }
    case DC_KIND_BOOL:
        h = (h ^ (uint32_t)(v->boolean != 0)) * 16777619u;
        break;
    case DC_KIND_LIST:
        for (size_t i = 0; i < v->n_items; i++)
            h = value_hash(h, &v->items[i]);
        h = (h ^ (uint32_t)v->n_items) * 16777619u;
        break;
    default:
        break;
    }
    return h;
}

/* The same value for every evaluation: same kind, same bytes (a number's bits, not its
 * equality, so 0 and -0 stay apart), same items in the same order. */
static int value_same(const dc_value_t *a, const dc_value_t *b)
{
    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case DC_KIND_STRING:
        return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    case DC_KIND_NUMBER:
        return memcmp(&a->number, &b->number, sizeof(a->number)) == 0;
    case DC_KIND_BOOL:
        return (a->boolean != 0) == (b->boolean != 0);
    case DC_KIND_LIST:
        if (a->n_items != b->n_items)
            return 0;
        for (size_t i = 0; i < a->n_items; i++)
            if (!value_same(&a->items[i], &b->items[i]))
                return 0;
        return 1;
    case DC_KIND_NULL:
        return 1;
    default:
        return a == b; /* objects: never read by an operator, but not merged either */
    }
}

/* Equal items (same()) found by hash in an open-addressing table of pointers: the first
 * such item seen, or NULL after adding this one. A table that could not be allocated
 * finds nothing, so each item is its own. */
typedef struct {
    const void **slots;
    size_t mask;
} numbering_t;

static void numbering_init(numbering_t *nb, size_t n)
{
    size_t cap = 16;

    while (cap < 2 * n)
        cap *= 2;
    nb->slots = calloc(cap, sizeof(*nb->slots));
    nb->mask = cap - 1;
}

static const void *numbering_first(numbering_t *nb, uint32_t h, const void *item,
                                   int (*same)(const void *, const void *))
{
    size_t s;

    if (!nb->slots)
        return NULL;
    for (s = h & nb->mask; nb->slots[s]; s = (s + 1) & nb->mask)
        if (same(nb->slots[s], item))
            return nb->slots[s];
    nb->slots[s] = item;
    return NULL;
}

static uint32_t targeting_hash(const dc_targeting_t *t)
{
    uint32_t h = 2166136261u;

    h = (h ^ (uint32_t)t->key_kind) * 16777619u;
    h = (h ^ (t->key_kind == DC_KEY_CONTEXT ? t->key_id : 0)) * 16777619u;
    h = (h ^ (uint32_t)t->op) * 16777619u;
    return value_hash(h, &t->value);
}

static int targeting_same(const void *x, const void *y)
{
    const dc_targeting_t *a = x, *b = y;

    return a->key_kind == b->key_kind && a->op == b->op &&
           (a->key_kind != DC_KEY_CONTEXT || a->key_id == b->key_id) &&
           value_same(&a->value, &b->value);
}

/* Calls fn with each targeting of the file but fs_all_users (never evaluated), in order. */
static void each_targeting(const dc_config_t *cfg, void (*fn)(dc_targeting_t *t, void *baton),
                           void *baton)
{
    for (size_t ci = 0; ci < cfg->n_campaigns; ci++)
        for (size_t v = 0; v < cfg->campaigns[ci].n_groups; v++)
            for (size_t g = 0; g < cfg->campaigns[ci].groups[v].n_groups; g++) {
                const dc_targeting_group_t *tg = &cfg->campaigns[ci].groups[v].groups[g];

                for (size_t i = 0; i < tg->n_targetings; i++)
                    if (tg->targetings[i].key_kind != DC_KEY_ALL_USERS)
                        fn((dc_targeting_t *)&tg->targetings[i], baton);
            }
}

typedef struct {
    dc_index_t *ix;
    numbering_t nb;
} numbering_targetings_t;

static void number_targeting(dc_targeting_t *t, void *baton)
{
    numbering_targetings_t *nt = baton;
    dc_index_t *ix = nt->ix;
    const dc_targeting_t *first;

    if (t->key_kind == DC_KEY_CONTEXT) {
        uint32_t *slot = read_slot(ix, t->key, t->key_len);

        if (!*slot) {
            ix->read[ix->n_read].s = t->key;
            ix->read[ix->n_read].len = t->key_len;
            *slot = (uint32_t)++ix->n_read;
        }
        t->key_id = *slot - 1;
    }
    ix->n_targeting_uses++;
    first = numbering_first(&nt->nb, targeting_hash(t), t, targeting_same);
    if (first) {
        t->tid = first->tid;
    } else {
        t->tid = (uint32_t)ix->n_targetings++;
        ix->by_tid[t->tid] = t;
    }
}

/* Gives every context key of a targeting its number (dc_targeting_t.key_id), and targetings
 * that read the same key with the same operator and value one number (dc_targeting_t.tid),
 * so that a decision evaluates each of them once. */
static void number_targetings(dc_arena_t *mem, dc_index_t *ix, const dc_config_t *cfg)
{
    size_t n = 0, cap = 16;
    numbering_targetings_t nt = {.ix = ix};

    for (size_t ci = 0; ci < cfg->n_campaigns; ci++)
        for (size_t v = 0; v < cfg->campaigns[ci].n_groups; v++)
            for (size_t g = 0; g < cfg->campaigns[ci].groups[v].n_groups; g++)
                n += cfg->campaigns[ci].groups[v].groups[g].n_targetings;
    while (cap < 2 * n)
        cap *= 2;
    ix->read_slots = dc_arena_calloc(mem, cap * sizeof(*ix->read_slots));
    ix->read_mask = cap - 1;
    ix->read = dc_arena_alloc(mem, (n ? n : 1) * sizeof(*ix->read));
    ix->by_tid = dc_arena_alloc(mem, (n ? n : 1) * sizeof(*ix->by_tid));
    numbering_init(&nt.nb, n);
    each_targeting(cfg, number_targeting, &nt);
    free(nt.nb.slots);
}

static uint32_t group_targeting_hash(const dc_variation_group_t *vg)
{
    uint32_t h = 2166136261u;

    for (size_t g = 0; g < vg->n_groups; g++) {
        h = (h ^ (uint32_t)vg->groups[g].n_targetings) * 16777619u;
        for (size_t i = 0; i < vg->groups[g].n_targetings; i++)
            h = (h ^ vg->groups[g].targetings[i].tid) * 16777619u;
    }
    return (h ^ (uint32_t)vg->n_groups) * 16777619u;
}

static int group_targeting_same(const void *x, const void *y)
{
    const dc_variation_group_t *a = x, *b = y;

    if (a->n_groups != b->n_groups)
        return 0;
    for (size_t g = 0; g < a->n_groups; g++) {
        if (a->groups[g].n_targetings != b->groups[g].n_targetings)
            return 0;
        for (size_t i = 0; i < a->groups[g].n_targetings; i++)
            if (a->groups[g].targetings[i].tid != b->groups[g].targetings[i].tid)
                return 0;
    }
    return 1;
}

/* The variation group's targeting as a decision evaluates it (dc_variation_group_t.program):
 * the number of groups, then each group's number of targetings and their tids, fs_all_users
 * left out (it is neutral) and empty groups too (they never match). */
static const uint32_t *build_program(dc_index_t *ix, const dc_variation_group_t *vg)
{
    size_t at = 1;
    uint32_t *p = ix->programs + ix->n_program_words;

    p[0] = 0;
    for (size_t g = 0; g < vg->n_groups; g++) {
        const dc_targeting_group_t *tg = &vg->groups[g];
        size_t head;

        if (tg->n_targetings == 0)
            continue;
        head = at++;
        p[0]++;
        p[head] = 0;
        for (size_t i = 0; i < tg->n_targetings; i++)
            if (tg->targetings[i].key_kind != DC_KEY_ALL_USERS) {
                p[at++] = tg->targetings[i].tid;
                p[head]++;
            }
    }
    ix->n_program_words += at;
    return p;
}

/* The same for variation groups: the same targetings (by tid) in the same groups, in the
 * same order, have the same match, and share a program. After number_targetings. */
static void number_group_targetings(dc_arena_t *mem, dc_index_t *ix, const dc_config_t *cfg)
{
    size_t n = 0, words = 1;
    numbering_t nb;

    for (size_t ci = 0; ci < cfg->n_campaigns; ci++)
        for (size_t v = 0; v < cfg->campaigns[ci].n_groups; v++) {
            const dc_variation_group_t *vg = &cfg->campaigns[ci].groups[v];

            n++;
            words++;
            for (size_t g = 0; g < vg->n_groups; g++)
                words += 1 + vg->groups[g].n_targetings;
        }
    /* every program in one array (the walk numbers them by offset), sized for none shared */
    ix->programs = dc_arena_alloc(mem, words * sizeof(*ix->programs));
    ix->programs[0] = 0;
    ix->n_program_words = 1;
    numbering_init(&nb, n);
    for (size_t ci = 0; ci < cfg->n_campaigns; ci++)
        for (size_t v = 0; v < cfg->campaigns[ci].n_groups; v++) {
            dc_variation_group_t *vg = (dc_variation_group_t *)&cfg->campaigns[ci].groups[v];
            const dc_variation_group_t *first;

            if (vg->everyone)
                continue; /* never evaluated */
            ix->n_group_uses++;
            first = numbering_first(&nb, group_targeting_hash(vg), vg, group_targeting_same);
            if (first) {
                vg->targeting_id = first->targeting_id;
                vg->program = first->program;
            } else {
                vg->targeting_id = (uint32_t)ix->n_group_targetings++;
                vg->program = build_program(ix, vg);
            }
        }
    free(nb.slots);
}

size_t dc_index_n_group_targetings(const dc_index_t *ix)
{
    return ix->n_group_targetings;
}

int dc_index_has_repeats(const dc_index_t *ix)
{
    return ix->n_targetings < ix->n_targeting_uses || ix->n_group_targetings < ix->n_group_uses;
}

size_t dc_index_n_targetings(const dc_index_t *ix)
{
    return ix->n_targetings;
}

const dc_targeting_t *const *dc_index_by_tid(const dc_index_t *ix)
{
    return ix->by_tid;
}

int dc_index_reads(const dc_index_t *ix, const char *key, size_t key_len)
{
    return !ix || *read_slot(ix, key, key_len) != 0;
}

size_t dc_index_n_keys(const dc_index_t *ix)
{
    return ix->n_read;
}

/* Each variation group's running sums of its allocations, summed in the
 * order dc_allocate() sums them (so compared the same way), in one array; and
 * from them each bucket's variation, for groups whose variation depends on it. */
static void sum_allocations(dc_arena_t *mem, const dc_config_t *cfg)
{
    size_t n = 0;
    double *sums;

    for (size_t ci = 0; ci < cfg->n_campaigns; ci++)
        for (size_t v = 0; v < cfg->campaigns[ci].n_groups; v++)
            n += cfg->campaigns[ci].groups[v].n_variations;
    sums = dc_arena_alloc(mem, (n ? n : 1) * sizeof(*sums));
    for (size_t ci = 0; ci < cfg->n_campaigns; ci++)
        for (size_t v = 0; v < cfg->campaigns[ci].n_groups; v++) {
            dc_variation_group_t *vg = (dc_variation_group_t *)&cfg->campaigns[ci].groups[v];
            double sum = 0;

            for (size_t i = 0; i < vg->n_variations; i++) {
                sum += vg->variations[i].allocation;
                sums[i] = sum;
            }
            vg->cumulative = sums;
            sums += vg->n_variations;
            vg->hashed = vg->n_variations > 0 && !(vg->cumulative[0] > 99);
            vg->variation_at = NULL;
            if (vg->hashed && vg->n_variations < DC_NO_VARIATION) {
                uint8_t *at = dc_arena_alloc(mem, 100);

                /* the walk itself for each bucket: an allocation may be negative */
                for (unsigned z = 0; z < 100; z++) {
                    size_t i = 0;

                    while (i < vg->n_variations && !((double)z < vg->cumulative[i]))
                        i++;
                    at[z] = i < vg->n_variations ? (uint8_t)i : DC_NO_VARIATION;
                }
                vg->variation_at = at;
            }
        }
}

/* Where a tid goes in order_tids: what a decision seeds at once, key by key. */
enum { SEEDED_SET, SEEDED_VERSION, NOT_SEEDED };

typedef struct {
    uint32_t seeded; /* SEEDED_* */
    uint32_t key;    /* key_id, fs_users after the context's keys */
    uint32_t op;     /* for a set: 0 EQUALS, 1 NOT_EQUALS */
    uint32_t tid;
    const dc_semver_t *version;
} tid_order_t;

static uint32_t seed_class(const dc_index_t *ix, const dc_targeting_t *t)
{
    if (seedable(ix, t))
        return SEEDED_SET;
    if (t->semver && t->key_kind == DC_KEY_CONTEXT)
        return SEEDED_VERSION;
    return NOT_SEEDED;
}

static int seed_order(const void *a, const void *b)
{
    const tid_order_t *x = a, *y = b;
    int c;

    if (x->seeded != y->seeded)
        return x->seeded < y->seeded ? -1 : 1;
    if (x->seeded != NOT_SEEDED && (x->key != y->key || x->op != y->op))
        return x->key != y->key ? (x->key < y->key ? -1 : 1) : (x->op < y->op ? -1 : 1);
    if (x->seeded == SEEDED_VERSION && (c = dc_semver_cmp(x->version, y->version)) != 0)
        return c;
    return x->tid < y->tid ? -1 : x->tid > y->tid;
}

static void renumber(dc_targeting_t *t, void *renumbered)
{
    t->tid = ((const uint32_t *)renumbered)[t->tid];
}

/* Numbers the tids a decision seeds together side by side, so that seeding writes a range
 * of outcomes, not one at a time: for each key, its EQUALS string sets, then its NOT_EQUALS
 * ones; then for each key its SEMVER_* targetings, by operator, then by version; then the
 * others, in the file's order. After number_targetings, before anything keeps a tid. */
static void order_tids(dc_arena_t *mem, dc_index_t *ix, const dc_config_t *cfg)
{
    size_t n = ix->n_targetings;
    tid_order_t *order = dc_arena_alloc(mem, (n ? n : 1) * sizeof(*order));
    uint32_t *renumbered = dc_arena_alloc(mem, (n ? n : 1) * sizeof(*renumbered));
    const dc_targeting_t **by_tid = dc_arena_alloc(mem, (n ? n : 1) * sizeof(*by_tid));

    for (size_t tid = 0; tid < n; tid++) {
        const dc_targeting_t *t = ix->by_tid[tid];

        order[tid].seeded = seed_class(ix, t);
        order[tid].key = t->key_kind == DC_KEY_USERS ? (uint32_t)ix->n_read : t->key_id;
        order[tid].op = order[tid].seeded == SEEDED_SET ? t->op != DC_OP_EQUALS : (uint32_t)t->op;
        order[tid].tid = (uint32_t)tid;
        order[tid].version = t->semver;
    }
    qsort(order, n, sizeof(*order), seed_order);
    for (size_t i = 0; i < n; i++) {
        renumbered[order[i].tid] = (uint32_t)i;
        by_tid[i] = ix->by_tid[order[i].tid];
    }
    each_targeting(cfg, renumber, renumbered);
    ix->by_tid = by_tid;
}

static int semver_order(const void *a, const void *b)
{
    return dc_semver_cmp(*(const dc_semver_t *const *)a, *(const dc_semver_t *const *)b);
}

/* The rank of v among the sorted versions: how many sort before it. */
static size_t semver_rank(const dc_semver_t *const *sorted, size_t n, const dc_semver_t *v)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (dc_semver_cmp(sorted[mid], v) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ix->versions: the SEMVER_* targetings of each context key, whose tids order_tids put side
 * by side, by key and operator. */
static void build_versions(dc_arena_t *mem, dc_index_t *ix)
{
    size_t tid = 0;

    while (tid < ix->n_targetings && seed_class(ix, ix->by_tid[tid]) != SEEDED_VERSION)
        tid++;
    for (size_t t = tid; t < ix->n_targetings; t++)
        if (seed_class(ix, ix->by_tid[t]) == SEEDED_VERSION &&
            (t == tid || ix->by_tid[t]->key_id != ix->by_tid[t - 1]->key_id))
            ix->n_versions++;
    ix->versions = dc_arena_calloc(mem, (ix->n_versions ? ix->n_versions : 1) * sizeof(*ix->versions));
    ix->n_versions = 0;
    while (tid < ix->n_targetings && seed_class(ix, ix->by_tid[tid]) == SEEDED_VERSION) {
        uint32_t key_id = ix->by_tid[tid]->key_id;
        versions_t *vs = &ix->versions[ix->n_versions++];
        size_t from = tid, n = 0;

        while (tid < ix->n_targetings && seed_class(ix, ix->by_tid[tid]) == SEEDED_VERSION &&
               ix->by_tid[tid]->key_id == key_id)
            tid++;
        vs->key_id = key_id;
        vs->key = ix->read[key_id].s;
        vs->key_len = ix->read[key_id].len;
        vs->sorted = dc_arena_alloc(mem, (tid - from) * sizeof(*vs->sorted));
        for (size_t t = from; t < tid; t++)
            vs->sorted[n++] = ix->by_tid[t]->semver;
        qsort(vs->sorted, n, sizeof(*vs->sorted), semver_order);
        for (size_t i = 0; i < n; i++) /* the same version once (1.0 and 1.0.0 too) */
            if (vs->n_sorted == 0 || dc_semver_cmp(vs->sorted[vs->n_sorted - 1], vs->sorted[i]) != 0)
                vs->sorted[vs->n_sorted++] = vs->sorted[i];
        for (size_t t = from; t < tid;) { /* an operator's tids: six operators at most */
            dc_operator_e op = ix->by_tid[t]->op;
            uint32_t *ranks;
            size_t at = vs->n_ops++;

            vs->ops[at].from = (uint32_t)t;
            vs->ops[at].bits = (uint8_t)dc_semver_op_bits(op);
            while (t < tid && ix->by_tid[t]->op == op)
                t++;
            vs->ops[at].n = (uint32_t)(t - vs->ops[at].from);
            ranks = dc_arena_alloc(mem, vs->ops[at].n * sizeof(*ranks));
            for (uint32_t i = 0; i < vs->ops[at].n; i++)
                ranks[i] = (uint32_t)semver_rank(vs->sorted, vs->n_sorted,
                                                 ix->by_tid[vs->ops[at].from + i]->semver);
            vs->ops[at].ranks = ranks;
        }
    }
}

/* How many of the n ranks (in order) are below r. */
static uint32_t ranks_below(const uint32_t *ranks, uint32_t n, uint32_t r)
{
    uint32_t lo = 0, hi = n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (ranks[mid] < r)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The group's allocation as thresholds (dc_walk_group_t.thresholds), for up to eight
 * variations: 0 for more. dc_allocate() gives bucket z the first variation whose running
 * sum is above z, which can only be the same or a later one for a larger z (negative
 * allocations included), so each variation's buckets are one run, in order, and the run's
 * end says them all. After sum_allocations. */
static int walk_thresholds(const dc_variation_group_t *vg, uint64_t *out)
{
    uint8_t at[100];
    uint64_t packed = 0;

    if (vg->n_variations > 8)
        return 0;
    for (unsigned z = 0; z < 100; z++) {
        size_t i = 0;

        while (i < vg->n_variations && !((double)z < vg->cumulative[i]))
            i++;
        at[z] = (uint8_t)i; /* n_variations: none */
    }
    for (unsigned i = 0; i < 8; i++) {
        uint64_t t = 127;

        if (i < vg->n_variations)
            for (t = 0; t < 100 && at[t] <= i;)
                t++;
        packed |= t << (8 * i);
    }
    *out = packed;
    return 1;
}

/* The slots of a campaign's group g (dc_walk_campaign_t.slots). */
static void walk_slots(const dc_index_t *ix, const dc_variation_group_t *vg, uint16_t *slots)
{
    const uint32_t *p = vg->program;

    if (vg->everyone) {
        slots[0] = slots[1] = (uint16_t)ix->walk.always;
    } else if (p[0] == 1 && p[1] <= 2) {
        slots[0] = (uint16_t)(p[1] > 0 ? p[2] : ix->walk.always);
        slots[1] = (uint16_t)(p[1] > 1 ? p[3] : ix->walk.always);
    } else {
        slots[0] = (uint16_t)(ix->walk.group_slots + vg->targeting_id);
        slots[1] = (uint16_t)ix->walk.always;
    }
}

/* dc_walk_t of every campaign and its groups. After the groups' everyone, programs and sums. */
static void build_walk(dc_arena_t *mem, dc_index_t *ix, const dc_config_t *cfg)
{
    size_t n = 0;
    dc_walk_t *wk = &ix->walk;
    dc_walk_campaign_t *campaigns;
    dc_walk_group_t *groups;
    const dc_variation_group_t **vgs;
    int slots_fit;

    for (size_t ci = 0; ci < cfg->n_campaigns; ci++)
        n += cfg->campaigns[ci].n_groups;
    /* on a cache line's start, so that none straddles two; one more group, for a campaign
     * without any */
    campaigns = (dc_walk_campaign_t *)(((uintptr_t)dc_arena_alloc(
                                            mem, (cfg->n_campaigns + 2) * sizeof(*campaigns)) +
                                        63) & ~(uintptr_t)63);
    groups = (dc_walk_group_t *)(((uintptr_t)dc_arena_alloc(mem, (n + 3) * sizeof(*groups)) + 63) &
                                 ~(uintptr_t)63);
    memset(groups, 0, (n + 1) * sizeof(*groups));
    vgs = dc_arena_calloc(mem, (n + 1) * sizeof(*vgs));
    wk->always = (uint32_t)ix->n_targetings;
    wk->never = wk->always + 1;
    wk->group_slots = wk->always + 2;
    wk->n_outcomes = wk->group_slots + ix->n_group_targetings;
    /* a file that repeats nothing remembers no outcome to read (dc_index_has_repeats) */
    slots_fit = wk->n_outcomes <= UINT16_MAX && dc_index_has_repeats(ix);
    n = 0;
    for (size_t ci = 0; ci < cfg->n_campaigns; ci++) {
        const dc_campaign_t *c = &cfg->campaigns[ci];
        dc_walk_campaign_t *wc = &campaigns[ci];

        memset(wc, 0, sizeof(*wc));
        wc->first = (uint32_t)n;
        wc->n_groups = (uint32_t)c->n_groups;
        wc->flags = (c->is_ab ? DC_WALK_AB : 0) | (c->n_groups > 4 || !slots_fit ? DC_WALK_GROUPS : 0);
        for (size_t g = 0; g < 4; g++)
            wc->slots[g][0] = wc->slots[g][1] = (uint16_t)wk->never;
        for (size_t v = 0; v < c->n_groups; v++, n++) {
            const dc_variation_group_t *vg = &c->groups[v];
            dc_walk_group_t *w = &groups[n];

            vgs[n] = vg;
            if (v < 4 && slots_fit)
                walk_slots(ix, vg, wc->slots[v]);
            w->variations = vg->variations;
            w->hash = vg->id_hash.h;
            w->id_len = (uint16_t)vg->id_hash.len;
            w->n_variations = (uint8_t)(vg->n_variations < 255 ? vg->n_variations : 255);
            w->program = vg->everyone ? 0 : (uint32_t)(vg->program - ix->programs);
            w->targeting_id = vg->targeting_id;
            if (!walk_thresholds(vg, &w->thresholds) || vg->id_hash.ncarry ||
                vg->id_hash.len > UINT16_MAX)
                w->flags |= DC_WALK_SLOW;
        }
    }
    wk->campaigns = campaigns;
    wk->groups = groups;
    wk->vgs = vgs;
    wk->programs = ix->programs;
}

const dc_walk_t *dc_index_walk(const dc_index_t *ix)
{
    return &ix->walk;
}

dc_index_t *dc_index_build(dc_arena_t *mem, const dc_config_t *cfg)
{
    dc_index_t *ix = dc_arena_calloc(mem, sizeof(*ix));
    size_t n_strings_total = 0, cap = 16;
    seed_t *by_key;

    sum_allocations(mem, cfg);

    ix->n_words = (cfg->n_campaigns + 63) / 64;
    ix->always = dc_arena_calloc(mem, (ix->n_words ? ix->n_words : 1) * sizeof(uint64_t));
    ix->by_bucket = dc_arena_calloc(mem, (ix->n_words ? ix->n_words : 1) * 100 * sizeof(uint64_t));
    for (size_t ci = 0; ci < cfg->n_campaigns; ci++) {
        const dc_campaign_t *c = &cfg->campaigns[ci];

        for (size_t v = 0; v < c->n_groups; v++) {
            ((dc_variation_group_t *)&c->groups[v])->everyone = for_everyone(&c->groups[v]);
            for (size_t g = 0; g < c->groups[v].n_groups; g++)
                for (size_t i = 0; i < c->groups[v].groups[g].n_targetings; i++) {
                    dc_targeting_t *t = (dc_targeting_t *)&c->groups[v].groups[g].targetings[i];

                    build_strset(mem, t);
                    build_semver(mem, t);
                    if (indexable(t))
                        n_strings_total += n_strings(t);
                }
        }
        if (!campaign_indexable(c)) {
            ix->always[ci / 64] |= (uint64_t)1 << (ci % 64);
            ix->n_always++;
        }
        for (unsigned b = 0; b < 100; b++)
            if (c->buckets[b / 64] >> (b % 64) & 1)
                ix->by_bucket[b * ix->n_words + ci / 64] |= (uint64_t)1 << (ci % 64);
    }
    number_targetings(mem, ix, cfg);
    order_tids(mem, ix, cfg);
    number_group_targetings(mem, ix, cfg);
    build_walk(mem, ix, cfg);
    build_versions(mem, ix);
    for (size_t tid = 0; tid < ix->n_targetings; tid++)
        if (seedable(ix, ix->by_tid[tid]))
            n_strings_total += ix->by_tid[tid]->set->n;
    while (cap < n_strings_total + n_strings_total / 2)
        cap *= 2;
    ix->slots = dc_arena_calloc(mem, cap * sizeof(*ix->slots));
    ix->mask = cap - 1;
    /* room for every string while counting; the snapshot keeps the distinct ones only */
    ix->entries = calloc(n_strings_total ? n_strings_total : 1, sizeof(*ix->entries));
    by_key = calloc(ix->n_read + 1, sizeof(*by_key)); /* each key's string sets */
    if (!ix->entries || !by_key) {
        free(ix->entries);
        free(by_key);
        ix->entries = NULL;
        for (size_t ci = 0; ci < cfg->n_campaigns; ci++) /* out of memory: no index */
            ix->always[ci / 64] |= (uint64_t)1 << (ci % 64);
        ix->n_always = cfg->n_campaigns;
        return ix;
    }

    /* Pass 0 counts each entry's campaigns and sets, pass 1 stores them in arrays of that
     * size. */
    file_campaigns(ix, cfg, 0);
    file_sets(ix, 0, by_key);
    {
        entry_t *all = ix->entries;

        ix->entries = dc_arena_memdup(mem, all, (ix->n_entries ? ix->n_entries : 1) * sizeof(*all));
        free(all);
    }
    for (size_t k = 0; k <= ix->n_read; k++)
        ix->n_seeds += by_key[k].sets.n > 0;
    ix->seeds = dc_arena_alloc(mem, (ix->n_seeds ? ix->n_seeds : 1) * sizeof(*ix->seeds));
    ix->n_seeds = 0;
    for (size_t k = 0; k <= ix->n_read; k++) {
        seed_t *sd = &by_key[k];

        if (!sd->sets.n)
            continue;
        sd->users = k == ix->n_read;
        sd->key_id = (uint32_t)k;
        sd->key = sd->users ? "" : ix->read[k].s;
        sd->key_len = sd->users ? 0 : ix->read[k].len;
        sd->sets.tids = dc_arena_alloc(mem, sd->sets.n * sizeof(*sd->sets.tids));
        sd->sets.n = 0;
        ix->seeds[ix->n_seeds++] = *sd;
    }
    ix->keys = dc_arena_alloc(mem, (ix->n_entries + 1) * sizeof(*ix->keys));
    for (size_t i = 0; i < ix->n_entries; i++) {
        entry_t *s = &ix->entries[i];
        size_t k;

        s->campaigns = dc_arena_alloc(mem, (s->n_campaigns ? s->n_campaigns : 1) * sizeof(*s->campaigns));
        s->sets.tids = dc_arena_alloc(mem, (s->sets.n ? s->sets.n : 1) * sizeof(*s->sets.tids));
        s->n_campaigns = 0;
        s->sets.n = 0;
        s->last = 0;
        s->last_set = 0;
        if (s->users) {
            ix->has_users = 1;
            continue;
        }
        for (k = 0; k < ix->n_keys; k++)
            if (ix->keys[k].len == s->key_len && memcmp(ix->keys[k].s, s->key, s->key_len) == 0)
                break;
        if (k == ix->n_keys) {
            ix->keys[k].s = s->key;
            ix->keys[k].len = s->key_len;
            ix->n_keys++;
        }
    }
    file_campaigns(ix, cfg, 1);
    for (size_t k = 0; k < ix->n_seeds; k++) /* pass 1 stores through by_key */
        by_key[ix->seeds[k].users ? ix->n_read : ix->seeds[k].key_id] = ix->seeds[k];
    file_sets(ix, 1, by_key);
    for (size_t k = 0; k < ix->n_seeds; k++)
        ix->seeds[k] = by_key[ix->seeds[k].users ? ix->n_read : ix->seeds[k].key_id];
    free(by_key);
    return ix;
}

size_t dc_index_words(const dc_index_t *ix)
{
    return ix->n_words;
}

size_t dc_index_n_always(const dc_index_t *ix)
{
    return ix->n_always;
}

size_t dc_index_n_entries(const dc_index_t *ix)
{
    return ix->n_entries;
}

static void probe(const dc_index_t *ix, int users, const char *key, size_t key_len,
                  const dc_value_t *v, uint64_t *bits)
{
    const uint32_t *slot;
    const entry_t *s;

    if (v->kind == DC_KIND_LIST) {
        /* EQUALS on a list in the context: any element may match */
        for (size_t i = 0; i < v->n_items; i++)
            probe(ix, users, key, key_len, &v->items[i], bits);
        return;
    }
    if (v->kind != DC_KIND_STRING)
        return; /* EQUALS a string on a number, a bool...: a type error, no match */
    slot = find(ix, users, key, key_len, v->folded, v->folded_len);
    if (!*slot)
        return;
    s = &ix->entries[*slot - 1];
    for (size_t i = 0; i < s->n_campaigns; i++)
        bits[s->campaigns[i] / 64] |= (uint64_t)1 << (s->campaigns[i] % 64);
}

void dc_index_in_bucket(const dc_index_t *ix, unsigned bucket, uint64_t *bits)
{
    const uint64_t *in = &ix->by_bucket[bucket * ix->n_words];

    for (size_t w = 0; w < ix->n_words; w++)
        bits[w] &= in[w];
}

void dc_index_candidates(const dc_index_t *ix, const dc_context_t *ctx, uint64_t *bits)
{
    memcpy(bits, ix->always, ix->n_words * sizeof(*bits));
    if (ix->n_entries == 0)
        return;
    for (size_t i = 0; i < ctx->n_entries; i++) {
        const dc_context_entry_t *e = &ctx->entries[i];

        for (size_t k = 0; k < ix->n_keys; k++) {
            if (ix->keys[k].len == e->key_len && memcmp(ix->keys[k].s, e->key, e->key_len) == 0) {
                probe(ix, 0, ix->keys[k].s, ix->keys[k].len, &e->value, bits);
                break;
            }
        }
    }
    if (ix->has_users && ctx->visitor)
        probe(ix, 1, "", 0, ctx->visitor, bits);
}

void dc_index_seed(const dc_index_t *ix, const dc_context_t *ctx, dc_lookups_t *lk)
{
    uint8_t *outcomes = lk->outcomes;

    for (size_t k = 0; k < ix->n_seeds; k++) {
        const seed_t *sd = &ix->seeds[k];
        const dc_value_t *c;
        const uint32_t *slot;

        if (sd->users) {
            c = ctx->visitor;
        } else if ((c = lk->vals[sd->key_id]) == DC_UNRESOLVED) {
            c = lk->vals[sd->key_id] = dc_context_get(ctx, sd->key, sd->key_len);
        }
        if (!c || c->kind != DC_KIND_STRING)
            continue; /* absent, a list, a type error: evaluated as they come */
        /* not in the set, unless found below: its EQUALS then its NOT_EQUALS, side by side */
        memset(outcomes + sd->sets.tids[0], DC_OUTCOME_NO_MATCH, sd->sets.n_equals);
        memset(outcomes + sd->sets.tids[0] + sd->sets.n_equals, DC_OUTCOME_MATCH,
               sd->sets.n - sd->sets.n_equals);
        slot = find(ix, sd->users, sd->key, sd->key_len, c->folded, c->folded_len);
        if (*slot) {
            const entry_t *e = &ix->entries[*slot - 1];

            for (size_t i = 0; i < e->sets.n_equals; i++)
                outcomes[e->sets.tids[i]] = DC_OUTCOME_MATCH;
            for (size_t i = e->sets.n_equals; i < e->sets.n; i++)
                outcomes[e->sets.tids[i]] = DC_OUTCOME_NO_MATCH;
        }
    }
    for (size_t k = 0; k < ix->n_versions; k++) {
        const versions_t *vs = &ix->versions[k];
        const dc_value_t *c = lk->vals[vs->key_id];
        size_t rank;
        uint32_t same;

        if (c == DC_UNRESOLVED)
            c = lk->vals[vs->key_id] = dc_context_get(ctx, vs->key, vs->key_len);
        if (!c || c->kind != DC_KIND_STRING)
            continue; /* absent, a type error: evaluated as they come */
        if (lk->semver_of != c) {
            lk->semver_of = c;
            lk->semver_ok = dc_semver_parse(c->str, c->len, &lk->semver) == 0;
        }
        if (!lk->semver_ok) { /* not a version: no SEMVER_* matches */
            memset(outcomes + vs->ops[0].from, DC_OUTCOME_NO_MATCH,
                   vs->ops[vs->n_ops - 1].from + vs->ops[vs->n_ops - 1].n - vs->ops[0].from);
            continue;
        }
        /* the visitor's version sorts after the versions ranked below rank, with rank's when
         * same, before the others; each operator's tids are in rank order */
        rank = semver_rank(vs->sorted, vs->n_sorted, &lk->semver);
        same = rank < vs->n_sorted && dc_semver_cmp(vs->sorted[rank], &lk->semver) == 0;
        for (size_t o = 0; o < vs->n_ops; o++) {
            uint8_t *at = outcomes + vs->ops[o].from;
            unsigned bits = vs->ops[o].bits;
            uint32_t n = vs->ops[o].n, below = ranks_below(vs->ops[o].ranks, n, (uint32_t)rank);
            uint32_t upto = same ? ranks_below(vs->ops[o].ranks, n, (uint32_t)rank + 1) : below;

            memset(at, DC_OUTCOME_NO_MATCH - (bits >> 2 & 1u), below);
            memset(at + below, DC_OUTCOME_NO_MATCH - (bits >> 1 & 1u), upto - below);
            memset(at + upto, DC_OUTCOME_NO_MATCH - (bits & 1u), n - upto);
        }
    }
}
