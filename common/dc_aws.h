/*
 * dc_aws: AWS credentials, region and endpoint, found the way the AWS SDKs
 * find them, and SigV4 signing of dc_cloud_http requests through libcurl's
 * CURLOPT_AWS_SIGV4.
 *
 * API
 *   dc_aws_open(p, &opt, err, err_len)
 *       Resolves region and endpoint (errors here are configuration errors:
 *       NULL + err) and runs the credential chain once. Credentials that are
 *       not found yet are no error: the handle is returned, a warning is logged
 *       once, signing fails ("no AWS credentials yet: ...") and a background
 *       thread keeps trying. Closed with p (or dc_aws_close).
 *   dc_aws_sign(aws, curl, &headers, err, err_len)
 *       A dc_cloud_sign_fn (pass the dc_aws_t as its baton): sets
 *       CURLOPT_AWS_SIGV4 "aws:amz:REGION:SERVICE" and the key pair, and adds
 *       X-Amz-Security-Token for temporary credentials. Never blocks on a
 *       refresh: it reads the current credentials under a read lock.
 *       libcurl signs the Host, X-Amz-Date and every header the request
 *       gives (so x-amz-* headers such as x-amz-content-sha256, which S3
 *       wants and libcurl 7.88 does not add by itself, must be in
 *       req.headers) and the SHA-256 of the body. libcurl 7.88 signs the
 *       query string as given: give its parameters sorted and %-encoded.
 *   dc_aws_region / dc_aws_endpoint / dc_aws_service
 *       What open resolved. The endpoint has no trailing "/".
 *   dc_aws_describe(aws, buf, len)
 *       "credentials from SOURCE (key AKIA…WXYZ), expire in N s" or why there
 *       are none, for health pages and logs: never a secret.
 *   dc_aws_child_init(aws, pchild)
 *       In a forked child (httpd) before first use: the refresher thread (if
 *       one is needed) is started on first use in each process and stopped
 *       when pchild is destroyed.
 *
 * Credential chain, first match wins (the SDKs' order):
 *   1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN]
 *   2. the shared files: AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials)
 *      section [PROFILE], then AWS_CONFIG_FILE (default ~/.aws/config) section
 *      [profile PROFILE] ([default] for the default profile); PROFILE is
 *      opt.profile, else AWS_PROFILE, else "default". Keys aws_access_key_id,
 *      aws_secret_access_key, aws_session_token. (role_arn, credential_process
 *      and sso_* profiles are not supported and are reported as such.)
 *   3. the ECS/EKS container endpoint: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
 *      (on http://169.254.170.2) or AWS_CONTAINER_CREDENTIALS_FULL_URI (http
 *      only to loopback or 169.254.170.2/.23, or https), with
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or AWS_CONTAINER_AUTHORIZATION_TOKEN
 *      as the Authorization header;
 *   4. EC2 IMDSv2 (PUT /latest/api/token, then GET
 *      /latest/meta-data/iam/security-credentials/[ROLE]) at
 *      AWS_EC2_METADATA_SERVICE_ENDPOINT (default http://169.254.169.254),
 *      unless AWS_EC2_METADATA_DISABLED=true.
 * Temporary credentials (3, 4) are refreshed by a background thread before
 * they expire: when less than min(5 min, half their lifetime) is left, and
 * with backoff (1 s doubling to 60 s) while the source fails; requests keep
 * using the current ones meanwhile.
 *
 * Region: opt.region, AWS_REGION, AWS_DEFAULT_REGION, the profile's "region"
 * in the config file; with an endpoint override and none of these,
 * "us-east-1". Endpoint: opt.endpoint, AWS_ENDPOINT_URL_<SERVICE> (e.g.
 * AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_S3), AWS_ENDPOINT_URL, else
 * https://SERVICE.REGION.amazonaws.com (.amazonaws.com.cn in cn- regions).
 */
#ifndef DC_AWS_H
#define DC_AWS_H

#include "dc_cloud_http.h"

#include <apr_pools.h>
#include <apr_time.h>
#include <curl/curl.h>
#include <stddef.h>

typedef struct dc_aws dc_aws_t;

typedef struct {
    const char *service;        /* signing name: "dynamodb", "s3"; required */
    const char *region;         /* NULL: the chain above */
    const char *endpoint;       /* NULL: the chain above */
    const char *profile;        /* NULL: AWS_PROFILE or "default" */
    long metadata_timeout_ms;   /* container endpoint and IMDS requests; 0: 1000 */
} dc_aws_options_t;

/* One set of credentials (strings in a pool). expiration 0: they do not expire. */
typedef struct {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;  /* NULL when none */
    apr_time_t expiration;
    const char *source; /* "environment", "profile NAME", "container endpoint", "EC2 IMDS" */
} dc_aws_credentials_t;

dc_aws_t *dc_aws_open(apr_pool_t *p, const dc_aws_options_t *opt, char *err, size_t err_len);
void dc_aws_close(dc_aws_t *a);
void dc_aws_child_init(dc_aws_t *a, apr_pool_t *pchild);

int dc_aws_sign(void *aws, CURL *curl, struct curl_slist **headers, char *err, size_t err_len);

const char *dc_aws_region(const dc_aws_t *a);
const char *dc_aws_endpoint(const dc_aws_t *a);
const char *dc_aws_service(const dc_aws_t *a);
/* 1 when signing has credentials that have not expired. */
int dc_aws_has_credentials(dc_aws_t *a);
void dc_aws_describe(dc_aws_t *a, char *buf, size_t len);
/* The current credentials copied into p; -1 when there are none. (Tests, tools.) */
int dc_aws_current(dc_aws_t *a, apr_pool_t *p, dc_aws_credentials_t *out);

/* ---- the pieces, public for tests and tools -------------------------------- */

/* Runs the chain once. 0 and out filled, or -1 with why (every source's reason,
 * no secrets). client: for the container endpoint and IMDS. */
int dc_aws_resolve_credentials(apr_pool_t *p, dc_cloud_client_t *client, const char *profile,
                               long metadata_timeout_ms, dc_aws_credentials_t *out, char *why,
                               size_t why_len);
/* Reads key in the profile's section of an INI text (the shared files'
 * format: [section], key = value, # and ; comments, indented sub-keys
 * ignored). config_style: sections are "profile NAME" (and "default").
 * Returns the value (in p) or NULL. */
const char *dc_aws_ini_get(apr_pool_t *p, const char *text, size_t len, const char *profile,
                           int config_style, const char *key);
/* The shared files' credentials of profile: 0, 1 when the profile has none
 * (why says what it has instead), -1 on an unreadable file. */
int dc_aws_profile_credentials(apr_pool_t *p, const char *profile, dc_aws_credentials_t *out,
                               char *why, size_t why_len);
/* The profile's region from the config file, or NULL. */
const char *dc_aws_profile_region(apr_pool_t *p, const char *profile);
/* A container endpoint / IMDS credentials document: {"AccessKeyId", "SecretAccessKey",
 * "Token", "Expiration": "2026-12-06T20:00:00Z"[, "Code": "Success"]}. 0 or -1 + why. */
int dc_aws_parse_credentials_json(apr_pool_t *p, const char *body, size_t len,
                                  dc_aws_credentials_t *out, char *why, size_t why_len);
/* ISO 8601 UTC time ("2026-12-06T20:00:00Z", fractions and +00:00 accepted). */
int dc_aws_parse_time(const char *s, apr_time_t *out);
/* When credentials fetched at fetched and expiring at expiration should be refreshed. */
apr_time_t dc_aws_refresh_time(apr_time_t fetched, apr_time_t expiration);

#endif
