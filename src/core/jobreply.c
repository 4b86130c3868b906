/* jobreply.c - requests on a job: a worker posts an IH_EVENT_REQUEST and
 * waits; the caller answers from its own thread through ih_job_reply_data
 * and ih_job_reply_end.  The core never calls its caller.
 *
 * A request has two owners, the worker (until ih_job_ask_end) and the
 * caller (until ih_job_reply_end); it is freed when both have ended it, so
 * the refs the caller was given stay valid for as long as it answers.
 * Everything here runs under the job's mutex. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "job.h"
#include "util.h"

/* The worker's waits wake this often to see a cancel token, which any
 * thread may trigger without a broadcast. */
#define CANCEL_POLL_MS 20

struct piece {
	struct piece *next;
	size_t len;
	unsigned char data[];
};

struct ih_jobreq {
	struct ih_jobreq *next;
	ih_request pub;          /* what ih_job_request hands out */
	ih_ref *refs;            /* owned copies behind pub.refs, pub.images */
	uint32_t *images;
	struct piece *head, *tail;
	size_t queued;           /* bytes in head..tail */
	struct piece *cur;       /* the piece the worker holds */
	int worker_ended;        /* ih_job_ask_end (or the job ended) */
	int caller_ended;        /* ih_job_reply_end */
	int found;
	char *reason;
	int want_room;           /* the caller was told IH_ERR_BUSY */
};

/* ------------------------------------------------------------ records */

static void free_queued(struct ih_jobreq *r)
{
	while (r->head) {
		struct piece *p = r->head;
		r->head = p->next;
		free(p);
	}
	r->tail = NULL;
	r->queued = 0;
}

/* Only once the worker is done: it may be reading cur without the lock. */
static void free_pieces(struct ih_jobreq *r)
{
	free_queued(r);
	free(r->cur);
	r->cur = NULL;
}

static void free_req(struct ih_jobreq *r)
{
	free_pieces(r);
	for (size_t i = 0; i < r->pub.n_refs; i++)
		free(r->refs[i].path);
	free(r->refs);
	free(r->images);
	free(r->reason);
	free(r);
}

/* Caller holds mu. */
static struct ih_jobreq *find_locked(ih_job *j, uint64_t id)
{
	for (struct ih_jobreq *r = j->reqs; r; r = r->next)
		if (r->pub.id == id)
			return r;
	return NULL;
}

