/*
 * The object store sinks' pure parts: Azure's Shared Key string-to-sign
 * (the documented example) and signature (checked against Python's hmac),
 * object names by hour, the URIs of both backends and where credentials
 * come from, masking, the classification of error answers, gzip.
 * Requests against real servers are tests/sinks (s3rver, Azurite).
 */
#include "dc_azure.h"
#include "dc_cloud_http.h"
#include "dc_objstore.h"
#include "dc_s3.h"
#include "dc_test.h"

#include <apr_strings.h>
#include <zlib.h>

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* The example of "Authorize with Shared Key" (Blob service, version 2015-02-21):
 * GET https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata&timeout=20 */
START_TEST(shared_key_string_to_sign_documented_example)
{
    const char *headers[] = {"x-ms-version: 2015-02-21", "X-MS-Date: Fri, 26 Jun 2015 23:39:12 GMT"};
    dc_azure_request_t req = {"GET", "/mycontainer", "restype=container&comp=metadata&timeout=20",
                              headers, 2};

    ck_assert_str_eq(dc_azure_string_to_sign(pool, &req, "myaccount"),
                     "GET\n\n\n\n\n\n\n\n\n\n\n\n"
                     "x-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2015-02-21\n"
                     "/myaccount/mycontainer\ncomp:metadata\nrestype:container\ntimeout:20");
}
END_TEST

static const char *fake_env_value;
static const char *fake_env_name;

static const char *fake_getenv(const char *name)
{
    return fake_env_name && strcmp(name, fake_env_name) == 0 ? fake_env_value : NULL;
}

static const unsigned char *dev_key(size_t *len)
{
    static unsigned char key[64];
    static const char b64[] =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    dc_azure_t az;
    dc_objstore_t os;
    char err[200];
    const char *uri = apr_pstrcat(pool, "azblob://devstoreaccount1/c0ntainer?key=", b64, NULL);

    memset(&os, 0, sizeof(os));
    ck_assert_int_eq(dc_azure_parse(pool, uri, fake_getenv, &az, &os, err, sizeof(err)), 0);
    ck_assert_uint_eq(az.key_len, 64);
    memcpy(key, az.key, 64);
    *len = 64;
    return key;
}

/* Signatures as Python's hmac/hashlib/base64 compute them for the same strings. */
START_TEST(shared_key_signature)
{
    const char *get_headers[] = {"x-ms-date: Fri, 26 Jun 2015 23:39:12 GMT",
                                 "x-ms-version: 2015-02-21"};
    dc_azure_request_t get = {"GET", "/mycontainer", "restype=container&comp=metadata&timeout=20",
                              get_headers, 2};
    const char *put_headers[] = {"x-ms-date: Sun, 06 Dec 2026 20:05:09 GMT",
                                 "x-ms-version: 2021-08-06", "x-ms-blob-type: BlockBlob",
                                 "Content-Length: 1234", "Content-MD5: XrY7u+Ae7tCTyyK7j1rNww==",
                                 "Content-Type: application/gzip"};
    /* Azurite's path-style URL: the account is in the path as well */
    dc_azure_request_t put = {"PUT",
                              "/devstoreaccount1/events/a/2026/12/06/20/web1-1.jsonl.gz", NULL,
                              put_headers, 6};
    size_t len;
    const unsigned char *key = dev_key(&len);

    ck_assert_str_eq(dc_azure_authorization(pool, &get, "myaccount", key, len),
                     "SharedKey myaccount:1u9lui2jDxj0+fpbHjQ5m5NnastJRSYM+PSmfi8TXx4=");
    ck_assert_str_eq(dc_azure_string_to_sign(pool, &put, "devstoreaccount1"),
                     "PUT\n\n\n1234\nXrY7u+Ae7tCTyyK7j1rNww==\napplication/gzip\n\n\n\n\n\n\n"
                     "x-ms-blob-type:BlockBlob\nx-ms-date:Sun, 06 Dec 2026 20:05:09 GMT\n"
                     "x-ms-version:2021-08-06\n"
                     "/devstoreaccount1/devstoreaccount1/events/a/2026/12/06/20/web1-1.jsonl.gz");
    ck_assert_str_eq(dc_azure_authorization(pool, &put, "devstoreaccount1", key, len),
                     "SharedKey devstoreaccount1:O1tTG0DSVc5JZY1j0j2YFCNnbuf/WF6ztQPMyIsnsi8=");
}
END_TEST

