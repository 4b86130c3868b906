/* job.h - the runner side of ih_job: a thread running one operation, with
 * progress counters the workers bump, an event queue and an eventfd. */
#ifndef IH_JOB_H
#define IH_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include "imagehealth.h"

typedef int (*ih_job_fn)(ih_job *j, void *arg, ih_report **report, ih_error *err);
struct ih_jobreq;

struct ih_job {
	pthread_t thread;
	int started;
	int efd;
	int sigfd;     /* the same eventfd, for the job's threads: open until the
			  job is destroyed, so they may signal outside mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	ih_event *queue;
	size_t qlen, qcap;
	size_t dropped;
	/* bumped (with cv broadcast and the fd) when the caller should look
	 * again without a new event: room for a reply */
	unsigned long wake_gen;
	/* requests (jobreply.c): the live ones, the next id, and the condition
	 * a worker waiting for an answer sleeps on (CLOCK_MONOTONIC) */
	struct ih_jobreq *reqs;
	uint64_t next_req_id;
	pthread_cond_t reply_cv;
	/* progress: the phase and totals are set by the runner, the counters
	 * bumped by workers */
	_Atomic int phase;
	atomic_uint_fast64_t bytes_done, bytes_total, blobs_done, blobs_total;
	double t0, last_post;
	atomic_int cancel;
	ih_cancel *token;
	int done;
	int rc;
	ih_error err;
	ih_report *report;           /* a check's outcome */
	ih_restore_report *restore_report; /* a restore's, set by its job function */
	ih_session *session;         /* an open job's, set by its job function */
	ih_wim_info *info;           /* an info job's, set by its job function */
	ih_job_fn fn;
	void *arg;
	void (*free_arg)(void *);
	/* ih_job_release: the fd is closed and a reaper thread joins the
	 * runner; the caller's reference and the reaper's, the last frees */
	int released;
	atomic_int refs;
	/* memory events point into (ih_job_keep), freed with the job */
	void **kept;
	size_t nkept;
};

int ih_job_start(ih_job_fn fn, void *arg, void (*free_arg)(void *), ih_cancel *token,
		 ih_job **out, ih_error *err);
int ih_job_cancelled(const ih_job *j);
void ih_job_set_phase(ih_job *j, ih_phase p, uint64_t bytes_total, uint64_t blobs_total);
/* Posts a progress event if the last one is 100 ms old. */
void ih_job_tick(ih_job *j);
/* Waits for the job, takes its outcome and frees it: the synchronous calls. */
int ih_job_finish(ih_job *j, ih_report **report, ih_error *err);
/* Waits for the job to end, draining events nobody reads. */
void ih_job_wait_done(ih_job *j);
void ih_job_post(ih_job *j, ih_event_type type, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Queues ev (its progress filled in here).  REQUEST and DONE are never
 * dropped. */
void ih_job_post_event(ih_job *j, ih_event *ev);
/* size bytes that live as long as the job (what an event points to), or
 * NULL (ENOMEM). */
void *ih_job_keep(ih_job *j, size_t size);
/* Caller holds mu: makes the caller look again (fd readable, ih_job_wait
 * returns) though no event was queued. */
void ih_job_wake_caller_locked(ih_job *j);

/* ---- requests: the worker side (jobreply.c) ---- */

typedef enum ih_answer {
	IH_ANSWER_DATA = 1, /* a piece: *data, *len */
	IH_ANSWER_FOUND,    /* the end: the pieces were the blob */
	IH_ANSWER_NOT_FOUND,/* the end: not there; *reason (may be NULL) */
	IH_ANSWER_CANCELLED,/* the job was cancelled (or the id is not ours) */
} ih_answer;

/* Posts a request for req's blob (req->id is ignored; refs and images are
 * copied) and sets *id.  IH_OK, IH_ERR_CANCELLED or IH_ERR_NOMEM. */
int ih_job_ask(ih_job *j, const ih_request *req, uint64_t *id, ih_error *err);
/* Waits for the next piece of the answer, or its end, or the job's cancel
 * (noticed within 20 ms, token included).  A piece (and a reason) stays
 * valid until the next call for this id or ih_job_ask_end.  reason may be
 * NULL. */
ih_answer ih_job_answer_next(ih_job *j, uint64_t id, const void **data, size_t *len,
			     const char **reason);
/* The worker is done with the request (answered or abandoned): pieces
 * still queued are freed and later replies get IH_ERR_CANCELLED. */
void ih_job_ask_end(ih_job *j, uint64_t id);
/* For job.c.  Caller holds mu: the worker is gone, every request it still
 * had is abandoned. */
void ih_job_requests_abandon_locked(ih_job *j);
/* For job.c: frees every request (the job is being freed). */
void ih_job_requests_free(ih_job *j);

#endif
