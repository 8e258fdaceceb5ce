/*
 * dc_hits: the events a decision produces, in the Flagship data-collection
 * format (spec/DECISION-API.md section 7): a CAMPAIGN hit per activation and
 * a SEGMENT hit carrying the visitor context, whose values are rendered the
 * way Go's %v prints them (30, 0.15, 1e+06, [a 1], map[k:1], <nil>) so the
 * collector sees what it sees from the decision-api.
 */
#ifndef DC_HITS_H
#define DC_HITS_H

#include "dc_api.h"
#include "dc_engine.h"

#include <jansson.h>

/* CAMPAIGN: {"t":"CAMPAIGN","cid","vid","cuid"?,"caid","vaid","qa"} (qt added when sent). */
void dc_hit_campaign(apr_pool_t *p, dc_hit_t *out, const char *env_id, const char *vid,
                     size_t vid_len, const char *cuid, size_t cuid_len, const char *caid,
                     size_t caid_len, const char *vaid, size_t vaid_len, int qa, int64_t qt_base,
                     int64_t received_ms);

/* The CAMPAIGN hits of a visitor's n decisions into out[0..n) (qa false, no qt_base): the
 * same as a dc_hit_campaign() each, the visitor's ids escaped once and the hits in one
 * allocation. */
void dc_hits_campaigns(apr_pool_t *p, dc_hit_t *out, const char *env_id, const char *vid,
                       size_t vid_len, const char *cuid, size_t cuid_len,
                       const dc_decision_t *decisions, size_t n, int64_t received_ms);

/* SEGMENT: {"t":"SEGMENT","cid","vid","cuid"?,"s":{key: string}}. */
void dc_hit_segment(apr_pool_t *p, dc_hit_t *out, const char *env_id, const char *vid,
                    size_t vid_len, const char *cuid, size_t cuid_len, const json_t *context,
                    int64_t received_ms);

/* Go's %v of a JSON value, appended to a dc_buf_t. */
void dc_hits_put_go_value(void *dc_buf, const json_t *v);

/* The batch envelope the collector takes: {"t":"BATCH","ds":"APP","h":[...],"cv":{...}}. */
const char *dc_hits_batch_open(void);
const char *dc_hits_batch_close(void);

#endif
