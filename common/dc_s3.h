/*
 * dc_s3: Amazon S3 (and S3-compatible servers) for the event sink
 * (dc_objstore.h).
 *
 *     s3://BUCKET[/PREFIX][?region=R&endpoint=URL&profile=P&server=NAME&max_object_bytes=N]
 *
 * Credentials, region and endpoint come from dc_aws (the SDKs' chain:
 * environment, shared files, container endpoint, EC2 IMDSv2; region=
 * and endpoint= override AWS_REGION / AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL).
 * Requests are signed with SigV4 by libcurl, with the payload's SHA-256 in
 * x-amz-content-sha256 and its MD5 in Content-MD5 (which S3 checks).
 * Against AWS (no endpoint override) objects are addressed virtual-hosted
 * (https://BUCKET.s3.REGION.amazonaws.com/KEY) unless the bucket name has
 * a dot; with an endpoint override (MinIO, s3rver, ...) path-style
 * (ENDPOINT/BUCKET/KEY).
 */
#ifndef DC_S3_H
#define DC_S3_H

#include "dc_objstore.h"

dc_objstore_t *dc_s3_open(apr_pool_t *p, const char *uri, const dc_objstore_http_t *http,
                          char *err, size_t errlen);

/* Parses uri: bucket, os's prefix and common options, the query (for
 * region, endpoint, profile). No request. 0, or -1 + err. */
struct apr_table_t;
int dc_s3_parse(apr_pool_t *p, const char *uri, const char **bucket, dc_objstore_t *os,
                struct apr_table_t **query, char *err, size_t errlen);

/* The URL of key in bucket at endpoint (exposed for the unit tests). */
const char *dc_s3_url(apr_pool_t *p, const char *endpoint, const char *bucket, const char *key);

#endif
