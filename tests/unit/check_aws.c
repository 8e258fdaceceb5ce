/*
 * The cloud client layer and the AWS credentials module: URI masking, the
 * shared files' INI format, the metadata credentials document, the refresh
 * schedule, and the credential chain in the SDKs' order (environment, shared
 * files with AWS_PROFILE / AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE, the
 * container endpoint served by a real HTTP server on loopback), region and
 * endpoint resolution, and signing: the options dc_aws_sign gives libcurl and
 * the request a real server receives (Authorization: AWS4-HMAC-SHA256 with
 * the key id and the token header). The signature itself is verified by
 * botocore in tests/integration/test_dynamo.py.
 */
#include "dc_test.h"

#include "dc_aws.h"
#include "dc_cloud_http.h"
#include "dc_store.h"

#include <apr_strings.h>
#include <sys/stat.h>

static apr_pool_t *pool;
static char tmpdir[64];

static void setup(void)
{
    static const char *const vars[] = {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_REGION", "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_EC2_METADATA_SERVICE_ENDPOINT"};

    apr_pool_create(&pool, NULL);
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_aws.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    setenv("HOME", tmpdir, 1); /* no ~/.aws of the machine's */
}

static void teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    apr_pool_destroy(pool);
}

static const char *write_file(const char *name, const char *text)
{
    const char *path = apr_pstrcat(pool, tmpdir, "/", name, NULL);
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

START_TEST(mask_uri)
{
#define MASKED(uri) dc_cloud_mask_uri(pool, uri)
    ck_assert_str_eq(MASKED("azblob://acct/cont/p?sas=sv%3D1%26sig%3Dabc&region=x"),
                     "azblob://acct/cont/p?sas=***&region=x");
    ck_assert_str_eq(MASKED("https://h/o?X-Amz-Signature=abc&X-Amz-Security-Token=t&a=1"),
                     "https://h/o?X-Amz-Signature=***&X-Amz-Security-Token=***&a=1");
    ck_assert_str_eq(MASKED("https://user:pa@ss@host:1/x?key=k#frag"),
                     "https://user:***@host:1/x?key=***#frag");
    ck_assert_str_eq(MASKED("dynamo://table?region=eu-west-1&endpoint=http://h:1"),
                     "dynamo://table?region=eu-west-1&endpoint=http://h:1");
    ck_assert_str_eq(MASKED("s3://b/p?sig"), "s3://b/p?sig");
    ck_assert_str_eq(MASKED("u:secret@host"), "***@host");
    ck_assert_str_eq(MASKED("a?Sig=&token=x&&"), "a?Sig=***&token=***&&");
    ck_assert(dc_cloud_is_secret_param("SIG", 3));
    ck_assert(!dc_cloud_is_secret_param("region", 6));
#undef MASKED
}
END_TEST

START_TEST(parse_time)
{
    apr_time_t t;

    ck_assert_int_eq(dc_aws_parse_time("2026-12-06T20:00:00Z", &t), 0);
    ck_assert_int_eq(apr_time_sec(t), 1796587200LL);
    ck_assert_int_eq(dc_aws_parse_time("2026-12-06T20:00:00.123Z", &t), 0);
    ck_assert_int_eq(apr_time_sec(t), 1796587200LL);
    ck_assert_int_eq(dc_aws_parse_time("2026-12-06T21:00:00+01:00", &t), 0);
    ck_assert_int_eq(apr_time_sec(t), 1796587200LL);
    ck_assert_int_eq(dc_aws_parse_time("2026-12-06 20:00:00Z", &t), -1);
    ck_assert_int_eq(dc_aws_parse_time("2026-13-06T20:00:00Z", &t), -1);
    ck_assert_int_eq(dc_aws_parse_time("2026-12-06T20:00:00", &t), -1);
    ck_assert_int_eq(dc_aws_parse_time("", &t), -1);
}
END_TEST

START_TEST(refresh_schedule)
{
    apr_time_t f = apr_time_from_sec(1000);

    /* one hour: five minutes ahead; ten seconds: half-way; none: never */
    ck_assert_int_eq(dc_aws_refresh_time(f, f + apr_time_from_sec(3600)),
                     f + apr_time_from_sec(3300));
    ck_assert_int_eq(dc_aws_refresh_time(f, f + apr_time_from_sec(10)), f + apr_time_from_sec(5));
    ck_assert_int_eq(dc_aws_refresh_time(f, 0), 0);
}
END_TEST

START_TEST(credentials_json)
{
    dc_aws_credentials_t c;
    char why[200];
    const char *ok = "{\"Code\":\"Success\",\"AccessKeyId\":\"ASIAX\",\"SecretAccessKey\":\"s\","
                     "\"Token\":\"t\",\"Expiration\":\"2026-12-06T20:00:00Z\"}";

    ck_assert_int_eq(dc_aws_parse_credentials_json(pool, ok, strlen(ok), &c, why, sizeof(why)), 0);
    ck_assert_str_eq(c.access_key_id, "ASIAX");
    ck_assert_str_eq(c.secret_access_key, "s");
    ck_assert_str_eq(c.session_token, "t");
    ck_assert_int_eq(apr_time_sec(c.expiration), 1796587200LL);
#define BAD(text)                                                                                  \
    ck_assert_int_eq(                                                                              \
        dc_aws_parse_credentials_json(pool, text, strlen(text), &c, why, sizeof(why)), -1)
    BAD("[]");
    BAD("not json");
    BAD("{\"Code\":\"Failure\",\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\"}");
    BAD("{\"AccessKeyId\":\"a\"}");
    BAD("{\"AccessKeyId\":\"a b\",\"SecretAccessKey\":\"s\"}");
    BAD("{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\",\"Expiration\":\"tomorrow\"}");
    BAD("{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\",\"Token\":5}");
#undef BAD
    ck_assert(strstr(why, "Token") != NULL);
}
END_TEST

START_TEST(ini_format)
{
    const char *text = "# comment\n[default]\naws_access_key_id = AKDEF\n; other\n"
                       "[dev]\r\n  aws_access_key_id=AKDEV \r\ns3 =\n  aws_access_key_id = NESTED\n"
                       "aws_secret_access_key\t=\tSKDEV\n[profile dev]\nregion = eu-west-3\n";

    ck_assert_str_eq(dc_aws_ini_get(pool, text, strlen(text), "default", 0, "aws_access_key_id"),
                     "AKDEF");
    ck_assert_str_eq(dc_aws_ini_get(pool, text, strlen(text), "dev", 0, "AWS_SECRET_ACCESS_KEY"),
                     "SKDEV");
    /* "  aws_access_key_id=AKDEV" is indented: a sub-key, so not the profile's */
    ck_assert_ptr_null(dc_aws_ini_get(pool, text, strlen(text), "dev", 0, "aws_access_key_id"));
    ck_assert_str_eq(dc_aws_ini_get(pool, text, strlen(text), "dev", 1, "region"), "eu-west-3");
    ck_assert_ptr_null(dc_aws_ini_get(pool, text, strlen(text), "dev", 0, "region"));
    ck_assert_str_eq(dc_aws_ini_get(pool, text, strlen(text), "default", 1, "aws_access_key_id"),
                     "AKDEF");
    ck_assert_ptr_null(dc_aws_ini_get(pool, text, strlen(text), "nope", 0, "aws_access_key_id"));
}
END_TEST

static int resolve(dc_aws_credentials_t *c, char *why, size_t len)
{
    dc_cloud_client_t *client = dc_cloud_client_create(pool, NULL, why, len);

    ck_assert_ptr_nonnull(client);
    return dc_aws_resolve_credentials(pool, client, NULL, 1000, c, why, len);
}

START_TEST(chain_environment_first)
{
    dc_aws_credentials_t c;
    char why[400];

    write_file("creds", "[default]\naws_access_key_id=AKFILE\naws_secret_access_key=SKFILE\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", apr_pstrcat(pool, tmpdir, "/creds", NULL), 1);
    setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SKENV", 1);
    setenv("AWS_SESSION_TOKEN", "TKENV", 1);
    ck_assert_int_eq(resolve(&c, why, sizeof(why)), 0);
    ck_assert_str_eq(c.access_key_id, "AKENV");
    ck_assert_str_eq(c.secret_access_key, "SKENV");
    ck_assert_str_eq(c.session_token, "TKENV");
    ck_assert_str_eq(c.source, "environment");
    ck_assert_int_eq(c.expiration, 0);

    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    ck_assert_int_eq(resolve(&c, why, sizeof(why)), -1); /* half a pair is an error, not a skip */
    ck_assert(strstr(why, "AWS_SECRET_ACCESS_KEY") != NULL);

    unsetenv("AWS_ACCESS_KEY_ID");
    ck_assert_int_eq(resolve(&c, why, sizeof(why)), 0);
    ck_assert_str_eq(c.access_key_id, "AKFILE");
    ck_assert_str_eq(c.source, "profile default");
}
END_TEST

START_TEST(chain_profiles)
{
    dc_aws_credentials_t c;
    char why[400];

    ck_assert_int_eq(mkdir(apr_pstrcat(pool, tmpdir, "/.aws", NULL), 0700), 0);
    write_file(".aws/credentials",
               "[default]\naws_access_key_id=AKHOME\naws_secret_access_key=S\n"
               "[team]\naws_access_key_id = AKTEAM\naws_secret_access_key = S2\n"
               "aws_session_token = TK2\n");
    write_file(".aws/config", "[default]\nregion=us-west-2\n[profile cfg]\nregion = ap-south-1\n"
                              "aws_access_key_id = AKCFG\naws_secret_access_key = S3\n"
                              "[profile role]\nrole_arn = arn:aws:iam::1:role/x\n");
    ck_assert_int_eq(resolve(&c, why, sizeof(why)), 0);
    ck_assert_str_eq(c.access_key_id, "AKHOME");
    ck_assert_str_eq(dc_aws_profile_region(pool, NULL), "us-west-2");

    setenv("AWS_PROFILE", "team", 1);
    ck_assert_int_eq(resolve(&c, why, sizeof(why)), 0);
    ck_assert_str_eq(c.access_key_id, "AKTEAM");
    ck_assert_str_eq(c.session_token, "TK2");
    ck_assert_str_eq(c.source, "profile team");

    setenv("AWS_PROFILE", "cfg", 1); /* keys in the config file count too */
    ck_assert_int_eq(resolve(&c, why, sizeof(why)), 0);
    ck_assert_str_eq(c.access_key_id, "AKCFG");
    ck_assert_str_eq(dc_aws_profile_region(pool, NULL), "ap-south-1");

    setenv("AWS_PROFILE", "role", 1);
    ck_assert_int_eq(resolve(&c, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, "role_arn") != NULL, "%s", why);

    setenv("AWS_PROFILE", "missing", 1);
    ck_assert_int_eq(resolve(&c, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, "no key pair for profile missing") != NULL, "%s", why);
    ck_assert_msg(strstr(why, "IMDS disabled") != NULL, "%s", why);

    /* a broken pair in the file is reported, not skipped */
    setenv("AWS_SHARED_CREDENTIALS_FILE", write_file("bad", "[default]\naws_access_key_id=A\n"), 1);
    unsetenv("AWS_PROFILE");
    ck_assert_int_eq(resolve(&c, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, "incomplete") != NULL, "%s", why);
}
END_TEST

/* A real HTTP server on loopback serving tmpdir (python3 -m http.server). */
static dc_test_proc_t http_proc;
static int http_port;

static void http_start(void)
{
    char port_s[16];
    const char *argv[] = {"python3", "-m", "http.server", port_s, "--bind", "127.0.0.1",
                          "--directory", tmpdir, NULL};

    http_port = dc_test_free_port();
    snprintf(port_s, sizeof(port_s), "%d", http_port);
    ck_assert_int_eq(dc_test_spawn(&http_proc, argv), 0);
    ck_assert_msg(dc_test_wait_port(http_port, 10000) == 0, "http.server did not start");
}

START_TEST(chain_container_endpoint)
{
    dc_aws_credentials_t c;
    char why[400];

    write_file("ecs.json", "{\"AccessKeyId\":\"ASIAECS\",\"SecretAccessKey\":\"SKECS\","
                           "\"Token\":\"TKECS\",\"Expiration\":\"2099-01-01T00:00:00Z\"}");
    write_file("token", "Bearer abc\n");
    http_start();
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI",
           apr_psprintf(pool, "http://127.0.0.1:%d/ecs.json", http_port), 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", apr_pstrcat(pool, tmpdir, "/token", NULL), 1);
    ck_assert_msg(resolve(&c, why, sizeof(why)) == 0, "%s", why);
    ck_assert_str_eq(c.access_key_id, "ASIAECS");
    ck_assert_str_eq(c.session_token, "TKECS");
    ck_assert_str_eq(c.source, "container endpoint");
    ck_assert_int_gt(c.expiration, apr_time_now());

    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI",
           apr_psprintf(pool, "http://127.0.0.1:%d/missing.json", http_port), 1);
    ck_assert_int_eq(resolve(&c, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, "HTTP 404") != NULL, "%s", why);

    /* plain http to another host is refused (the SDKs' rule) */
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/creds", 1);
    ck_assert_int_eq(resolve(&c, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, "loopback") != NULL, "%s", why);
    dc_test_stop(&http_proc);
}
END_TEST

