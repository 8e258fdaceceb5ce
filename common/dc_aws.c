/*
 * AWS credentials, region, endpoint and SigV4 signing (dc_aws.h).
 *
 * The current credentials live in one malloc'd block (the "AKID:SECRET" pair
 * libcurl wants, the token header, the expiry) behind a read-write lock:
 * signing takes the read lock just long enough for libcurl to copy the
 * strings, the refresher swaps in a new block under the write lock and frees
 * the old one. Nothing on the request path waits for a metadata endpoint.
 *
 * The refresher is a thread started on the first signing in a process that
 * needs one (temporary credentials, or none found yet), so a forking server
 * never forks a thread and never keeps one in its parent. It sleeps on a
 * monotonic condition variable until the refresh time, runs the whole chain
 * again (a container's credentials come back from the same endpoint), and on
 * failure backs off 1 s, doubling to 60 s, logging the first failure of a
 * streak and the recovery.
 */
#include "dc_aws.h"
#include "dc_log.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define AWS_MAX_FILE (1024 * 1024)       /* shared files larger than this are refused */
#define AWS_MAX_FIELD 4096               /* one key, secret or token */
#define AWS_REFRESH_AHEAD apr_time_from_sec(300)
#define AWS_MIN_BACKOFF apr_time_from_sec(1)
#define AWS_MAX_BACKOFF apr_time_from_sec(60)
#define IMDS_DEFAULT "http://169.254.169.254"
#define ECS_HOST "http://169.254.170.2"

typedef struct {
    char *userpwd;      /* "AKID:SECRET" */
    char *token_header; /* "X-Amz-Security-Token: ...", NULL when none */
    size_t key_len;     /* of AKID, the start of userpwd */
    apr_time_t expiration, fetched;
    char source[64];
} creds_t;

struct dc_aws {
    apr_pool_t *pool;
    char *service, *region, *endpoint, *profile, *sigv4;
    long metadata_timeout_ms;
    dc_cloud_client_t *client; /* metadata requests */

    pthread_rwlock_t lock; /* guards cur */
    creds_t *cur;

    pthread_mutex_t start_mutex; /* one thread of a process starts its refresher */
    pthread_mutex_t mutex;       /* the refresher's state */
    pthread_cond_t cond;
    pid_t thread_pid; /* 0: no thread in any process */
    int long_term;    /* credentials that never expire are installed: no thread, ever */
    pthread_t thread;
    int stop;
    int failing;
    char why[300]; /* last failure of the chain, no secrets */
    int closed;
};

/* ---- small parsers ------------------------------------------------------- */

int dc_aws_parse_time(const char *s, apr_time_t *out)
{
    struct tm tm;
    int n = 0, off_sign = 0, oh = 0, om = 0;
    long long secs;
    const char *q;

    memset(&tm, 0, sizeof(tm));
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 || n != 19)
        return -1;
    q = s + n;
    if (*q == '.') {
        q++;
        while (isdigit((unsigned char)*q))
            q++;
    }
    if (*q == 'Z' && q[1] == '\0') {
        /* UTC */
    } else if ((*q == '+' || *q == '-') && strlen(q) == 6 && q[3] == ':' &&
               sscanf(q + 1, "%2d:%2d", &oh, &om) == 2) {
        off_sign = *q == '+' ? 1 : -1;
    } else {
        return -1;
    }
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    secs = (long long)timegm(&tm) - off_sign * (oh * 3600LL + om * 60LL);
    *out = apr_time_from_sec(secs);
    return 0;
}

apr_time_t dc_aws_refresh_time(apr_time_t fetched, apr_time_t expiration)
{
    apr_interval_time_t ahead;

    if (!expiration)
        return 0;
    ahead = (expiration - fetched) / 2;
    if (ahead > AWS_REFRESH_AHEAD)
        ahead = AWS_REFRESH_AHEAD;
    if (ahead < 0)
        ahead = 0;
    return expiration - ahead;
}

static int field_ok(const char *v)
{
    size_t n = v ? strlen(v) : 0;

    if (n == 0 || n > AWS_MAX_FIELD)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] <= ' ' || (unsigned char)v[i] >= 0x7f)
            return 0;
    return 1;
}

