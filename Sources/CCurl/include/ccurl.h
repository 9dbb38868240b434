#ifndef SNAPSHOTTER_CCURL_H
#define SNAPSHOTTER_CCURL_H
/* libcurl, loaded when the first HTTP client needs it rather than when the
 * library is: a process that only snapshots and restores locally never
 * maps libcurl and the ~30 libraries it pulls in (TLS, Kerberos, LDAP, ...),
 * which cost ~4 ms and ~6.5 MB at every start. Swift calls only these
 * functions, never curl_* ones: the library does not link libcurl (the
 * package tests check that no curl_ symbol is left undefined).
 *
 * The headers are used for types and constants only. */
#include <curl/curl.h>

/* Loads libcurl once and runs curl_global_init. NULL when it is ready, else
 * why not (a static string, the same on every later call). A libcurl the
 * library was linked against by a packager (the wheel bundles one) is used
 * when present; otherwise libcurl.so.4 is opened. */
const char *cshim_curl_load(void);

/* Each of these fails harmlessly when libcurl is not loaded: NULL, a
 * CURLE_FAILED_INIT result, or nothing done. */
CURL *cshim_curl_easy_init(void);
void cshim_curl_easy_cleanup(CURL *h);
void cshim_curl_easy_reset(CURL *h);
CURLcode cshim_curl_easy_perform(CURL *h);
const char *cshim_curl_easy_strerror(CURLcode rc);
struct curl_slist *cshim_curl_slist_append(struct curl_slist *list, const char *line);
void cshim_curl_slist_free_all(struct curl_slist *list);

/* curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot
 * call; these typed wrappers can be. */
CURLcode cshim_curl_setopt_long(CURL *h, CURLoption o, long v);
CURLcode cshim_curl_setopt_ptr(CURL *h, CURLoption o, const void *v);
CURLcode cshim_curl_setopt_off(CURL *h, CURLoption o, curl_off_t v);
CURLcode cshim_curl_setopt_write(CURL *h, size_t (*cb)(char *, size_t, size_t, void *));
CURLcode cshim_curl_setopt_read(CURL *h, size_t (*cb)(char *, size_t, size_t, void *));
CURLcode cshim_curl_setopt_header(CURL *h, size_t (*cb)(char *, size_t, size_t, void *));
CURLcode cshim_curl_setopt_xferinfo(CURL *h, int (*cb)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t));
CURLcode cshim_curl_getinfo_ptr(CURL *h, CURLINFO i, char **v);
CURLcode cshim_curl_getinfo_long(CURL *h, CURLINFO i, long *v);

/* The option's name without its CURLOPT_ prefix, for errors; NULL when
 * the loaded libcurl cannot say (before 7.73). */
const char *cshim_curl_option_name(CURLoption o);

/* Every transfer speaks http or https only, redirects included (never
 * file://, ftp://, ...). */
CURLcode cshim_curl_limit_protocols(CURL *h);

#endif