START_TEST(region_and_endpoint)
{
    dc_aws_options_t o = {.service = "dynamodb"};
    char err[300];
    dc_aws_t *a;

    setenv("AWS_ACCESS_KEY_ID", "AK", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
    ck_assert_ptr_null(dc_aws_open(pool, &o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "no region") != NULL, "%s", err);

    setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
    ck_assert_ptr_nonnull(a = dc_aws_open(pool, &o, err, sizeof(err)));
    ck_assert_str_eq(dc_aws_region(a), "eu-west-1");
    ck_assert_str_eq(dc_aws_endpoint(a), "https://dynamodb.eu-west-1.amazonaws.com");
    setenv("AWS_REGION", "cn-north-1", 1);
    ck_assert_ptr_nonnull(a = dc_aws_open(pool, &o, err, sizeof(err)));
    ck_assert_str_eq(dc_aws_endpoint(a), "https://dynamodb.cn-north-1.amazonaws.com.cn");

    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1/", 1);
    ck_assert_ptr_nonnull(a = dc_aws_open(pool, &o, err, sizeof(err)));
    ck_assert_str_eq(dc_aws_endpoint(a), "http://127.0.0.1:1");
    setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:2", 1);
    ck_assert_ptr_nonnull(a = dc_aws_open(pool, &o, err, sizeof(err)));
    ck_assert_str_eq(dc_aws_endpoint(a), "http://127.0.0.1:2");
    o.endpoint = "https://ddb.example:8443";
    o.region = "ap-northeast-1";
    ck_assert_ptr_nonnull(a = dc_aws_open(pool, &o, err, sizeof(err)));
    ck_assert_str_eq(dc_aws_endpoint(a), "https://ddb.example:8443");
    ck_assert_str_eq(dc_aws_region(a), "ap-northeast-1");

    o.endpoint = "ftp://x";
    ck_assert_ptr_null(dc_aws_open(pool, &o, err, sizeof(err)));
    o.endpoint = NULL;
    o.region = "EU WEST";
    ck_assert_ptr_null(dc_aws_open(pool, &o, err, sizeof(err)));

    /* with an endpoint override and no region anywhere: us-east-1 */
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    o.region = NULL;
    ck_assert_ptr_nonnull(a = dc_aws_open(pool, &o, err, sizeof(err)));
    ck_assert_str_eq(dc_aws_region(a), "us-east-1");
}
END_TEST

/* The request a real server receives: signed with the current key, token attached. */
START_TEST(sign_request)
{
    dc_aws_options_t o = {.service = "dynamodb", .region = "eu-west-1"};
    dc_cloud_client_t *client;
    dc_cloud_request_t req;
    dc_cloud_response_t resp;
    char err[300], desc[200];
    dc_aws_t *a;
    FILE *f;
    char line[2048];
    int saw_auth = 0, saw_token = 0, saw_date = 0;
    const char *log = apr_pstrcat(pool, tmpdir, "/requests.log", NULL);
    const char *script = apr_pstrcat(pool, tmpdir, "/echo.py", NULL);
    const char *argv[] = {"python3", script, NULL, log, NULL};
    char port_s[16];

    write_file("echo.py",
               "import sys, http.server\n"
               "class H(http.server.BaseHTTPRequestHandler):\n"
               "    def do_POST(self):\n"
               "        n = int(self.headers.get('Content-Length', 0)); self.rfile.read(n)\n"
               "        with open(sys.argv[2], 'a') as f:\n"
               "            for k, v in self.headers.items():\n"
               "                f.write(k.lower() + ': ' + v + '\\n')\n"
               "        self.send_response(200); self.send_header('Content-Length', '2')\n"
               "        self.end_headers(); self.wfile.write(b'{}')\n"
               "    def log_message(self, *a): pass\n"
               "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n");
    http_port = dc_test_free_port();
    snprintf(port_s, sizeof(port_s), "%d", http_port);
    argv[2] = port_s;
    ck_assert_int_eq(dc_test_spawn(&http_proc, argv), 0);
    ck_assert(dc_test_wait_port(http_port, 10000) == 0);

    /* no credentials anywhere: open works, signing says why */
    o.endpoint = apr_psprintf(pool, "http://127.0.0.1:%d", http_port);
    ck_assert_ptr_nonnull(a = dc_aws_open(pool, &o, err, sizeof(err)));
    ck_assert(!dc_aws_has_credentials(a));
    dc_aws_describe(a, desc, sizeof(desc));
    ck_assert_msg(strstr(desc, "no credentials") != NULL, "%s", desc);
    client = dc_cloud_client_create(pool, NULL, err, sizeof(err));
    dc_cloud_request_init(&req, pool, "POST", dc_aws_endpoint(a));
    req.body = "{}";
    req.body_len = 2;
    req.sign = dc_aws_sign;
    req.sign_baton = a;
    ck_assert_int_eq(dc_cloud_perform(client, &req, &resp), -1);
    ck_assert_msg(strstr(resp.error, "no AWS credentials yet") != NULL, "%s", resp.error);
    dc_aws_close(a);

    setenv("AWS_ACCESS_KEY_ID", "AKIDSIGNTEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "very-secret", 1);
    setenv("AWS_SESSION_TOKEN", "session-token-value", 1);
    ck_assert_ptr_nonnull(a = dc_aws_open(pool, &o, err, sizeof(err)));
    ck_assert(dc_aws_has_credentials(a));
    dc_aws_describe(a, desc, sizeof(desc));
    ck_assert_msg(strstr(desc, "environment") && strstr(desc, "TEST") && !strstr(desc, "secret"),
                  "%s", desc);
    req.sign_baton = a;
    ck_assert_int_eq(dc_cloud_perform(client, &req, &resp), 0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.body, "{}");
    ck_assert_int_eq(dc_cloud_perform(client, &req, &resp), 0); /* the kept handle again */
    /* long-term keys, a request with no header of its own: nothing to append, still signed */
    unsetenv("AWS_SESSION_TOKEN");
    ck_assert_ptr_nonnull(a = dc_aws_open(pool, &o, err, sizeof(err)));
    req.sign_baton = a;
    ck_assert_msg(dc_cloud_perform(client, &req, &resp) == 0, "%s", resp.error);
    ck_assert_int_eq(resp.status, 200);
    dc_test_stop(&http_proc);

    f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "authorization: AWS4-HMAC-SHA256 Credential=AKIDSIGNTEST/", 56) == 0 &&
            strstr(line, "SignedHeaders=host;x-amz-date;x-amz-security-token,") &&
            strstr(line, "/eu-west-1/dynamodb/aws4_request") &&
            strstr(line, "x-amz-security-token") && !strstr(line, "very-secret"))
            saw_auth++;
        if (strcmp(line, "x-amz-security-token: session-token-value\n") == 0)
            saw_token++;
        if (strncmp(line, "x-amz-date: ", 12) == 0)
            saw_date++;
    }
    fclose(f);
    ck_assert_int_eq(saw_auth, 2);
    ck_assert_int_eq(saw_token, 2);
    ck_assert_int_eq(saw_date, 3);
}
END_TEST