int dc_aws_parse_credentials_json(apr_pool_t *p, const char *body, size_t len,
                                  dc_aws_credentials_t *out, char *why, size_t why_len)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *ak, *sk, *tok, *exp, *code;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(root)) {
        snprintf(why, why_len, "the reply is not a JSON object");
        goto done;
    }
    code = json_object_get(root, "Code");
    if (code && (!json_is_string(code) || strcmp(json_string_value(code), "Success") != 0)) {
        snprintf(why, why_len, "the reply says Code %.40s",
                 json_is_string(code) ? json_string_value(code) : "(not a string)");
        goto done;
    }
    ak = json_object_get(root, "AccessKeyId");
    sk = json_object_get(root, "SecretAccessKey");
    tok = json_object_get(root, "Token");
    exp = json_object_get(root, "Expiration");
    if (!json_is_string(ak) || !json_is_string(sk) || !field_ok(json_string_value(ak)) ||
        !field_ok(json_string_value(sk))) {
        snprintf(why, why_len, "the reply has no valid AccessKeyId/SecretAccessKey");
        goto done;
    }
    if (tok && !json_is_null(tok) && (!json_is_string(tok) || !field_ok(json_string_value(tok)))) {
        snprintf(why, why_len, "the reply's Token is not valid");
        goto done;
    }
    if (exp && !json_is_null(exp) &&
        (!json_is_string(exp) || dc_aws_parse_time(json_string_value(exp), &out->expiration) < 0)) {
        snprintf(why, why_len, "the reply's Expiration is not an ISO 8601 time");
        goto done;
    }
    out->access_key_id = apr_pstrdup(p, json_string_value(ak));
    out->secret_access_key = apr_pstrdup(p, json_string_value(sk));
    out->session_token = json_is_string(tok) ? apr_pstrdup(p, json_string_value(tok)) : NULL;
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* ---- the shared files ---------------------------------------------------- */

static const char *trim(char *s, char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        end--;
    *end = '\0';
    return s;
}

static int section_matches(const char *name, const char *profile, int config_style)
{
    if (!config_style)
        return strcmp(name, profile) == 0;
    if (strcmp(profile, "default") == 0 && strcmp(name, "default") == 0)
        return 1;
    if (strncmp(name, "profile", 7) == 0 && (name[7] == ' ' || name[7] == '\t')) {
        name += 7;
        while (*name == ' ' || *name == '\t')
            name++;
        return strcmp(name, profile) == 0;
    }
    return 0;
}

const char *dc_aws_ini_get(apr_pool_t *p, const char *text, size_t len, const char *profile,
                           int config_style, const char *key)
{
    char *copy = apr_pstrmemdup(p, text, len), *line = copy, *next;
    int in_section = 0;
    const char *found = NULL;

    for (; line && *line; line = next) {
        char *end = strchr(line, '\n');

        next = end ? end + 1 : NULL;
        if (!end)
            end = line + strlen(line);
        if (line < end && (*line == ' ' || *line == '\t'))
            continue; /* a sub-key of a nested setting ("s3 =\n  max_..."): not ours */
        {
            const char *t = trim(line, end);

            if (!*t || *t == '#' || *t == ';')
                continue;
            if (*t == '[') {
                char *close = strchr(t, ']');

                if (!close) {
                    in_section = 0;
                    continue;
                }
                in_section = section_matches(trim((char *)t + 1, close), profile, config_style);
                continue;
            }
            if (in_section) {
                const char *eq = strchr(t, '=');
                char *name, *value;

                if (!eq)
                    continue;
                name = apr_pstrmemdup(p, t, (size_t)(eq - t));
                value = apr_pstrdup(p, eq + 1);
                if (strcasecmp(trim(name, name + strlen(name)), key) == 0)
                    found = trim(value, value + strlen(value)); /* the last one wins */
            }
        }
    }
    return found && *found ? found : NULL;
}

static const char *home_path(apr_pool_t *p, const char *rel)
{
    const char *home = getenv("HOME");

    return home && *home ? apr_pstrcat(p, home, "/", rel, NULL) : NULL;
}

/* The whole file into p: 0; 1 when it does not exist; 2 when this process may
 * not read it (why says so: a file of another user is not this process's, as
 * if absent); -1 when it is broken (too large, a read error). */
static int read_file(apr_pool_t *p, const char *path, char **text, size_t *len, char *why,
                     size_t why_len)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;
    apr_size_t n;

    if (!path)
        return 1;
    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);
    if (APR_STATUS_IS_ENOENT(rv) || APR_STATUS_IS_ENOTDIR(rv))
        return 1;
    if (APR_STATUS_IS_EACCES(rv)) {
        snprintf(why, why_len, "%s: not readable by this process (permission denied)", path);
        return 2;
    }
    if (rv != APR_SUCCESS || apr_file_info_get(&fi, APR_FINFO_SIZE, f) != APR_SUCCESS) {
        char reason[120];

        apr_strerror(rv, reason, sizeof(reason));
        snprintf(why, why_len, "%s: cannot read it (%s)", path, reason);
        if (rv == APR_SUCCESS)
            apr_file_close(f);
        return -1;
    }
    if (fi.size > AWS_MAX_FILE) {
        apr_file_close(f);
        snprintf(why, why_len, "%s: larger than %d bytes", path, AWS_MAX_FILE);
        return -1;
    }
    n = (apr_size_t)fi.size;
    *text = apr_palloc(p, n + 1);
    if (n && apr_file_read_full(f, *text, n, &n) != APR_SUCCESS) {
        apr_file_close(f);
        snprintf(why, why_len, "%s: read error", path);
        return -1;
    }
    (*text)[n] = '\0';
    *len = n;
    apr_file_close(f);
    return 0;
}

