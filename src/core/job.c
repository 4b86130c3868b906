/* job.c - jobs: one runner thread per operation; the caller polls an
 * eventfd, drains events and reads progress.  Nothing here calls back into
 * the caller.  Requests a worker makes of the caller: jobreply.c. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "job.h"
#include "util.h"

#define QUEUE_MAX 1024 /* events beyond this are dropped, but for REQUEST and DONE */
#define QUEUE_GROW 64
#define PROGRESS_INTERVAL 0.1

struct ih_cancel {
	atomic_int set;
	atomic_int refs;
};

ih_cancel *ih_cancel_new(void)
{
	ih_cancel *c = calloc(1, sizeof *c);
	if (c)
		atomic_store(&c->refs, 1);
	return c;
}

ih_cancel *ih_cancel_ref(ih_cancel *c)
{
	if (c)
		atomic_fetch_add(&c->refs, 1);
	return c;
}

void ih_cancel_unref(ih_cancel *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1)
		free(c);
}

void ih_cancel_trigger(ih_cancel *c)
{
	if (c)
		atomic_store(&c->set, 1);
}

int ih_cancel_is_set(const ih_cancel *c)
{
	return c && atomic_load(&c->set);
}

int ih_job_cancelled(const ih_job *j)
{
	return atomic_load_explicit(&j->cancel, memory_order_relaxed) || ih_cancel_is_set(j->token);
}

static void fill_progress(ih_job *j, ih_progress *p)
{
	p->phase = (ih_phase)atomic_load(&j->phase);
	p->bytes_done = atomic_load(&j->bytes_done);
	p->bytes_total = atomic_load(&j->bytes_total);
	p->blobs_done = atomic_load(&j->blobs_done);
	p->blobs_total = atomic_load(&j->blobs_total);
	p->elapsed = ih_now() - j->t0;
}

/* Wakes the caller.  Through sigfd, which stays open while any thread of
 * the job runs: a thread may signal after dropping mu (the caller, woken,
 * would otherwise block on mu until a preempted worker of lower priority
 * ran again), and writing once the caller closed its fd is harmless. */
static void signal_fd(ih_job *j)
{
	uint64_t one = 1;
	ssize_t n = write(j->sigfd, &one, sizeof one);
	(void)n; /* EAGAIN only if the counter is saturated: still readable */
}

/* A worker waits on a REQUEST's answer and the caller on DONE: losing
 * either would hang one of them. */
static int essential(ih_event_type t)
{
	return t == IH_EVENT_REQUEST || t == IH_EVENT_DONE;
}

/* Caller holds mu.  Room for one more essential event past QUEUE_MAX: a
 * bigger queue (there are only as many REQUESTs as waiting workers), or if
 * memory is short, the newest event that may be dropped. */
static int room_for_essential_locked(ih_job *j)
{
	if (j->qlen < j->qcap)
		return 1;
	ih_event *q = realloc(j->queue, (j->qcap + QUEUE_GROW) * sizeof *q);
	if (q) {
		j->queue = q;
		j->qcap += QUEUE_GROW;
		return 1;
	}
	for (size_t i = j->qlen; i-- > 0;) {
		if (!essential(j->queue[i].type)) {
			memmove(j->queue + i, j->queue + i + 1, (j->qlen - i - 1) * sizeof *q);
			j->qlen--;
			j->dropped++;
			return 1;
		}
	}
	return 0;
}

/* Caller holds mu; once it dropped mu, it wakes the caller (wake) when
 * this returns 1. */
static int push_locked(ih_job *j, const ih_event *ev)
{
	if (ev->type == IH_EVENT_PROGRESS && j->qlen &&
	    j->queue[j->qlen - 1].type == IH_EVENT_PROGRESS) {
		j->queue[j->qlen - 1] = *ev; /* coalesce: only the newest matters */
	} else if (j->qlen < QUEUE_MAX ||
		   (essential(ev->type) && room_for_essential_locked(j))) {
		j->queue[j->qlen++] = *ev;
	} else {
		j->dropped++;
		return 0;
	}
	return 1;
}

