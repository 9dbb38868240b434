/* Swift concurrency in a forked child.
 *
 * Swift's global executor on Linux is libdispatch, whose worker threads do
 * not survive fork(): in a child of a process that had used them, a new
 * task never runs and every async call hangs. The child handler below
 * points the runtime's global-executor hooks at a few plain threads of the
 * child's own (started on first use), so a store opened in the child works.
 * The parent is never affected: the hooks are set in the child only. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SWIFTCALL __attribute__((swiftcall))

typedef struct SwiftJob SwiftJob;
typedef struct { void *identity; uintptr_t implementation; } SerialExecutorRef;

typedef void SWIFTCALL (*enqueue_original)(SwiftJob *);
typedef void SWIFTCALL (*delay_original)(unsigned long long, SwiftJob *);
typedef void SWIFTCALL (*deadline_original)(long long, long long, long long, long long, int, SwiftJob *);

extern void SWIFTCALL (*swift_task_enqueueGlobal_hook)(SwiftJob *, enqueue_original);
extern void SWIFTCALL (*swift_task_enqueueGlobalWithDelay_hook)(unsigned long long, SwiftJob *, delay_original);
extern void SWIFTCALL (*swift_task_enqueueGlobalWithDeadline_hook)(long long, long long, long long, long long, int,
                                                                   SwiftJob *, deadline_original);
extern void SWIFTCALL swift_job_run(SwiftJob *, SerialExecutorRef);

struct node { SwiftJob *job; struct node *next; };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct node *head, *tail;
static int started;

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&mu);
        while (!head) pthread_cond_wait(&cv, &mu);
        struct node *n = head;
        head = n->next;
        if (!head) tail = NULL;
        pthread_mutex_unlock(&mu);
        SwiftJob *job = n->job;
        free(n);
        swift_job_run(job, (SerialExecutorRef){0, 0}); /* the generic executor */
    }
    return NULL;
}

static void push(SwiftJob *job) {
    struct node *n = malloc(sizeof *n);
    if (!n) abort(); /* a job cannot be dropped: it would hang its task */
    n->job = job;
    n->next = NULL;
    pthread_mutex_lock(&mu);
    if (!started) {
        started = 1;
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        int count = cpus < 2 ? 2 : (cpus > 16 ? 16 : (int)cpus);
        for (int i = 0; i < count; i++) {
            pthread_t t;
            if (pthread_create(&t, NULL, worker, NULL) == 0) pthread_detach(t);
        }
    }
    if (tail) tail->next = n; else head = n;
    tail = n;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

struct timed { SwiftJob *job; clockid_t clock; struct timespec at; };

static void *timer(void *arg) {
    struct timed *t = arg;
    while (clock_nanosleep(t->clock, TIMER_ABSTIME, &t->at, NULL) != 0) {}
    push(t->job);
    free(t);
    return NULL;
}

/* One sleeping thread per delayed job: a child's fallback, not a fast path. */
static void push_at(SwiftJob *job, clockid_t clock, struct timespec at) {
    struct timed *t = malloc(sizeof *t);
    pthread_t th;
    if (t) {
        *t = (struct timed){job, clock, at};
        if (pthread_create(&th, NULL, timer, t) == 0) { pthread_detach(th); return; }
        free(t);
    }
    push(job); /* early rather than never */
}

static void SWIFTCALL enqueue_hook(SwiftJob *job, enqueue_original original) {
    (void)original;
    push(job);
}

static void SWIFTCALL delay_hook(unsigned long long ns, SwiftJob *job, delay_original original) {
    (void)original;
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    unsigned long long total = (unsigned long long)at.tv_nsec + ns % 1000000000ULL;
    at.tv_sec += (time_t)(ns / 1000000000ULL + total / 1000000000ULL);
    at.tv_nsec = (long)(total % 1000000000ULL);
    push_at(job, CLOCK_MONOTONIC, at);
}

static void SWIFTCALL deadline_hook(long long sec, long long nsec, long long tsec, long long tnsec, int clock,
                                    SwiftJob *job, deadline_original original) {
    (void)tsec; (void)tnsec; (void)original;
    /* Swift's clock ids: 1 continuous (counts suspension), 2 suspending. */
    struct timespec at = {(time_t)sec, (long)nsec};
    push_at(job, clock == 1 ? CLOCK_BOOTTIME : CLOCK_MONOTONIC, at);
}

static void in_child(void) {
    /* One thread now: whatever the parent's threads held is gone. */
    pthread_mutex_init(&mu, NULL);
    pthread_cond_init(&cv, NULL);
    head = tail = NULL; /* the parent's queued jobs belong to the parent */
    started = 0;
    swift_task_enqueueGlobal_hook = enqueue_hook;
    swift_task_enqueueGlobalWithDelay_hook = delay_hook;
    swift_task_enqueueGlobalWithDeadline_hook = deadline_hook;
}

__attribute__((constructor)) static void install_fork_handler(void) {
    pthread_atfork(NULL, NULL, in_child);
}