static const char *credentials_path(apr_pool_t *p)
{
    const char *v = getenv("AWS_SHARED_CREDENTIALS_FILE");

    return v && *v ? v : home_path(p, ".aws/credentials");
}

static const char *config_path(apr_pool_t *p)
{
    const char *v = getenv("AWS_CONFIG_FILE");

    return v && *v ? v : home_path(p, ".aws/config");
}

static const char *profile_name(const char *profile)
{
    const char *v = getenv("AWS_PROFILE");

    if (profile && *profile)
        return profile;
    return v && *v ? v : "default";
}

int dc_aws_profile_credentials(apr_pool_t *p, const char *profile, dc_aws_credentials_t *out,
                               char *why, size_t why_len)
{
    const char *paths[2] = {credentials_path(p), config_path(p)};
    const char *other = NULL, *shown[2];

    profile = profile_name(profile);
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < 2; i++) {
        char *text = NULL;
        size_t len = 0;
        const char *ak, *sk, *tok;
        int rc = read_file(p, paths[i], &text, &len, why, why_len);

        shown[i] = !paths[i] ? "(no HOME)"
                   : rc == 2 ? apr_pstrcat(p, paths[i], " (not readable by this process)", NULL)
                             : paths[i];
        if (rc < 0)
            return -1;
        if (rc > 0)
            continue;
        ak = dc_aws_ini_get(p, text, len, profile, i == 1, "aws_access_key_id");
        sk = dc_aws_ini_get(p, text, len, profile, i == 1, "aws_secret_access_key");
        tok = dc_aws_ini_get(p, text, len, profile, i == 1, "aws_session_token");
        if (!tok)
            tok = dc_aws_ini_get(p, text, len, profile, i == 1, "aws_security_token");
        if (ak || sk) {
            if (!field_ok(ak) || !field_ok(sk) || (tok && !field_ok(tok))) {
                snprintf(why, why_len,
                         "%s: profile %s has an incomplete or invalid key pair", paths[i], profile);
                return -1;
            }
            out->access_key_id = ak;
            out->secret_access_key = sk;
            out->session_token = tok;
            out->source = apr_psprintf(p, "profile %s", profile);
            return 0;
        }
        if (!other) {
            static const char *const unsupported[] = {"role_arn", "credential_process",
                                                      "sso_session", "sso_start_url",
                                                      "web_identity_token_file"};

            for (size_t k = 0; k < sizeof(unsupported) / sizeof(unsupported[0]) && !other; k++)
                if (dc_aws_ini_get(p, text, len, profile, i == 1, unsupported[k]))
                    other = unsupported[k];
        }
    }
    if (other)
        snprintf(why, why_len, "profile %s uses %s, which is not supported (give it a key pair)",
                 profile, other);
    else
        snprintf(why, why_len, "no key pair for profile %s in %s or %s", profile, shown[0],
                 shown[1]);
    return 1;
}

const char *dc_aws_profile_region(apr_pool_t *p, const char *profile)
{
    char *text = NULL, why[200];
    size_t len = 0;

    if (read_file(p, config_path(p), &text, &len, why, sizeof(why)) != 0)
        return NULL; /* absent, unreadable or broken: no region from it */
    return dc_aws_ini_get(p, text, len, profile_name(profile), 1, "region");
}

/* ---- metadata endpoints -------------------------------------------------- */

static int env_true(const char *name)
{
    const char *v = getenv(name);

    return v && strcasecmp(v, "true") == 0;
}

/* An http:// full URI may only point at the machine itself or the container agent. */
static int container_uri_allowed(const char *uri)
{
    const char *host, *end;
    char h[256];
    size_t n;

    if (strncasecmp(uri, "https://", 8) == 0)
        return 1;
    if (strncasecmp(uri, "http://", 7) != 0)
        return 0;
    host = uri + 7;
    if (*host == '[') {
        end = strchr(host, ']');
        return end && end - host == 4 && strncmp(host, "[::1]", 5) == 0;
    }
    end = host + strcspn(host, ":/?#");
    n = (size_t)(end - host);
    if (n == 0 || n >= sizeof(h))
        return 0;
    memcpy(h, host, n);
    h[n] = '\0';
    return strcmp(h, "localhost") == 0 || strncmp(h, "127.", 4) == 0 ||
           strcmp(h, "169.254.170.2") == 0 || strcmp(h, "169.254.170.23") == 0;
}

