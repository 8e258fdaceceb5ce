/*
 * dc_config: the bucketing file (environment configuration) as an immutable,
 * reference-counted snapshot.
 *
 * A snapshot owns one APR pool holding every campaign, variation group,
 * targeting and variation, with targeting values pre-typed (dc_value_t) and
 * modification values, and each variation's entry of an answer, pre-rendered
 * as JSON text. It never changes after
 * dc_config_parse() returns, so any number of threads decide against it with
 * no lock; dc_config_ref()/dc_config_unref() keep it alive while they do.
 *
 * The parser accepts the CDN's camelCase keys and snake_case keys, ignores
 * unknown keys, and rejects a malformed file with an error naming the JSON
 * path of the problem ("campaigns[3].variationGroups[0].variations[1].
 * allocation: expected a number"), like json_error_t does for syntax.
 */
#ifndef DC_CONFIG_H
#define DC_CONFIG_H

#include "dc_hash.h"
#include "dc_semver.h"
#include "dc_value.h"

#include <apr_pools.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    DC_OP_UNKNOWN = 0, /* "NULL" or an operator this build does not know: never matches */
    DC_OP_EQUALS,
    DC_OP_NOT_EQUALS,
    DC_OP_CONTAINS,
    DC_OP_NOT_CONTAINS,
    DC_OP_GREATER_THAN,
    DC_OP_LOWER_THAN,
    DC_OP_GREATER_THAN_OR_EQUALS,
    DC_OP_LOWER_THAN_OR_EQUALS,
    DC_OP_STARTS_WITH,
    DC_OP_ENDS_WITH,
    DC_OP_EXISTS,
    DC_OP_NOT_EXISTS,
    DC_OP_SEMVER_EQUALS,
    DC_OP_SEMVER_NOT_EQUALS,
    DC_OP_SEMVER_GREATER_THAN,
    DC_OP_SEMVER_LOWER_THAN,
    DC_OP_SEMVER_GREATER_THAN_OR_EQUALS,
    DC_OP_SEMVER_LOWER_THAN_OR_EQUALS
} dc_operator_e;

const char *dc_operator_name(dc_operator_e op);
dc_operator_e dc_operator_from_name(const char *name);

typedef enum {
    DC_KEY_CONTEXT = 0, /* look the key up in the visitor context */
    DC_KEY_ALL_USERS,   /* fs_all_users: neutral, always true */
    DC_KEY_USERS,       /* fs_users: compare the visitor id */
    DC_KEY_PROVIDER     /* a third-party provider's key: never present when self-hosted */
} dc_key_kind_e;

/* A sorted copy of the strings of an EQUALS / NOT_EQUALS (dc_index.h). */
typedef struct dc_strset dc_strset_t;

/* The fields a decision reads of the snapshot's structs come first: a
 * targeting, a variation group or a campaign then costs one cache line. */
typedef struct {
    dc_operator_e op;
    dc_key_kind_e key_kind;
    uint32_t key_id;        /* DC_KEY_CONTEXT: the key's number in the snapshot (dc_index.h) */
    uint32_t tid; /* the same key, operator and value have the same number (dc_index.h) */
    const dc_strset_t *set; /* EQUALS / NOT_EQUALS on strings: their folded forms, sorted */
    const dc_semver_t *semver; /* SEMVER_* on a valid version: the value parsed (dc_index.h) */
    const char *key;
    size_t key_len;
    dc_value_t value;
} dc_targeting_t;

typedef struct {
    const dc_targeting_t *targetings;
    size_t n_targetings;
} dc_targeting_group_t;

/* One key of a variation's modifications.value, rendered once at load. */
typedef struct {
    const char *key;
    size_t key_len;
    const char *json; /* the value as JSON text */
    size_t json_len;
    int is_null;
    /* For a string value of a TEXT / HTML / IMAGE modification (served as the
     * content itself): the string, decoded; NULL otherwise. */
    const char *text;
    size_t text_len;
    int is_scalar; /* a number or a bool */
} dc_flag_t;

typedef struct {
    const char *id;
    size_t id_len;
    const char *name;
    int reference;
    double allocation;
    int has_modifications;
    const char *modifications_type;
    const dc_flag_t *flags; /* sorted by key */
    size_t n_flags;
    /* The variation's whole entry of an answer's "campaigns" array (campaign,
     * group, variation, modifications), rendered once at load:
     * [0] as shown without exposeAllKeys, [1] with it. */
    const char *campaign_json[2];
    size_t campaign_json_len[2];
} dc_variation_t;

typedef struct dc_campaign dc_campaign_t;