START_TEST(shared_key_zero_length_and_query_decoding)
{
    const char *headers[] = {"Content-Length: 0", "x-ms-date: D", "x-ms-version: V"};
    dc_azure_request_t del = {"DELETE", "/c/a%20b", "Timeout=20&prefix=a%2Fb", headers, 3};

    /* a zero Content-Length is signed as ""; parameter names lowercased, values decoded */
    ck_assert_str_eq(dc_azure_string_to_sign(pool, &del, "acct"),
                     "DELETE\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:D\nx-ms-version:V\n"
                     "/acct/c/a%20b\nprefix:a/b\ntimeout:20");
}
END_TEST

START_TEST(object_names_by_hour)
{
    char key[200];
    apr_time_t t = apr_time_from_sec(1796587509); /* 2026-12-06T20:05:09Z */

    ck_assert_uint_gt(dc_objstore_key(key, sizeof(key), "events/app", t, "web1",
                                      "1796587509000-42-3-0a1b2c3d"), 0);
    ck_assert_str_eq(key, "events/app/2026/12/06/20/web1-1796587509000-42-3-0a1b2c3d.jsonl.gz");
    ck_assert_uint_gt(dc_objstore_key(key, sizeof(key), "", apr_time_from_sec(0), "h", "1"), 0);
    ck_assert_str_eq(key, "1970/01/01/00/h-1.jsonl.gz");
    /* the hour of the first event, in UTC: 23:59:59.999 is still hour 23 */
    ck_assert_uint_gt(dc_objstore_key(key, sizeof(key), "p", apr_time_from_msec(1796601599999),
                                      "h", "1"), 0);
    ck_assert_str_eq(key, "p/2026/12/06/23/h-1.jsonl.gz");
    ck_assert_uint_eq(dc_objstore_key(key, 10, "events", t, "web1", "1"), 0);
    ck_assert_str_eq(key, "");
}
END_TEST

static int parse(const char *uri, dc_azure_t *az, dc_objstore_t *os, char *err)
{
    memset(os, 0, sizeof(*os));
    return dc_azure_parse(pool, uri, fake_getenv, az, os, err, 200);
}