static int from_container(apr_pool_t *p, dc_cloud_client_t *client, long timeout_ms,
                          dc_aws_credentials_t *out, char *why, size_t why_len)
{
    const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *token_file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *token = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    const char *headers[2] = {NULL, NULL};
    const char *url;
    dc_cloud_request_t req;
    dc_cloud_response_t resp;

    if (rel && *rel) {
        url = apr_pstrcat(p, ECS_HOST, *rel == '/' ? "" : "/", rel, NULL);
    } else if (full && *full) {
        if (!container_uri_allowed(full)) {
            snprintf(why, why_len,
                     "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https or http to a loopback or "
                     "container-agent address");
            return -1;
        }
        url = full;
    } else {
        return 1;
    }
    if (token_file && *token_file) {
        char *text = NULL;
        size_t len = 0;

        int rc = read_file(p, token_file, &text, &len, why, why_len);

        if (rc == 1)
            snprintf(why, why_len, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: no such file",
                     token_file);
        if (rc != 0)
            return -1;
        token = trim(text, text + len);
    }
    if (token && *token) {
        if (strpbrk(token, "\r\n")) {
            snprintf(why, why_len, "the container authorization token holds a line break");
            return -1;
        }
        headers[0] = apr_pstrcat(p, "Authorization: ", token, NULL);
    }
    dc_cloud_request_init(&req, p, "GET", url);
    req.headers = headers;
    req.timeout_ms = timeout_ms;
    req.retries = 1;
    if (dc_cloud_perform(client, &req, &resp) < 0) {
        snprintf(why, why_len, "container endpoint: %.160s", resp.error);
        return -1;
    }
    if (resp.status != 200) {
        snprintf(why, why_len, "container endpoint %s: HTTP %ld", dc_cloud_mask_uri(p, url),
                 resp.status);
        return -1;
    }
    if (dc_aws_parse_credentials_json(p, resp.body, resp.body_len, out, why, why_len) < 0)
        return -1;
    out->source = "container endpoint";
    return 0;
}

static int from_imds(apr_pool_t *p, dc_cloud_client_t *client, long timeout_ms,
                     dc_aws_credentials_t *out, char *why, size_t why_len)
{
    const char *base = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    const char *headers[2] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL};
    const char *path = "/latest/meta-data/iam/security-credentials/";
    dc_cloud_request_t req;
    dc_cloud_response_t resp;
    char *role, *token;
    size_t n;

    if (env_true("AWS_EC2_METADATA_DISABLED"))
        return 1;
    if (!base || !*base)
        base = IMDS_DEFAULT;
    n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    base = apr_pstrmemdup(p, base, n);

    dc_cloud_request_init(&req, p, "PUT", apr_pstrcat(p, base, "/latest/api/token", NULL));
    req.headers = headers;
    req.timeout_ms = timeout_ms;
    req.retries = 1;
    if (dc_cloud_perform(client, &req, &resp) < 0 || resp.status != 200 || !resp.body_len ||
        resp.body_len > 1024 || strpbrk(resp.body, "\r\n")) {
        snprintf(why, why_len, "EC2 IMDS token: %.160s",
                 resp.status ? apr_psprintf(p, "HTTP %ld", resp.status) : resp.error);
        return -1;
    }
    token = apr_pstrcat(p, "X-aws-ec2-metadata-token: ", resp.body, NULL);
    headers[0] = token;

    dc_cloud_request_init(&req, p, "GET", apr_pstrcat(p, base, path, NULL));
    req.headers = headers;
    req.timeout_ms = timeout_ms;
    req.retries = 1;
    if (dc_cloud_perform(client, &req, &resp) < 0 || resp.status != 200) {
        snprintf(why, why_len, "EC2 IMDS role: %.160s",
                 resp.status == 404 ? "no instance profile attached"
                 : resp.status      ? apr_psprintf(p, "HTTP %ld", resp.status)
                                    : resp.error);
        return -1;
    }
    role = apr_pstrmemdup(p, resp.body, strcspn(resp.body, "\r\n"));
    if (!*role || strlen(role) > 128 || strpbrk(role, "/?#% ")) {
        snprintf(why, why_len, "EC2 IMDS: no usable role name");
        return -1;
    }
    dc_cloud_request_init(&req, p, "GET", apr_pstrcat(p, base, path, role, NULL));
    req.headers = headers;
    req.timeout_ms = timeout_ms;
    req.retries = 1;
    if (dc_cloud_perform(client, &req, &resp) < 0 || resp.status != 200) {
        snprintf(why, why_len, "EC2 IMDS credentials: %.160s",
                 resp.status ? apr_psprintf(p, "HTTP %ld", resp.status) : resp.error);
        return -1;
    }
    if (dc_aws_parse_credentials_json(p, resp.body, resp.body_len, out, why, why_len) < 0)
        return -1;
    out->source = "EC2 IMDS";
    return 0;
}

