/*
 * dc_openapi: the API described — common/openapi.yaml, compiled in, served
 * under /v2/swagger/ by dc_api (both front ends):
 *
 *   GET /v2/swagger/doc.json          the OpenAPI 3.1 document as JSON, its
 *                                     "servers" the request's scheme, host and
 *                                     mount, the Prometheus path as configured
 *   GET /v2/swagger/index.html        a reference page made from it: HTML and
 *                                     CSS, no script, sent with a strict CSP;
 *                                     or, with opt.swagger_ui set, a page that
 *                                     loads the Swagger UI installed there
 *   GET /v2/swagger/reference.css     the page's style sheet
 *   GET /v2/swagger/swagger-initializer.js   starts Swagger UI on doc.json
 *   GET /v2/swagger, /v2/swagger/     301 to index.html
 *
 * Nothing is cached: each answer parses the compiled-in YAML again (about a
 * millisecond), so there is no state to share between threads or to survive
 * a module reload. These are documentation routes, not the hot path.
 */
#ifndef DC_OPENAPI_H
#define DC_OPENAPI_H

#include "dc_api.h"
#include "dc_buf.h"

#include <jansson.h>
#include <stddef.h>

/* The document's bytes (generated from common/openapi.yaml by the build). */
extern const unsigned char dc_openapi_yaml[];
extern const size_t dc_openapi_yaml_len;

/* YAML text → a jansson value (new reference), or NULL with a message in err.
 * Scalars follow YAML 1.2's core schema (null, booleans, integers, floats,
 * else strings; quoted scalars are strings); mapping keys are strings. */
json_t *dc_yaml_to_json(const char *text, size_t len, char *err, size_t err_size);

/* The compiled-in document (new reference), with servers and the Prometheus
 * path filled in for this service and request; NULL only if it does not parse. */
json_t *dc_openapi_document(const dc_service_t *svc, const char *server_url);

/* Answers GET/HEAD of /v2/swagger + sub ("", "/", "/doc.json", ...). mount
 * is the request path before its "/v2" segment (percent-encoded as sent). */
void dc_openapi_respond(const dc_service_t *svc, apr_pool_t *p, const dc_request_t *req,
                        const char *mount, const char *sub, dc_response_t *resp);

/* Whether v may name an installed Swagger UI: a path (/swagger-ui) or an
 * http(s):// URL, with nothing that would need quoting in HTML. */
int dc_openapi_ui_url_valid(const char *v);

/* The reference page of a document (HTML, no script). */
void dc_openapi_render_page(dc_buf_t *b, const json_t *doc);

#endif