START_TEST(azure_uri_and_credentials)
{
    dc_azure_t az;
    dc_objstore_t os;
    char err[200];

    fake_env_name = NULL;
    ck_assert_int_eq(parse("azblob://acct1/events/a/b/?sas=%3Fsv%3D2021-08-06%26sig%3Dx%2By"
                           "&server=web-1",
                           &az, &os, err), 0);
    ck_assert_str_eq(az.account, "acct1");
    ck_assert_str_eq(az.container, "events");
    ck_assert_str_eq(os.prefix, "a/b");
    ck_assert_str_eq(os.server, "web-1");
    ck_assert_str_eq(az.sas, "sv=2021-08-06&sig=x+y"); /* decoded, '?' dropped, '+' kept */
    ck_assert_ptr_null(az.key);
    ck_assert_str_eq(az.endpoint, "https://acct1.blob.core.windows.net");
    ck_assert_str_eq(os.where, "container events of account acct1");

    ck_assert_int_eq(parse("azblob://acct1/events?endpoint=http://127.0.0.1:1/acct1/", &az, &os,
                           err), 0);
    ck_assert_str_eq(az.endpoint, "http://127.0.0.1:1/acct1");
    ck_assert_str_eq(os.prefix, "");
    ck_assert_ptr_null(az.key);
    ck_assert_ptr_null(az.sas); /* none: operations fail as a credentials problem */

    fake_env_name = "AZURE_STORAGE_KEY";
    fake_env_value = "a2V5";
    ck_assert_int_eq(parse("azblob://acct1/events", &az, &os, err), 0);
    ck_assert_uint_eq(az.key_len, 3);
    ck_assert_str_eq(az.credential_source, "AZURE_STORAGE_KEY");

    fake_env_name = "AZURE_STORAGE_CONNECTION_STRING";
    fake_env_value = "UseDevelopmentStorage=true";
    ck_assert_int_eq(parse("azblob://devstoreaccount1/events", &az, &os, err), 0);
    ck_assert_str_eq(az.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
    ck_assert_uint_eq(az.key_len, 64);
    /* another account's connection string is not used */
    ck_assert_int_eq(parse("azblob://other1/events", &az, &os, err), 0);
    ck_assert_ptr_null(az.key);
    fake_env_value = "DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey=a2V5;"
                     "BlobEndpoint=https://blob.example/;EndpointSuffix=core.windows.net";
    ck_assert_int_eq(parse("azblob://acct1/events", &az, &os, err), 0);
    ck_assert_str_eq(az.endpoint, "https://blob.example");
    ck_assert_uint_eq(az.key_len, 3);
    fake_env_name = NULL;

    ck_assert_int_eq(parse("azblob://acct1", &az, &os, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "ACCOUNT/CONTAINER"));
    ck_assert_int_eq(parse("azblob://Acct/events", &az, &os, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "account"));
    ck_assert_int_eq(parse("azblob://acct1/Ev_ents", &az, &os, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "container"));
    ck_assert_int_eq(parse("azblob://acct1/events?region=x", &az, &os, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "unknown option \"region\""));
    ck_assert_int_eq(parse("azblob://acct1/events?key=not*base64", &az, &os, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "base64"));
    ck_assert_ptr_null(strstr(err, "not*base64")); /* the secret is not repeated */
    ck_assert_int_eq(parse("azblob://acct1/events?key=a2V5&sas=x", &az, &os, err), -1);
    ck_assert_int_eq(parse("azblob://acct1/events?endpoint=ftp://x", &az, &os, err), -1);
    ck_assert_int_eq(parse("azblob://acct1/events?server=a/b", &az, &os, err), -1);
    ck_assert_int_eq(parse("azblob://acct1/events?max_object_bytes=2m", &az, &os, err), 0);
    ck_assert_uint_eq(os.max_bytes, 2 * 1024 * 1024);
    ck_assert_int_eq(parse("azblob://acct1/events?max_object_bytes=0", &az, &os, err), -1);
    ck_assert_uint_eq(os.interval, DC_OBJSTORE_DEFAULT_INTERVAL);
    ck_assert_int_eq(parse("azblob://acct1/events?interval=250ms", &az, &os, err), 0);
    ck_assert_int_eq(os.interval, apr_time_from_msec(250));
    ck_assert_int_eq(parse("azblob://acct1/events?interval=2m", &az, &os, err), 0);
    ck_assert_int_eq(os.interval, apr_time_from_sec(120));
    ck_assert_int_eq(parse("azblob://acct1/events?interval=soon", &az, &os, err), -1);
    ck_assert_int_eq(parse("azblob://acct1/events?interval=2h", &az, &os, err), -1);
}
END_TEST

START_TEST(s3_uri_and_urls)
{
    dc_objstore_t os;
    const char *bucket;
    apr_table_t *q;
    char err[200];

    memset(&os, 0, sizeof(os));
    ck_assert_int_eq(dc_s3_parse(pool, "s3://my-bucket/events/app/?region=eu-west-3&endpoint="
                                       "http://127.0.0.1:4569",
                                 &bucket, &os, &q, err, sizeof(err)), 0);
    ck_assert_str_eq(bucket, "my-bucket");
    ck_assert_str_eq(os.prefix, "events/app");
    ck_assert_str_eq(apr_table_get(q, "region"), "eu-west-3");
    ck_assert_str_eq(os.where, "bucket my-bucket");
    ck_assert_int_eq(dc_s3_parse(pool, "s3://b", &bucket, &os, &q, err, sizeof(err)), -1);
    ck_assert_int_eq(dc_s3_parse(pool, "s3://Bucket/x", &bucket, &os, &q, err, sizeof(err)), -1);
    ck_assert_int_eq(dc_s3_parse(pool, "s3://bucket/x?sas=1", &bucket, &os, &q, err, sizeof(err)),
                     -1);
    ck_assert_int_eq(dc_s3_parse(pool, "s3://bucket/x?endpoint=file:/x", &bucket, &os, &q, err,
                                 sizeof(err)), -1);

    ck_assert_str_eq(dc_s3_url(pool, "https://s3.eu-west-3.amazonaws.com", "my-bucket", "a/b c"),
                     "https://my-bucket.s3.eu-west-3.amazonaws.com/a/b%20c");
    ck_assert_str_eq(dc_s3_url(pool, "https://s3.eu-west-3.amazonaws.com", "my.bucket", "k"),
                     "https://s3.eu-west-3.amazonaws.com/my.bucket/k");
    ck_assert_str_eq(dc_s3_url(pool, "http://127.0.0.1:4569", "my-bucket", "a/k.gz"),
                     "http://127.0.0.1:4569/my-bucket/a/k.gz");

    ck_assert_int_eq(dc_objstore_check(pool, "s3://bucket/p?region=x", err, sizeof(err)), 0);
    ck_assert_int_eq(dc_objstore_check(pool, "azblob://acct1/c0n", err, sizeof(err)), 0);
    ck_assert_int_eq(dc_objstore_check(pool, "azblob://acct1/c0n?bad=1", err, sizeof(err)), -1);
}
END_TEST

START_TEST(secrets_are_masked)
{
    const char *m = dc_cloud_mask_uri(pool, "azblob://acct1/events?endpoint=http://h/acct1"
                                            "&key=c2VjcmV0&server=a");

    ck_assert_str_eq(m, "azblob://acct1/events?endpoint=http://h/acct1&key=***&server=a");
    m = dc_cloud_mask_uri(pool, "azblob://acct1/events?sas=sv%3D1%26sig%3Dsecret");
    ck_assert_ptr_null(strstr(m, "secret"));
}
END_TEST

START_TEST(error_answers_classified)
{
    char code[64];
    const char *body = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>"
                       "<Message>The specified bucket does not exist</Message></Error>";

    dc_objstore_xml_code(body, strlen(body), code, sizeof(code));
    ck_assert_str_eq(code, "NoSuchBucket");
    dc_objstore_xml_code("<Code>Bad\"<x", 12, code, sizeof(code));
    ck_assert_str_eq(code, "Bad_");
    dc_objstore_xml_code("no xml", 6, code, sizeof(code));
    ck_assert_str_eq(code, "");

    ck_assert_int_eq(dc_objstore_classify(200, ""), DC_OBJ_OK);
    ck_assert_int_eq(dc_objstore_classify(201, ""), DC_OBJ_OK);
    ck_assert_int_eq(dc_objstore_classify(403, "InvalidAccessKeyId"), DC_OBJ_CREDENTIALS);
    ck_assert_int_eq(dc_objstore_classify(403, "SignatureDoesNotMatch"), DC_OBJ_CREDENTIALS);
    ck_assert_int_eq(dc_objstore_classify(403, "AuthenticationFailed"), DC_OBJ_CREDENTIALS);
    ck_assert_int_eq(dc_objstore_classify(403, "AccessDenied"), DC_OBJ_PERMISSION);
    ck_assert_int_eq(dc_objstore_classify(403, "AuthorizationPermissionMismatch"),
                     DC_OBJ_PERMISSION);
    ck_assert_int_eq(dc_objstore_classify(404, "NoSuchBucket"), DC_OBJ_NOT_FOUND);
    ck_assert_int_eq(dc_objstore_classify(404, "ContainerNotFound"), DC_OBJ_NOT_FOUND);
    ck_assert_int_eq(dc_objstore_classify(400, "BadDigest"), DC_OBJ_REJECTED);
    ck_assert_int_eq(dc_objstore_classify(400, "Md5Mismatch"), DC_OBJ_REJECTED);
    ck_assert_int_eq(dc_objstore_classify(503, "SlowDown"), DC_OBJ_TRANSIENT);
    ck_assert_int_eq(dc_objstore_classify(500, ""), DC_OBJ_TRANSIENT);
    ck_assert_int_eq(dc_objstore_classify(401, ""), DC_OBJ_CREDENTIALS);
}
END_TEST

START_TEST(gzip_round_trip)
{
    const char *text = "{\"t\":\"CAMPAIGN\"}\n{\"t\":\"SEGMENT\"}\n";
    size_t gz_len = 0;
    unsigned char *gz = dc_objstore_gzip(pool, text, strlen(text), &gz_len), out[256];
    z_stream z;

    ck_assert_ptr_nonnull(gz);
    ck_assert_uint_ge(gz_len, 18);
    ck_assert_int_eq(gz[0], 0x1f); /* a gzip member, not a bare deflate stream */
    ck_assert_int_eq(gz[1], 0x8b);
    memset(&z, 0, sizeof(z));
    ck_assert_int_eq(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = gz;
    z.avail_in = (uInt)gz_len;
    z.next_out = out;
    z.avail_out = sizeof(out);
    ck_assert_int_eq(inflate(&z, Z_FINISH), Z_STREAM_END);
    ck_assert_uint_eq(z.total_out, strlen(text));
    ck_assert_int_eq(memcmp(out, text, strlen(text)), 0);
    inflateEnd(&z);
}
END_TEST

static Suite *objstore_suite(void)
{
    Suite *s = suite_create("objstore");
    TCase *tc = tcase_create("objstore");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, shared_key_string_to_sign_documented_example);
    tcase_add_test(tc, shared_key_signature);
    tcase_add_test(tc, shared_key_zero_length_and_query_decoding);
    tcase_add_test(tc, object_names_by_hour);
    tcase_add_test(tc, azure_uri_and_credentials);
    tcase_add_test(tc, s3_uri_and_urls);
    tcase_add_test(tc, secrets_are_masked);
    tcase_add_test(tc, error_answers_classified);
    tcase_add_test(tc, gzip_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(objstore_suite)