/* After push_locked, mu dropped: the caller's fd and a C waiter. */
static void wake(ih_job *j)
{
	signal_fd(j);
	pthread_cond_broadcast(&j->cv);
}

void ih_job_wake_caller_locked(ih_job *j)
{
	j->wake_gen++;
	wake(j);
}

void ih_job_post_event(ih_job *j, ih_event *ev)
{
	pthread_mutex_lock(&j->mu);
	fill_progress(j, &ev->progress); /* its time: when it is queued */
	int queued = push_locked(j, ev);
	pthread_mutex_unlock(&j->mu);
	if (queued)
		wake(j);
}

void ih_job_post(ih_job *j, ih_event_type type, const char *fmt, ...)
{
	ih_event ev = {.type = type};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ev.text, sizeof ev.text, fmt, ap);
	va_end(ap);
	ih_job_post_event(j, &ev);
}

void ih_job_set_phase(ih_job *j, ih_phase p, uint64_t bytes_total, uint64_t blobs_total)
{
	atomic_store(&j->phase, (int)p);
	atomic_store(&j->bytes_total, bytes_total);
	atomic_store(&j->blobs_total, blobs_total);
	atomic_store(&j->bytes_done, 0);
	atomic_store(&j->blobs_done, 0);
	j->last_post = ih_now();
	ih_job_post(j, IH_EVENT_PROGRESS, "%s", ih_phase_name(p));
}

void ih_job_tick(ih_job *j)
{
	double now = ih_now();
	if (now - j->last_post < PROGRESS_INTERVAL)
		return;
	j->last_post = now;
	ih_job_post(j, IH_EVENT_PROGRESS, "%s", ih_phase_name((ih_phase)atomic_load(&j->phase)));
}

static atomic_int worker_nice;

void ih_set_worker_nice(int increment)
{
	atomic_store(&worker_nice, increment < 0 ? 0 : increment > 19 ? 19 : increment);
}

static void *runner(void *arg)
{
	ih_job *j = arg;
	ih_report *report = NULL;
	ih_error err = {0};
	sigset_t xfsz;

	/* A write past RLIMIT_FSIZE must fail with EFBIG (reported as disk
	 * full), not kill the caller's process; workers inherit the mask. */
	sigemptyset(&xfsz);
	sigaddset(&xfsz, SIGXFSZ);
	{
		/* a lower priority for the job's threads (they inherit it), so
		 * that the caller's event loop is scheduled first on a busy
		 * machine: ih_set_worker_nice */
		int nice_inc = atomic_load(&worker_nice);
		if (nice_inc > 0)
			setpriority(PRIO_PROCESS, (id_t)gettid(), getpriority(PRIO_PROCESS, (id_t)gettid()) + nice_inc);
	}
	pthread_sigmask(SIG_BLOCK, &xfsz, NULL);
	int rc = j->fn(j, j->arg, &report, &err);
	atomic_store(&j->phase, IH_PHASE_DONE);
	pthread_mutex_lock(&j->mu);
	j->rc = rc;
	j->err = err;
	j->report = report;
	j->done = 1;
	ih_job_requests_abandon_locked(j); /* replies from now on: cancelled */
	{
		ih_event ev = {.type = IH_EVENT_DONE};
		fill_progress(j, &ev.progress);
		snprintf(ev.text, sizeof ev.text, "%.255s", rc ? err.message : "done");
		push_locked(j, &ev); /* essential: always queued */
	}
	pthread_mutex_unlock(&j->mu);
	wake(j);
	return NULL;
}