int dc_aws_resolve_credentials(apr_pool_t *p, dc_cloud_client_t *client, const char *profile,
                               long metadata_timeout_ms, dc_aws_credentials_t *out, char *why,
                               size_t why_len)
{
    const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
    const char *tok = getenv("AWS_SESSION_TOKEN");
    char r1[200] = "", r2[200] = "", r3[200] = "";
    int rc;

    memset(out, 0, sizeof(*out));
    if ((ak && *ak) || (sk && *sk)) {
        if (!field_ok(ak) || !field_ok(sk) || (tok && *tok && !field_ok(tok))) {
            snprintf(why, why_len,
                     "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must both be set and valid");
            return -1;
        }
        out->access_key_id = apr_pstrdup(p, ak);
        out->secret_access_key = apr_pstrdup(p, sk);
        out->session_token = tok && *tok ? apr_pstrdup(p, tok) : NULL;
        out->source = "environment";
        return 0;
    }
    if ((rc = dc_aws_profile_credentials(p, profile, out, r1, sizeof(r1))) == 0)
        return 0;
    if (rc < 0) {
        snprintf(why, why_len, "%s", r1);
        return -1; /* a broken file is the operator's to fix, not a reason to go on */
    }
    if ((rc = from_container(p, client, metadata_timeout_ms, out, r2, sizeof(r2))) == 0)
        return 0;
    if (rc < 0) {
        snprintf(why, why_len, "%s", r2);
        return -1;
    }
    if ((rc = from_imds(p, client, metadata_timeout_ms, out, r3, sizeof(r3))) == 0)
        return 0;
    snprintf(why, why_len, "no AWS credentials: environment not set; %s; no container endpoint; %s",
             r1, rc > 0 ? "EC2 IMDS disabled" : r3);
    return -1;
}

/* ---- the handle ---------------------------------------------------------- */

static creds_t *creds_make(const dc_aws_credentials_t *c)
{
    size_t ak = strlen(c->access_key_id), sk = strlen(c->secret_access_key);
    size_t tk = c->session_token ? strlen(c->session_token) : 0;
    size_t hdr = tk ? sizeof("X-Amz-Security-Token: ") - 1 + tk + 1 : 0;
    creds_t *n = calloc(1, sizeof(*n) + ak + 1 + sk + 1 + hdr);
    char *at;

    if (!n)
        return NULL;
    at = (char *)(n + 1);
    n->userpwd = at;
    memcpy(at, c->access_key_id, ak);
    at[ak] = ':';
    memcpy(at + ak + 1, c->secret_access_key, sk + 1);
    n->key_len = ak;
    if (tk) {
        n->token_header = at + ak + 1 + sk + 1;
        snprintf(n->token_header, hdr, "X-Amz-Security-Token: %s", c->session_token);
    }
    n->expiration = c->expiration;
    n->fetched = apr_time_now();
    snprintf(n->source, sizeof(n->source), "%s", c->source ? c->source : "?");
    return n;
}

static void creds_free(creds_t *c)
{
    if (c) {
        /* the secret does not linger in freed memory */
        memset(c + 1, 0, strlen(c->userpwd) + (c->token_header ? strlen(c->token_header) : 0));
        free(c);
    }
}

static void install(dc_aws_t *a, creds_t *n)
{
    creds_t *old;

    pthread_rwlock_wrlock(&a->lock);
    old = a->cur;
    a->cur = n;
    pthread_rwlock_unlock(&a->lock);
    creds_free(old);
}

/* Runs the chain; installs what it found. 0 or -1 (a->why filled). */
static int refresh(dc_aws_t *a)
{
    apr_pool_t *p;
    dc_aws_credentials_t c;
    char why[300];
    creds_t *n = NULL;
    int rc;

    apr_pool_create(&p, NULL);
    rc = dc_aws_resolve_credentials(p, a->client, a->profile, a->metadata_timeout_ms, &c, why,
                                    sizeof(why));
    if (rc == 0 && c.expiration && c.expiration <= apr_time_now()) {
        snprintf(why, sizeof(why), "the %s gave credentials that have already expired",
                 c.source);
        rc = -1;
    }
    if (rc == 0 && !(n = creds_make(&c))) {
        snprintf(why, sizeof(why), "out of memory");
        rc = -1;
    }
    apr_pool_destroy(p);
    pthread_mutex_lock(&a->mutex);
    if (rc < 0) {
        if (!a->failing)
            dc_log(DC_LOG_WARN,
                   DCLOGNO(11350) "aws %s: cannot get credentials: %s; requests to AWS fail "
                                  "until they are found (retrying with backoff)",
                   a->service, why);
        a->failing = 1;
        snprintf(a->why, sizeof(a->why), "%s", why);
    } else {
        if (a->failing)
            dc_log(DC_LOG_INFO, DCLOGNO(11351) "aws %s: credentials from the %s again",
                   a->service, n->source);
        else
            dc_log(DC_LOG_DEBUG, DCLOGNO(11352) "aws %s: credentials from the %s%s", a->service,
                   n->source, n->expiration ? " (temporary)" : "");
        a->failing = 0;
        a->why[0] = '\0';
    }
    pthread_mutex_unlock(&a->mutex);
    if (n) {
        if (!n->expiration)
            __atomic_store_n(&a->long_term, 1, __ATOMIC_RELEASE);
        install(a, n);
    }
    return rc;
}

