/*
 * dc_azure: Azure Blob Storage for the event sink (dc_objstore.h).
 *
 *     azblob://ACCOUNT/CONTAINER[/PREFIX][?endpoint=URL&sas=TOKEN|key=BASE64&server=NAME]
 *
 * Authorisation, the first found of:
 *   1. sas= or key= in the URI (%-encoded; masked wherever the URI is shown);
 *   2. AZURE_STORAGE_SAS_TOKEN, then AZURE_STORAGE_KEY (the account key, base64);
 *   3. AZURE_STORAGE_CONNECTION_STRING (AccountName, AccountKey or
 *      SharedAccessSignature, BlobEndpoint; "UseDevelopmentStorage=true" is
 *      Azurite's well-known account on 127.0.0.1:10000), used when its
 *      AccountName is ACCOUNT.
 * A SAS token is appended to each request's query; an account key signs each
 * request with Shared Key (HMAC-SHA256 of the canonical request, the
 * "2009-09-19 and later" string-to-sign). With neither, every operation
 * fails as a credentials problem without a request.
 *
 * The endpoint is the account's blob service URL: by default
 * https://ACCOUNT.blob.core.windows.net; for Azurite or another emulator
 * the path-style URL with the account, e.g. http://127.0.0.1:10000/devstoreaccount1
 * (endpoint= option, or the connection string's BlobEndpoint).
 */
#ifndef DC_AZURE_H
#define DC_AZURE_H

#include "dc_objstore.h"

#include <apr_pools.h>

#define DC_AZURE_API_VERSION "2021-08-06"

typedef struct {
    const char *account;
    const char *container;
    const char *endpoint;        /* no trailing '/' */
    const unsigned char *key;    /* decoded account key, or NULL */
    size_t key_len;
    const char *sas;             /* the SAS query (no '?'), or NULL */
    const char *credential_source; /* "uri key=", "AZURE_STORAGE_KEY", ... for the log */
} dc_azure_t;

typedef const char *dc_azure_getenv_fn(const char *name);

dc_objstore_t *dc_azure_open(apr_pool_t *p, const char *uri, const dc_objstore_http_t *http,
                             char *err, size_t errlen);

/* Parses uri into az (and os's prefix/server/options), taking
 * credentials from getenv where the URI has none. 0, or -1 + err. */
int dc_azure_parse(apr_pool_t *p, const char *uri, dc_azure_getenv_fn *getenv_fn,
                   dc_azure_t *az, dc_objstore_t *os, char *err, size_t errlen);

/* A Shared Key request, as signed. headers are "Name: value" lines (the
 * x-ms-* ones and the standard ones of the string-to-sign); path is the URL
 * path as sent (escaped), query the URL query without '?' (or NULL). */
typedef struct {
    const char *method;
    const char *path;
    const char *query;
    const char *const *headers;
    size_t n_headers;
} dc_azure_request_t;

/* The string-to-sign of req for account (exposed for the unit tests). */
char *dc_azure_string_to_sign(apr_pool_t *p, const dc_azure_request_t *req, const char *account);
/* "SharedKey ACCOUNT:SIGNATURE" for req, or NULL when HMAC fails. */
const char *dc_azure_authorization(apr_pool_t *p, const dc_azure_request_t *req,
                                   const char *account, const unsigned char *key,
                                   size_t key_len);
/* RFC 1123 date for x-ms-date. */
const char *dc_azure_date(apr_pool_t *p, apr_time_t t);

#endif