int ih_job_start(ih_job_fn fn, void *arg, void (*free_arg)(void *), ih_cancel *token,
		 ih_job **out, ih_error *err)
{
	ih_job *j = calloc(1, sizeof *j);
	if (!j)
		goto nomem;
	j->qcap = QUEUE_MAX;
	j->queue = malloc(j->qcap * sizeof *j->queue);
	j->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	j->sigfd = j->efd >= 0 ? fcntl(j->efd, F_DUPFD_CLOEXEC, 0) : -1;
	if (!j->queue || j->efd < 0 || j->sigfd < 0) {
		if (j->efd >= 0)
			close(j->efd);
		if (j->sigfd >= 0)
			close(j->sigfd);
		free(j->queue);
		free(j);
		goto nomem;
	}
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	{
		/* a worker's timed waits must not jump with the wall clock */
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&j->reply_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	j->next_req_id = 1;
	j->fn = fn;
	j->arg = arg;
	j->free_arg = free_arg;
	j->token = ih_cancel_ref(token);
	j->t0 = j->last_post = ih_now();
	if (pthread_create(&j->thread, NULL, runner, j) == 0) {
		j->started = 1;
	} else {
		j->free_arg = NULL; /* the caller keeps arg on failure */
		ih_job_free(j);
		return ih_fail(err, IH_ERR_NOMEM, "cannot start a thread");
	}
	*out = j;
	return IH_OK;
nomem:
	return ih_fail(err, IH_ERR_NOMEM, "out of memory");
}

int ih_job_fd(const ih_job *j)
{
	return j->efd;
}

size_t ih_job_events(ih_job *j, ih_event *out, size_t max)
{
	size_t n;
	pthread_mutex_lock(&j->mu);
	n = j->qlen < max ? j->qlen : max;
	if (n) {
		memcpy(out, j->queue, n * sizeof *out);
		memmove(j->queue, j->queue + n, (j->qlen - n) * sizeof *out);
		j->qlen -= n;
	}
	if (j->qlen == 0 && !j->done && j->efd >= 0) {
		uint64_t v;
		ssize_t r = read(j->efd, &v, sizeof v); /* drained: not readable */
		(void)r;
	}
	pthread_mutex_unlock(&j->mu);
	return n;
}

void ih_job_progress(ih_job *j, ih_progress *out)
{
	fill_progress(j, out);
}

void ih_job_cancel(ih_job *j)
{
	atomic_store(&j->cancel, 1);
	/* wake a worker waiting for an answer now rather than at its next
	 * timed check */
	pthread_mutex_lock(&j->mu);
	pthread_cond_broadcast(&j->reply_cv);
	pthread_mutex_unlock(&j->mu);
}

int ih_job_done(ih_job *j)
{
	int d;
	pthread_mutex_lock(&j->mu);
	d = j->done;
	pthread_mutex_unlock(&j->mu);
	return d;
}

int ih_job_wait(ih_job *j, int timeout_ms)
{
	int d;
	unsigned long gen;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (timeout_ms >= 0) {
		ts.tv_sec += timeout_ms / 1000;
		ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&j->mu);
	gen = j->wake_gen;
	while (!j->done && j->qlen == 0 && j->wake_gen == gen) {
		if (timeout_ms < 0)
			pthread_cond_wait(&j->cv, &j->mu);
		else if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) == ETIMEDOUT)
			break;
	}
	d = j->done;
	pthread_mutex_unlock(&j->mu);
	return d;
}

/* What a job's outcome is: each kind has its getter. */
enum outcome { OUT_CHECK, OUT_RESTORE, OUT_SESSION, OUT_INFO };
static const char *const getter[] = {"ih_job_result", "ih_job_restore_result",
				     "ih_job_session_result", "ih_job_info_result"};

/* Caller holds mu: the job's outcome of kind k, or NULL; with take, it is
 * handed over (the job no longer holds it). */
static void *outcome_locked(ih_job *j, enum outcome k, int take)
{
	void *v = NULL;
	switch (k) {
	case OUT_CHECK: v = j->report; if (take) j->report = NULL; break;
	case OUT_RESTORE: v = j->restore_report; if (take) j->restore_report = NULL; break;
	case OUT_SESSION: v = j->session; if (take) j->session = NULL; break;
	case OUT_INFO: v = j->info; if (take) j->info = NULL; break;
	}
	return v;
}