static void *refresher(void *data)
{
    dc_aws_t *a = data;
    apr_interval_time_t backoff = 0;

    pthread_mutex_lock(&a->mutex);
    while (!a->stop) {
        apr_time_t now = apr_time_now(), at;
        struct timespec ts;
        int rc;

        pthread_rwlock_rdlock(&a->lock);
        at = a->cur ? dc_aws_refresh_time(a->cur->fetched, a->cur->expiration) : now;
        pthread_rwlock_unlock(&a->lock);
        if (a->cur && !at)
            break; /* long-term credentials: nothing to refresh */
        if (backoff && at < now + backoff)
            at = now + backoff;
        if (at > now) {
            apr_interval_time_t wait = at - now;

            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += (time_t)apr_time_sec(wait);
            ts.tv_nsec += (long)(apr_time_usec(wait) * 1000);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            rc = pthread_cond_timedwait(&a->cond, &a->mutex, &ts);
            if (rc != ETIMEDOUT)
                continue; /* stop, or a spurious wake-up: look again */
        }
        pthread_mutex_unlock(&a->mutex);
        rc = refresh(a);
        pthread_mutex_lock(&a->mutex);
        if (rc < 0)
            backoff = backoff ? (backoff * 2 > AWS_MAX_BACKOFF ? AWS_MAX_BACKOFF : backoff * 2)
                              : AWS_MIN_BACKOFF;
        else
            backoff = 0;
    }
    pthread_mutex_unlock(&a->mutex);
    return NULL;
}

static int needs_refresher(dc_aws_t *a)
{
    int needs;

    pthread_rwlock_rdlock(&a->lock);
    needs = !a->cur || a->cur->expiration;
    pthread_rwlock_unlock(&a->lock);
    return needs;
}

/* Whether the current credentials are missing, expired or due for a refresh. */
static int due(dc_aws_t *a)
{
    int rc;

    pthread_rwlock_rdlock(&a->lock);
    rc = !a->cur || (a->cur->expiration &&
                     dc_aws_refresh_time(a->cur->fetched, a->cur->expiration) <= apr_time_now());
    pthread_rwlock_unlock(&a->lock);
    return rc;
}

/* Starts this process's refresher if it needs one and has none. A process
 * forked long after its parent fetched temporary credentials may find them
 * due or expired: it fetches new ones first, once (the requests that arrive
 * meanwhile wait for that one fetch rather than fail). */
static void ensure_refresher(dc_aws_t *a)
{
    pid_t pid;

    if (__atomic_load_n(&a->long_term, __ATOMIC_ACQUIRE))
        return; /* the hot path of static keys: no system call, no lock */
    pid = getpid();
    if (__atomic_load_n(&a->thread_pid, __ATOMIC_ACQUIRE) == pid || !needs_refresher(a))
        return;
    pthread_mutex_lock(&a->start_mutex);
    if (__atomic_load_n(&a->thread_pid, __ATOMIC_ACQUIRE) != pid && !a->closed && due(a))
        refresh(a);
    pthread_mutex_lock(&a->mutex);
    if (a->thread_pid != pid && !a->closed) {
        a->stop = 0;
        if (pthread_create(&a->thread, NULL, refresher, a) == 0)
            __atomic_store_n(&a->thread_pid, pid, __ATOMIC_RELEASE);
        else
            dc_log(DC_LOG_ERROR,
                   DCLOGNO(11353) "aws %s: cannot start the credentials refresher thread",
                   a->service);
    }
    pthread_mutex_unlock(&a->mutex);
    pthread_mutex_unlock(&a->start_mutex);
}

static void stop_refresher(dc_aws_t *a)
{
    int join;

    pthread_mutex_lock(&a->mutex);
    join = a->thread_pid == getpid();
    a->stop = 1;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->mutex);
    if (join) {
        pthread_join(a->thread, NULL);
        __atomic_store_n(&a->thread_pid, 0, __ATOMIC_RELEASE);
    }
}