/* Retries: connection refused is retried within the deadline, then reported. */
START_TEST(retries_bounded)
{
    dc_cloud_options_t co;
    dc_cloud_client_t *client;
    dc_cloud_request_t req;
    dc_cloud_response_t resp;
    char err[200];
    apr_time_t start;

    dc_cloud_options_default(&co);
    co.retries = 3;
    co.backoff_base_ms = 10;
    client = dc_cloud_client_create(pool, &co, err, sizeof(err));
    dc_cloud_request_init(&req, pool, "GET",
                          apr_psprintf(pool, "http://127.0.0.1:%d/x?sig=SECRET",
                                       dc_test_free_port()));
    req.timeout_ms = 2000;
    start = apr_time_now();
    ck_assert_int_eq(dc_cloud_perform(client, &req, &resp), -1);
    ck_assert_int_eq(resp.attempts, 4);
    ck_assert_int_lt(apr_time_now() - start, apr_time_from_msec(2000));
    ck_assert_msg(strstr(resp.error, "sig=***") && !strstr(resp.error, "SECRET"), "%s",
                  resp.error);
    dc_cloud_client_destroy(client);
    dc_cloud_client_destroy(client); /* twice is harmless (the pool's cleanup runs later) */
}
END_TEST

/* The decision-api's DynamoDB item as GetItem returns it, read by the dynamo store. */
START_TEST(dynamo_item_layout)
{
    const char *reply = "{\"Item\":{\"id\":{\"S\":\"env.v1\"},\"d\":{\"N\":\"1796587200\"},"
                        "\"vg_a\":{\"S\":\"var1:1\"},\"vg_b\":{\"S\":\"var2\"},"
                        "\"vg_c\":{\"S\":\"v:3:1\"},\"vg_n\":{\"N\":\"5\"},\"vg_e\":{\"S\":\"\"},"
                        "\"vg_z\":{\"S\":\":1\"}}}";
    dc_assignments_t a;
    const dc_assignment_t *x;
    size_t len;
    int act;

    /* vg_n (a number), vg_e (empty), vg_z (":1" alone) are not assignments */
    ck_assert_int_eq(dc_store_dynamo_decode_item(pool, "id", reply, strlen(reply), 0, &a), 3);
    ck_assert_int_eq(a.n, 3);
    x = dc_assignments_find(&a, "vg_a", 4);
    ck_assert(x && x->activated && x->variation_id_len == 4 && !memcmp(x->variation_id, "var1", 4));
    x = dc_assignments_find(&a, "vg_b", 4);
    ck_assert(x && !x->activated && x->variation_id_len == 4 &&
              !memcmp(x->variation_id, "var2", 4));
    x = dc_assignments_find(&a, "vg_c", 4);
    ck_assert(x && x->activated && x->variation_id_len == 3 && !memcmp(x->variation_id, "v:3", 3));
    /* d = save time + 6 months: 2026-12-06T20:00:00Z - 6 months = 2026-06-06T20:00:00Z */
    ck_assert_int_eq(a.ts_ms, 1780776000000LL);
    ck_assert_int_eq(dc_store_dynamo_decode_item(pool, "id", reply, strlen(reply), 30, &a), 3);
    ck_assert_int_eq(a.ts_ms, (1796587200LL - 30 * 86400) * 1000);

    /* another key attribute name: "id" is then an assignment attribute like any other */
    ck_assert_int_eq(dc_store_dynamo_decode_item(pool, "pk", reply, strlen(reply), 0, &a), 3);
    ck_assert_int_eq(a.n, 4);

    ck_assert_int_eq(dc_store_dynamo_decode_item(pool, "id", "{}", 2, 0, &a), 0); /* no item */
    ck_assert_int_eq(a.n, 0);
    ck_assert_int_eq(dc_store_dynamo_decode_item(pool, "id", "[1]", 3, 0, &a), -1);
    ck_assert_int_eq(dc_store_dynamo_decode_item(pool, "id", "{\"Item\":[]}", 11, 0, &a), -1);
    ck_assert_int_eq(dc_store_dynamo_decode_item(pool, "id", "{\"Item\":{\"a\":", 14, 0, &a), -1);

    ck_assert_int_eq(dc_store_dynamo_decode_value("abc:0", 5, &len, &act), 0);
    ck_assert(len == 3 && !act);
    ck_assert_int_eq(dc_store_dynamo_decode_value("abc:2", 5, &len, &act), 0);
    ck_assert(len == 5 && !act);
    ck_assert_int_eq(dc_store_dynamo_decode_value(":1", 2, &len, &act), -1);
}
END_TEST