/* The finished job's outcome: the one of the kind asked for handed over
 * (a check's report, a restore's, an opened session, an info), or the
 * job's error. */
static int take_outcome(ih_job *j, enum outcome kind, void **out, ih_error *err)
{
	int rc;
	pthread_mutex_lock(&j->mu);
	if (!j->done) {
		pthread_mutex_unlock(&j->mu);
		return ih_fail(err, IH_ERR_BUSY, "the job is still running");
	}
	rc = j->rc;
	if (rc == IH_OK && !(*out = outcome_locked(j, kind, 1))) {
		const char *use = NULL;
		for (enum outcome k = OUT_CHECK; k <= OUT_INFO; k++)
			if (outcome_locked(j, k, 0))
				use = getter[k];
		pthread_mutex_unlock(&j->mu);
		if (use)
			return ih_fail(err, IH_ERR_INVALID_ARG, "not the job's kind: use %s", use);
		return ih_fail(err, IH_ERR_INVALID_ARG, "the job's outcome was already taken");
	}
	if (rc != IH_OK && err)
		*err = j->err;
	pthread_mutex_unlock(&j->mu);
	return rc;
}

int ih_job_result(ih_job *j, ih_report **report, ih_error *err)
{
	void *out = NULL;
	int rc = take_outcome(j, OUT_CHECK, &out, err);
	if (rc == IH_OK)
		*report = out;
	return rc;
}

int ih_job_restore_result(ih_job *j, ih_restore_report **report, ih_error *err)
{
	void *out = NULL;
	int rc = take_outcome(j, OUT_RESTORE, &out, err);
	if (rc == IH_OK)
		*report = out;
	return rc;
}

int ih_job_session_result(ih_job *j, ih_session **s, ih_error *err)
{
	void *out = NULL;
	int rc = take_outcome(j, OUT_SESSION, &out, err);
	if (rc == IH_OK)
		*s = out;
	return rc;
}

int ih_job_info_result(ih_job *j, ih_wim_info **info, ih_error *err)
{
	void *out = NULL;
	int rc = take_outcome(j, OUT_INFO, &out, err);
	if (rc == IH_OK)
		*info = out;
	return rc;
}

/* Memory that lives as long as the job (what events point into). */
void *ih_job_keep(ih_job *j, size_t size)
{
	void *p = malloc(size ? size : 1), **nk = NULL;
	if (!p)
		return NULL;
	pthread_mutex_lock(&j->mu);
	nk = j->kept;
	if (!(j->nkept & (j->nkept - 1))) /* 0, 1, 2, 4...: doubled */
		nk = realloc(j->kept, (j->nkept ? 2 * j->nkept : 1) * sizeof *nk);
	if (nk) {
		j->kept = nk;
		nk[j->nkept++] = p;
	}
	pthread_mutex_unlock(&j->mu);
	if (!nk) {
		free(p);
		return NULL;
	}
	return p;
}

static void job_destroy(ih_job *j)
{
	for (size_t i = 0; i < j->nkept; i++)
		free(j->kept[i]);
	free(j->kept);
	ih_job_requests_free(j);
	if (j->free_arg)
		j->free_arg(j->arg);
	ih_report_free(j->report);
	ih_restore_report_free(j->restore_report);
	ih_session_close(j->session); /* opened, never taken */
	ih_wim_info_free(j->info);
	ih_cancel_unref(j->token);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	pthread_cond_destroy(&j->reply_cv);
	if (j->efd >= 0)
		close(j->efd);
	if (j->sigfd >= 0)
		close(j->sigfd);
	free(j->queue);
	free(j);
}