int dc_aws_sign(void *aws, CURL *curl, struct curl_slist **headers, char *err, size_t err_len)
{
    dc_aws_t *a = aws;
    struct curl_slist *h = *headers;
    int rc = 0, appended = 0;

    ensure_refresher(a);
    pthread_rwlock_rdlock(&a->lock);
    if (!a->cur) {
        rc = -1;
    } else if (a->cur->expiration && a->cur->expiration <= apr_time_now()) {
        rc = -2;
    } else {
#if LIBCURL_VERSION_NUM >= 0x074b00 /* CURLOPT_AWS_SIGV4: libcurl 7.75 */
        curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, a->sigv4);
#else
        rc = -3;
#endif
        curl_easy_setopt(curl, CURLOPT_USERPWD, a->cur->userpwd); /* libcurl copies it */
        if (a->cur->token_header) {
            h = curl_slist_append(h, a->cur->token_header);
            appended = 1;
        }
    }
    pthread_rwlock_unlock(&a->lock);
    if (rc < 0) {
        char why[300];

        pthread_mutex_lock(&a->mutex);
        snprintf(why, sizeof(why), "%s", a->why[0] ? a->why : "not fetched yet");
        pthread_mutex_unlock(&a->mutex);
        if (rc == -3)
            snprintf(err, err_len, "this libcurl (%s) cannot sign for AWS: 7.75 or later is needed",
                     LIBCURL_VERSION);
        else
            snprintf(err, err_len, "%s: %s",
                     rc == -1 ? "no AWS credentials yet" : "the AWS credentials expired", why);
        return -1;
    }
    if (appended && !h) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    *headers = h;
    return 0;
}

int dc_aws_has_credentials(dc_aws_t *a)
{
    int ok;

    pthread_rwlock_rdlock(&a->lock);
    ok = a->cur && (!a->cur->expiration || a->cur->expiration > apr_time_now());
    pthread_rwlock_unlock(&a->lock);
    return ok;
}

void dc_aws_describe(dc_aws_t *a, char *buf, size_t len)
{
    pthread_rwlock_rdlock(&a->lock);
    if (a->cur) {
        const creds_t *c = a->cur;
        /* the key id is no secret, but the last 4 characters are enough to tell keys apart */
        const char *tail = c->key_len > 4 ? c->userpwd + c->key_len - 4 : c->userpwd;
        int tail_len = c->key_len > 4 ? 4 : (int)c->key_len;

        if (c->expiration)
            snprintf(buf, len, "credentials from the %s (key ...%.*s), expire in %lld s",
                     c->source, tail_len, tail,
                     (long long)apr_time_sec(c->expiration - apr_time_now()));
        else
            snprintf(buf, len, "credentials from the %s (key ...%.*s)", c->source, tail_len,
                     tail);
        pthread_rwlock_unlock(&a->lock);
        return;
    }
    pthread_rwlock_unlock(&a->lock);
    pthread_mutex_lock(&a->mutex);
    snprintf(buf, len, "no credentials: %s", a->why[0] ? a->why : "not fetched yet");
    pthread_mutex_unlock(&a->mutex);
}

int dc_aws_current(dc_aws_t *a, apr_pool_t *p, dc_aws_credentials_t *out)
{
    int rc = -1;

    memset(out, 0, sizeof(*out));
    pthread_rwlock_rdlock(&a->lock);
    if (a->cur) {
        out->access_key_id = apr_pstrmemdup(p, a->cur->userpwd, a->cur->key_len);
        out->secret_access_key = apr_pstrdup(p, a->cur->userpwd + a->cur->key_len + 1);
        out->session_token =
            a->cur->token_header
                ? apr_pstrdup(p, a->cur->token_header + sizeof("X-Amz-Security-Token: ") - 1)
                : NULL;
        out->expiration = a->cur->expiration;
        out->source = apr_pstrdup(p, a->cur->source);
        rc = 0;
    }
    pthread_rwlock_unlock(&a->lock);
    return rc;
}

const char *dc_aws_region(const dc_aws_t *a)
{
    return a->region;
}

const char *dc_aws_endpoint(const dc_aws_t *a)
{
    return a->endpoint;
}

const char *dc_aws_service(const dc_aws_t *a)
{
    return a->service;
}

void dc_aws_close(dc_aws_t *a)
{
    if (!a || a->closed)
        return;
    stop_refresher(a);
    a->closed = 1;
    install(a, NULL);
}

static apr_status_t aws_cleanup(void *data)
{
    dc_aws_close(data);
    return APR_SUCCESS;
}

static apr_status_t child_cleanup(void *data)
{
    stop_refresher(data);
    return APR_SUCCESS;
}