typedef struct {
    int everyone; /* only fs_all_users targetings: matches every visitor (dc_index.h) */
    uint32_t targeting_id; /* the same targeting groups, the same number (dc_index.h) */
    const uint32_t *program; /* the groups' targetings by tid, for a decision (dc_index.h) */
    /* With hashed: each bucket's variation (by index, DC_NO_VARIATION: none), or NULL for
     * more variations than a byte numbers: then the running sums are walked. */
    const uint8_t *variation_at;
    const dc_variation_t *variations;
    dc_hash_state_t id_hash; /* the allocation hash after the id (dc_bucket_after) */
    const dc_campaign_t *campaign;
    /* Whether the variation depends on the visitor's bucket: not when there is none, nor
     * when the first takes every bucket (dc_index.h). */
    int hashed;
    size_t n_variations;
    const double *cumulative; /* the allocation walk's running sums, in order (dc_index.h) */
    const char *id;
    size_t id_len;
    const dc_targeting_group_t *groups;
    size_t n_groups;
    const char *name;
    /* Every flag key of any variation of the group, sorted: exposeAllKeys adds
     * the ones a variation lacks as null. */
    const char *const *all_keys;
    const size_t *all_key_lens;
    size_t n_all_keys;
} dc_variation_group_t;

#define DC_NO_VARIATION 255

typedef struct {
    double from, to;
} dc_bucket_range_t;

struct dc_campaign {
    const dc_variation_group_t *groups;
    size_t n_groups;
    uint64_t buckets[2]; /* bit b: bucket b (0..99) is in a range */
    int is_ab;
    const char *id;
    const char *name;
    const char *slug; /* NULL when the file has none */
    const char *type;
    const dc_bucket_range_t *ranges;
    size_t n_ranges;
};

typedef struct dc_index dc_index_t;
typedef struct dc_config dc_config_t;
struct dc_config {
    apr_pool_t *pool;        /* its own; NULL when it lives in a block (dc_config_parse_block) */
    volatile uint32_t refs;
    /* A snapshot in a block: what gives the block back at its last reference
     * (dc_share.h), the block's bytes in use, and which publication it is. */
    void (*release)(dc_config_t *cfg);
    void *release_baton;
    size_t block_used;
    volatile uint32_t tag;
    int panic;
    int enabled_xpc;         /* accountSettings.enabledXPC */
    int enabled_1v1t;        /* accountSettings.enabled1V1T */
    int visitor_consolidation;
    int xpc;                 /* enabledXPC || visitorConsolidation */
    const dc_campaign_t *campaigns;
    size_t n_campaigns;
    const dc_index_t *index;  /* candidate campaigns by context values (dc_index.h) */
    size_t n_unknown_operators;
    char digest[17];         /* hex of a 64-bit hash of the file bytes */
    size_t source_len;
};

typedef struct {
    char path[256]; /* JSON path of the problem, "" for the document */
    char text[256];
} dc_config_error_t;

/*
 * Parses a bucketing file. On success *out holds a snapshot with one
 * reference; on failure returns -1 and fills err. Warnings (campaigns without
 * bucket ranges, fractional allocations, unknown operators, duplicate ids) go
 * to the log once, here, never per request.
 */
int dc_config_parse(const char *data, size_t len, dc_config_t **out, dc_config_error_t *err);
int dc_config_load_file(const char *path, dc_config_t **out, dc_config_error_t *err);

/* A way of making a snapshot of a file's bytes, as dc_config_parse does. */
typedef int dc_config_parse_fn(void *baton, const char *data, size_t len, dc_config_t **out,
                               dc_config_error_t *err);
/* dc_config_load_file with parse (NULL: dc_config_parse). */
int dc_config_load_file_with(const char *path, dc_config_parse_fn *parse, void *baton,
                             dc_config_t **out, dc_config_error_t *err);

/*
 * The same into a block of memory, from its start, pointers and all: for a
 * block every process maps at the same address (dc_share.h). 0 on success,
 * with no reference counted yet (refs 0), release unset and block_used set;
 * -1 when the file is invalid; 1 when the snapshot does not fit in size
 * bytes (err says so; nothing points outside the block then).
 */
int dc_config_parse_block(const char *data, size_t len, void *block, size_t size,
                          dc_config_t **out, dc_config_error_t *err);

dc_config_t *dc_config_ref(dc_config_t *cfg);
void dc_config_unref(dc_config_t *cfg);

/* Calls fn(baton, key, key_len, flag) for each key of a variation's value as
 * the exposeAllKeys rule shows it: with expose_all, every key of the group
 * (flag NULL for the ones the variation lacks); without, only its non-null
 * keys. Keys come sorted. */
typedef void dc_flag_fn(void *baton, const char *key, size_t key_len, const dc_flag_t *flag);
void dc_variation_each_flag(const dc_variation_group_t *vg, const dc_variation_t *var,
                            int expose_all, dc_flag_fn *fn, void *baton);

/* The Content-Type a modification type serves as content (IMAGE, TEXT, HTML), or NULL. */
const char *dc_modification_content_type(const char *type);

/* The first campaign whose id or slug is name, or NULL. */
const dc_campaign_t *dc_config_find_campaign(const dc_config_t *cfg, const char *name, size_t len);

/* Upper bound on a bucketing file we accept (64 MiB): a larger one is refused unread. */
#define DC_CONFIG_MAX_BYTES (64u * 1024u * 1024u)

#endif