void ih_job_free(ih_job *j)
{
	if (!j)
		return;
	if (j->released) {
		if (atomic_fetch_sub(&j->refs, 1) == 1)
			job_destroy(j);
		return;
	}
	if (j->started) {
		ih_job_cancel(j); /* also wakes a worker waiting for an answer */
		pthread_join(j->thread, NULL);
	}
	job_destroy(j);
}

/* After the runner ended: what only the run needed (the operation's
 * arguments, holding the session and so its lock; the event queue). */
static void drop_run_state(ih_job *j)
{
	if (j->free_arg) {
		j->free_arg(j->arg);
		j->free_arg = NULL;
	}
	pthread_mutex_lock(&j->mu);
	free(j->queue);
	j->queue = NULL;
	j->qlen = j->qcap = 0;
	pthread_mutex_unlock(&j->mu);
}

/* Reapers at work: the process must not exit under them (their jobs'
 * threads may still be in wimlib or OpenSSL when exit() runs the
 * libraries' cleanup). */
static pthread_mutex_t reap_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reap_cv = PTHREAD_COND_INITIALIZER;
static int reaping;
static pthread_once_t reap_once = PTHREAD_ONCE_INIT;

void ih_jobs_wait_released(int timeout_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&reap_mu);
	while (reaping > 0) {
		if (timeout_ms < 0)
			pthread_cond_wait(&reap_cv, &reap_mu);
		else if (pthread_cond_timedwait(&reap_cv, &reap_mu, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&reap_mu);
}

static void reap_atexit(void)
{
	ih_jobs_wait_released(5000);
}

static void reap_init(void)
{
	atexit(reap_atexit);
}

static void reap_done(void)
{
	pthread_mutex_lock(&reap_mu);
	reaping--;
	pthread_cond_broadcast(&reap_cv);
	pthread_mutex_unlock(&reap_mu);
}

static void *reaper(void *arg)
{
	ih_job *j = arg;
	pthread_join(j->thread, NULL);
	drop_run_state(j);
	reap_done();
	if (atomic_fetch_sub(&j->refs, 1) == 1)
		job_destroy(j);
	return NULL;
}

void ih_job_release(ih_job *j)
{
	pthread_t t;
	pthread_attr_t a;
	if (!j || j->released)
		return;
	int done;
	ih_job_cancel(j);
	pthread_mutex_lock(&j->mu);
	j->released = 1;
	if (j->efd >= 0)
		close(j->efd);
	j->efd = -1;
	done = j->done;
	pthread_mutex_unlock(&j->mu);
	atomic_store(&j->refs, 1);
	if (!j->started)
		return;
	if (done) {
		/* the runner has only to return: join it here, so that the
		 * session (and its lock) is let go before this returns */
		pthread_join(j->thread, NULL);
		drop_run_state(j);
		return;
	}
	atomic_store(&j->refs, 2);
	pthread_once(&reap_once, reap_init);
	pthread_mutex_lock(&reap_mu);
	reaping++;
	pthread_mutex_unlock(&reap_mu);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 64 << 10);
	if (pthread_create(&t, &a, reaper, j) != 0) {
		/* no thread for it: join here (blocks until the cancel is seen) */
		atomic_store(&j->refs, 1);
		pthread_join(j->thread, NULL);
		drop_run_state(j);
		reap_done();
	}
	pthread_attr_destroy(&a);
}

void ih_job_wait_done(ih_job *j)
{
	while (!ih_job_wait(j, -1)) {
		ih_event evs[16];
		/* nobody listens: keep the queue short, and tell a worker
		 * asking for something that nobody will answer */
		size_t n = ih_job_events(j, evs, 16);
		for (size_t i = 0; i < n; i++)
			if (evs[i].type == IH_EVENT_REQUEST)
				ih_job_reply_end(j, evs[i].request_id, 0,
						 "no caller answers requests in a synchronous call");
	}
}

int ih_job_finish(ih_job *j, ih_report **report, ih_error *err)
{
	ih_job_wait_done(j);
	int rc = ih_job_result(j, report, err);
	ih_job_free(j);
	return rc;
}