void dc_aws_child_init(dc_aws_t *a, apr_pool_t *pchild)
{
    /* the parent's thread (if it had one) did not come along: this child's starts now,
     * before it serves, after fetching new credentials if the inherited ones are due */
    if (a->thread_pid != getpid())
        __atomic_store_n(&a->thread_pid, 0, __ATOMIC_RELEASE);
    apr_pool_cleanup_register(pchild, a, child_cleanup, apr_pool_cleanup_null);
    if (!__atomic_load_n(&a->long_term, __ATOMIC_ACQUIRE))
        ensure_refresher(a);
}

static int valid_region(const char *r)
{
    size_t n = strlen(r);

    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)r[i]) && !isdigit((unsigned char)r[i]) && r[i] != '-')
            return 0;
    return 1;
}

static const char *service_endpoint_env(apr_pool_t *p, const char *service)
{
    char *name = apr_pstrcat(p, "AWS_ENDPOINT_URL_", service, NULL);
    const char *v;

    for (char *q = name; *q; q++)
        *q = *q == '-' || *q == ' ' ? '_' : (char)toupper((unsigned char)*q);
    v = getenv(name);
    return v && *v ? v : NULL;
}

dc_aws_t *dc_aws_open(apr_pool_t *p, const dc_aws_options_t *opt, char *err, size_t err_len)
{
    dc_aws_t *a = apr_pcalloc(p, sizeof(*a));
    const char *region = opt->region, *endpoint = opt->endpoint;
    dc_cloud_options_t co;
    pthread_condattr_t ca;
    size_t n;

    if (!opt->service || !*opt->service) {
        snprintf(err, err_len, "aws: no service name");
        return NULL;
    }
    a->pool = p;
    a->service = apr_pstrdup(p, opt->service);
    a->profile = opt->profile && *opt->profile ? apr_pstrdup(p, opt->profile) : NULL;
    a->metadata_timeout_ms = opt->metadata_timeout_ms > 0 ? opt->metadata_timeout_ms : 1000;
    if (!endpoint || !*endpoint)
        endpoint = service_endpoint_env(p, a->service);
    if (!endpoint && getenv("AWS_ENDPOINT_URL") && *getenv("AWS_ENDPOINT_URL"))
        endpoint = getenv("AWS_ENDPOINT_URL");
    if (!region || !*region)
        region = getenv("AWS_REGION");
    if (!region || !*region)
        region = getenv("AWS_DEFAULT_REGION");
    if (!region || !*region)
        region = dc_aws_profile_region(p, a->profile);
    if (!region || !*region) {
        if (!endpoint) {
            snprintf(err, err_len,
                     "aws %s: no region (give region=, AWS_REGION, AWS_DEFAULT_REGION or a "
                     "region in the profile's config)", a->service);
            return NULL;
        }
        region = "us-east-1";
    }
    if (!valid_region(region)) {
        snprintf(err, err_len, "aws %s: bad region \"%.64s\"", a->service, region);
        return NULL;
    }
    a->region = apr_pstrdup(p, region);
    if (endpoint) {
        if ((strncasecmp(endpoint, "http://", 7) != 0 &&
             strncasecmp(endpoint, "https://", 8) != 0) ||
            strpbrk(endpoint, " \r\n\t?#")) {
            snprintf(err, err_len, "aws %s: the endpoint must be an http:// or https:// URL",
                     a->service);
            return NULL;
        }
        n = strlen(endpoint);
        while (n > 8 && endpoint[n - 1] == '/')
            n--;
        a->endpoint = apr_pstrmemdup(p, endpoint, n);
    } else {
        a->endpoint = apr_psprintf(p, "https://%s.%s.amazonaws.com%s", a->service, a->region,
                                   strncmp(a->region, "cn-", 3) == 0 ? ".cn" : "");
    }
    a->sigv4 = apr_psprintf(p, "aws:amz:%s:%s", a->region, a->service);

    dc_cloud_options_default(&co);
    co.connect_timeout_ms = a->metadata_timeout_ms;
    co.timeout_ms = a->metadata_timeout_ms;
    co.retries = 1;
    co.max_body = 64 * 1024;
    if (!(a->client = dc_cloud_client_create(p, &co, err, err_len)))
        return NULL;
    pthread_rwlock_init(&a->lock, NULL);
    pthread_mutex_init(&a->mutex, NULL);
    pthread_mutex_init(&a->start_mutex, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cond, &ca);
    pthread_condattr_destroy(&ca);
    /* registered after the client's, so it runs first: the thread stops before the client goes */
    apr_pool_cleanup_register(p, a, aws_cleanup, apr_pool_cleanup_null);
    refresh(a); /* a failure is logged and retried by the refresher */
    return a;
}
