/* libcurl through dlopen (see ccurl.h for why). */
#define _GNU_SOURCE
/* CURLOPT_PROTOCOLS is kept for a libcurl older than 7.85 at run time. */
#define CURL_DISABLE_DEPRECATION
#include "ccurl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

/* The soname of libcurl's ABI since 7.16 (2006). */
#define CCURL_SONAME "libcurl.so.4"

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    CURLcode (*easy_perform)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    /* Optional: 7.73 and later. */
    const struct curl_easyoption *(*option_by_id)(CURLoption);
} api;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *failure;
static char failure_text[512];
static int ready;

static void fail(const char *what, const char *detail) {
    snprintf(failure_text, sizeof failure_text, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    failure = failure_text;
}

/* The handle to look libcurl's symbols up in: a libcurl this object (the
 * library, or the program that links the engine in) already depends on, as
 * the wheel's, found through the object's own dependencies; else
 * libcurl.so.4 from the system's search path. */
static void *curl_handle(void) {
    Dl_info self;
    if (dladdr((void *)&cshim_curl_load, &self) && self.dli_fname && self.dli_fname[0]) {
        void *h = dlopen(self.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
        if (h && dlsym(h, "curl_easy_init")) return h;
        if (h) dlclose(h);
    }
    return dlopen(CCURL_SONAME, RTLD_NOW | RTLD_LOCAL);
}

#define RESOLVE(field, name)                                     \
    do {                                                         \
        *(void **)(&api.field) = dlsym(h, name);                 \
        if (!api.field) { fail("libcurl lacks " name, 0); return; } \
    } while (0)

static void load(void) {
    void *h = curl_handle();
    if (!h) {
        fail(CCURL_SONAME " could not be loaded", dlerror());
        return;
    }
    /* Never closed: handles and the global state live to the end. */
    RESOLVE(global_init, "curl_global_init");
    RESOLVE(easy_init, "curl_easy_init");
    RESOLVE(easy_cleanup, "curl_easy_cleanup");
    RESOLVE(easy_reset, "curl_easy_reset");
    RESOLVE(easy_perform, "curl_easy_perform");
    RESOLVE(easy_strerror, "curl_easy_strerror");
    RESOLVE(easy_setopt, "curl_easy_setopt");
    RESOLVE(easy_getinfo, "curl_easy_getinfo");
    RESOLVE(slist_append, "curl_slist_append");
    RESOLVE(slist_free_all, "curl_slist_free_all");
    *(void **)(&api.option_by_id) = dlsym(h, "curl_easy_option_by_id");
    if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fail("curl_global_init failed", 0);
        return;
    }
    ready = 1;
}

const char *cshim_curl_load(void) {
    pthread_once(&once, load);
    return ready ? 0 : failure;
}

/* True once libcurl is ready; every wrapper asks first, so none calls
 * through a pointer that is not set. */
static int loaded(void) { return cshim_curl_load() == 0; }

CURL *cshim_curl_easy_init(void) { return loaded() ? api.easy_init() : 0; }
void cshim_curl_easy_cleanup(CURL *h) { if (loaded()) api.easy_cleanup(h); }
void cshim_curl_easy_reset(CURL *h) { if (loaded()) api.easy_reset(h); }
CURLcode cshim_curl_easy_perform(CURL *h) { return loaded() ? api.easy_perform(h) : CURLE_FAILED_INIT; }

const char *cshim_curl_easy_strerror(CURLcode rc) {
    return loaded() ? api.easy_strerror(rc) : "libcurl is not loaded";
}

struct curl_slist *cshim_curl_slist_append(struct curl_slist *list, const char *line) {
    return loaded() ? api.slist_append(list, line) : 0;
}

void cshim_curl_slist_free_all(struct curl_slist *list) { if (loaded()) api.slist_free_all(list); }

#define SETOPT(h, o, v) (loaded() ? api.easy_setopt((h), (o), (v)) : CURLE_FAILED_INIT)

CURLcode cshim_curl_setopt_long(CURL *h, CURLoption o, long v) { return SETOPT(h, o, v); }
CURLcode cshim_curl_setopt_ptr(CURL *h, CURLoption o, const void *v) { return SETOPT(h, o, v); }
CURLcode cshim_curl_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return SETOPT(h, o, v); }

CURLcode cshim_curl_setopt_write(CURL *h, size_t (*cb)(char *, size_t, size_t, void *)) {
    return SETOPT(h, CURLOPT_WRITEFUNCTION, cb);
}

CURLcode cshim_curl_setopt_read(CURL *h, size_t (*cb)(char *, size_t, size_t, void *)) {
    return SETOPT(h, CURLOPT_READFUNCTION, cb);
}

CURLcode cshim_curl_setopt_header(CURL *h, size_t (*cb)(char *, size_t, size_t, void *)) {
    return SETOPT(h, CURLOPT_HEADERFUNCTION, cb);
}

CURLcode cshim_curl_setopt_xferinfo(CURL *h, int (*cb)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t)) {
    return SETOPT(h, CURLOPT_XFERINFOFUNCTION, cb);
}

CURLcode cshim_curl_getinfo_ptr(CURL *h, CURLINFO i, char **v) {
    return loaded() ? api.easy_getinfo(h, i, v) : CURLE_FAILED_INIT;
}

CURLcode cshim_curl_getinfo_long(CURL *h, CURLINFO i, long *v) {
    return loaded() ? api.easy_getinfo(h, i, v) : CURLE_FAILED_INIT;
}

const char *cshim_curl_option_name(CURLoption o) {
    if (!loaded() || !api.option_by_id) return 0;
    const struct curl_easyoption *e = api.option_by_id(o);
    return e ? e->name : 0;
}

CURLcode cshim_curl_limit_protocols(CURL *h) {
    CURLcode rc = SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (rc == CURLE_OK) return SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    if (rc != CURLE_UNKNOWN_OPTION) return rc;
    /* A libcurl before 7.85 at run time knows only the bit masks. */
    rc = SETOPT(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    if (rc == CURLE_OK) rc = SETOPT(h, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    return rc;
}