/* Caller holds mu: frees r once neither side needs it. */
static void release_if_unused_locked(ih_job *j, struct ih_jobreq *r)
{
	if (!r->worker_ended || !r->caller_ended)
		return;
	for (struct ih_jobreq **pp = &j->reqs; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	free_req(r);
}

/* Caller holds mu: the worker no longer reads this request.  A caller
 * waiting for room is woken so that its retry learns it. */
static void worker_end_locked(ih_job *j, struct ih_jobreq *r)
{
	free_pieces(r);
	r->worker_ended = 1;
	if (r->want_room) {
		r->want_room = 0;
		ih_job_wake_caller_locked(j);
	}
	release_if_unused_locked(j, r);
}

static struct ih_jobreq *copy_request(const ih_request *in)
{
	struct ih_jobreq *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->pub = *in;
	r->pub.n_refs = 0;
	if (in->n_refs) {
		r->refs = calloc(in->n_refs, sizeof *r->refs);
		if (!r->refs)
			goto fail;
		for (; r->pub.n_refs < in->n_refs; r->pub.n_refs++) {
			const ih_ref *src = &in->refs[r->pub.n_refs];
			r->refs[r->pub.n_refs].image = src->image;
			r->refs[r->pub.n_refs].path = ih_strdup(src->path ? src->path : "");
			if (!r->refs[r->pub.n_refs].path)
				goto fail;
		}
	}
	if (in->n_images) {
		r->images = malloc(in->n_images * sizeof *r->images);
		if (!r->images)
			goto fail;
		memcpy(r->images, in->images, in->n_images * sizeof *r->images);
	}
	r->pub.refs = r->refs;
	r->pub.images = r->images;
	return r;
fail:
	free_req(r);
	return NULL;
}

/* ------------------------------------------------------------ the worker */

int ih_job_ask(ih_job *j, const ih_request *req, uint64_t *id, ih_error *err)
{
	ih_event ev = {.type = IH_EVENT_REQUEST};
	char hex[41];
	struct ih_jobreq *r;

	if (ih_job_cancelled(j))
		return ih_fail(err, IH_ERR_CANCELLED, "cancelled");
	r = copy_request(req);
	if (!r)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	pthread_mutex_lock(&j->mu);
	r->pub.id = j->next_req_id++;
	r->next = j->reqs;
	j->reqs = r;
	*id = r->pub.id;
	pthread_mutex_unlock(&j->mu);

	ev.request_id = *id;
	ih_sha1_hex(req->sha1, hex);
	snprintf(ev.text, sizeof ev.text, "request %s", hex);
	ih_job_post_event(j, &ev);
	return IH_OK;
}

static void deadline_after_ms(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += ms * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Caller holds mu: hands the next queued piece to the worker, and tells a
 * caller that was refused room that there is some now (half the bound, so
 * that it does not wake for every piece). */
static void take_piece_locked(ih_job *j, struct ih_jobreq *r, const void **data, size_t *len)
{
	struct piece *p = r->head;
	r->head = p->next;
	if (!r->head)
		r->tail = NULL;
	r->queued -= p->len;
	r->cur = p;
	*data = p->data;
	*len = p->len;
	if (r->want_room && r->queued <= IH_JOB_REPLY_QUEUE_MAX / 2) {
		r->want_room = 0;
		ih_job_wake_caller_locked(j);
	}
}

ih_answer ih_job_answer_next(ih_job *j, uint64_t id, const void **data, size_t *len,
			     const char **reason)
{
	ih_answer a;
	struct ih_jobreq *r;

	*data = NULL;
	*len = 0;
	if (reason)
		*reason = NULL;
	pthread_mutex_lock(&j->mu);
	for (;;) {
		r = find_locked(j, id);
		if (!r || r->worker_ended || ih_job_cancelled(j)) {
			a = IH_ANSWER_CANCELLED;
			break;
		}
		free(r->cur); /* the piece handed out last time */
		r->cur = NULL;
		if (r->head) {
			take_piece_locked(j, r, data, len);
			a = IH_ANSWER_DATA;
			break;
		}
		if (r->caller_ended) {
			a = r->found ? IH_ANSWER_FOUND : IH_ANSWER_NOT_FOUND;
			if (reason)
				*reason = r->reason;
			break;
		}
		struct timespec ts;
		deadline_after_ms(&ts, CANCEL_POLL_MS);
		pthread_cond_timedwait(&j->reply_cv, &j->mu, &ts);
	}
	pthread_mutex_unlock(&j->mu);
	return a;
}

void ih_job_ask_end(ih_job *j, uint64_t id)
{
	pthread_mutex_lock(&j->mu);
	struct ih_jobreq *r = find_locked(j, id);
	if (r && !r->worker_ended)
		worker_end_locked(j, r);
	pthread_mutex_unlock(&j->mu);
}

void ih_job_requests_abandon_locked(ih_job *j)
{
	struct ih_jobreq *r = j->reqs, *next;
	for (; r; r = next) {
		next = r->next; /* r may be freed */
		if (!r->worker_ended)
			worker_end_locked(j, r);
	}
}

void ih_job_requests_free(ih_job *j)
{
	while (j->reqs) {
		struct ih_jobreq *r = j->reqs;
		j->reqs = r->next;
		free_req(r);
	}
}

/* ------------------------------------------------------------ the caller */

/* Caller holds mu: the request id may be answered, or why not. */
static int answerable_locked(ih_job *j, uint64_t id, struct ih_jobreq **out)
{
	struct ih_jobreq *r = find_locked(j, id);
	*out = r;
	if (!r || r->caller_ended)
		return IH_ERR_INVALID_ARG;
	if (r->worker_ended || ih_job_cancelled(j))
		return IH_ERR_CANCELLED;
	return IH_OK;
}

int ih_job_request(ih_job *j, uint64_t id, ih_request *out)
{
	struct ih_jobreq *r;
	pthread_mutex_lock(&j->mu);
	int rc = answerable_locked(j, id, &r);
	if (rc == IH_OK)
		*out = r->pub;
	pthread_mutex_unlock(&j->mu);
	return rc;
}

/* Caller holds mu: a piece of len bytes fits (a larger one than the bound
 * fits an empty queue, else it could never be delivered). */
static int has_room_locked(const struct ih_jobreq *r, size_t len)
{
	return r->queued == 0 || (r->queued <= IH_JOB_REPLY_QUEUE_MAX &&
				  len <= IH_JOB_REPLY_QUEUE_MAX - r->queued);
}

int ih_job_reply_data(ih_job *j, uint64_t id, const void *data, size_t len)
{
	struct ih_jobreq *r;
	struct piece *p = NULL;
	int rc;

	if (!data && len)
		return IH_ERR_INVALID_ARG;
	/* Check first, then copy without the lock (a piece may be megabytes
	 * and the worker must not wait on the copy), then check again. */
	for (int pass = 0; pass < 2; pass++) {
		pthread_mutex_lock(&j->mu);
		rc = answerable_locked(j, id, &r);
		if (rc == IH_OK && !has_room_locked(r, len)) {
			r->want_room = 1;
			rc = IH_ERR_BUSY;
		}
		if (rc != IH_OK || len == 0 || pass == 1)
			break;
		pthread_mutex_unlock(&j->mu);
		p = malloc(sizeof *p + len);
		if (!p)
			return IH_ERR_NOMEM;
		p->next = NULL;
		p->len = len;
		memcpy(p->data, data, len);
	}
	if (rc == IH_OK && p) {
		if (r->tail)
			r->tail->next = p;
		else
			r->head = p;
		r->tail = p;
		r->queued += len;
		p = NULL;
		pthread_cond_broadcast(&j->reply_cv);
	}
	pthread_mutex_unlock(&j->mu);
	free(p);
	return rc;
}

int ih_job_reply_end(ih_job *j, uint64_t id, int found, const char *reason)
{
	struct ih_jobreq *r;
	char *copy = reason && !found ? ih_strdup(reason) : NULL; /* NULL if short of memory: it is optional */

	pthread_mutex_lock(&j->mu);
	int rc = answerable_locked(j, id, &r);
	if (rc != IH_ERR_INVALID_ARG) {
		r->caller_ended = 1;
		r->found = found != 0;
		if (!found) /* unread pieces of a blob that is not there */
			free_queued(r);
		free(r->reason);
		r->reason = copy;
		copy = NULL;
		pthread_cond_broadcast(&j->reply_cv);
		release_if_unused_locked(j, r);
	}
	pthread_mutex_unlock(&j->mu);
	free(copy);
	return rc;
}

/* ------------------------------------------------------------ a C caller */

void ih_job_wait_answering(ih_job *j, ih_answer_fn fn, void *data)
{
	while (!ih_job_wait(j, -1)) {
		ih_event evs[16];
		size_t n = ih_job_events(j, evs, 16);
		for (size_t i = 0; i < n; i++) {
			ih_request req;
			uint64_t id = evs[i].request_id;
			if (evs[i].type != IH_EVENT_REQUEST)
				continue;
			if (fn && ih_job_request(j, id, &req) == IH_OK)
				fn(j, &req, data);
			/* a request the callback left open is not there;
			 * one it ended gives IH_ERR_INVALID_ARG here */
			ih_job_reply_end(j, id, 0,
					 fn ? "the answer callback did not end the request"
					    : "no caller answers requests in a synchronous call");
		}
	}
}
