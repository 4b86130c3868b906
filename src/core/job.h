/* job.h - the runner side of ih_job: a thread running one operation, with
 * progress counters the workers bump, an event queue and an eventfd. */
#ifndef IH_JOB_H
#define IH_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include "imagehealth.h"

typedef int (*ih_job_fn)(ih_job *j, void *arg, ih_report **report, ih_error *err);

struct ih_job {
	pthread_t thread;
	int started;
	int efd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	ih_event *queue;
	size_t qlen;
	size_t dropped;
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
	ih_job_fn fn;
	void *arg;
	void (*free_arg)(void *);
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

#endif