/* dynamo:// URIs: options checked at open, secrets masked in the store's URI. */
START_TEST(dynamo_uris)
{
    char err[400];
    dc_store_t *s;

    setenv("AWS_ACCESS_KEY_ID", "AK", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
    s = dc_store_open(pool, "dynamo://my-table?region=eu-west-1&pk_field=pk&pk_separator=%23",
                      err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_str_eq(s->provider->name, "dynamo");
    s = dc_store_open(pool, "dynamo://?region=eu-west-1", err, sizeof(err)); /* default table */
    ck_assert_msg(s != NULL, "%s", err);
#define BAD(uri, what)                                                                             \
    ck_assert_ptr_null(dc_store_open(pool, uri, err, sizeof(err)));                               \
    ck_assert_msg(strstr(err, what) != NULL, "%s", err)
    BAD("dynamo://a?region=eu-west-1", "table name");
    BAD("dynamo://t/x?region=eu-west-1", "table name");
    BAD("dynamo://table", "no region");
    BAD("dynamo://table?region=eu-west-1&get_timeout_ms=0", "get_timeout_ms");
    BAD("dynamo://table?region=eu-west-1&pk_field=d", "pk_field");
    BAD("dynamo://table?region=eu-west-1&bogus=1", "unknown option");
    BAD("dynamo://table?region=eu-west-1&endpoint=ftp://x", "http");
    BAD("dynamo://table?region=eu-west-1&token=SECRET&x", "token=***");
#undef BAD
    ck_assert(strstr(err, "SECRET") == NULL);
}
END_TEST

static Suite *aws_suite(void)
{
    Suite *s = suite_create("aws");
    TCase *tc = tcase_create("aws");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, mask_uri);
    tcase_add_test(tc, parse_time);
    tcase_add_test(tc, refresh_schedule);
    tcase_add_test(tc, credentials_json);
    tcase_add_test(tc, ini_format);
    tcase_add_test(tc, chain_environment_first);
    tcase_add_test(tc, chain_profiles);
    tcase_add_test(tc, chain_container_endpoint);
    tcase_add_test(tc, region_and_endpoint);
    tcase_add_test(tc, sign_request);
    tcase_add_test(tc, retries_bounded);
    tcase_add_test(tc, dynamo_item_layout);
    tcase_add_test(tc, dynamo_uris);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(aws_suite)
