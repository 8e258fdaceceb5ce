/*
 * dc_http: how the library talks to the remote platform (the config CDN, the
 * event collector) with libcurl, in one place: http and https only (also
 * after a redirect), TLS peers and host names always verified, no signals
 * (the handles live in threads), bounded connect and transfer times.
 */
#ifndef DC_HTTP_H
#define DC_HTTP_H

#include <curl/curl.h>

/* Resets c and applies the settings above; ca_file may be NULL (system CAs). */
void dc_http_setup(CURL *c, const char *url, long timeout_ms, long connect_timeout_ms,
                   const char *ca_file, const char *user_agent);

#endif
