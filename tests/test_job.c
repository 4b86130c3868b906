/* test_job.c - the request/reply channel of a job: test jobs whose workers
 * ask for blobs, answered by a C answerer on this thread through the public
 * API (ih_job_request, ih_job_reply_data, ih_job_reply_end), as a caller
 * of the library would. */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testutil.h"
#include "job.h"
#include "sha1.h"
#include "util.h"

#define MiB ((size_t)1 << 20)

static void fill(unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
}

static int ok_report(ih_report **report)
{
	*report = calloc(1, sizeof **report);
	return *report ? IH_OK : IH_ERR_NOMEM;
}

static void sleep_ms(int ms)
{
	usleep((useconds_t)ms * 1000);
}

/* Waits (up to 5 s) for the flag a worker sets. */
static int wait_flag(atomic_int *f)
{
	double t0 = ih_now();
	while (!atomic_load(f) && ih_now() - t0 < 5)
		sleep_ms(1);
	return atomic_load(f);
}

/* Drains events until a REQUEST (up to 5 s): its id, or 0.  The types seen
 * before it are appended to seen (if not NULL). */
static uint64_t wait_request(ih_job *j, ih_event *req_ev, int *seen, size_t *n_seen)
{
	double t0 = ih_now();
	ih_event evs[16];
	while (ih_now() - t0 < 5) {
		size_t n = ih_job_events(j, evs, 1); /* one at a time: leave later ones queued */
		for (size_t i = 0; i < n; i++) {
			if (seen)
				seen[(*n_seen)++] = evs[i].type;
			if (evs[i].type == IH_EVENT_REQUEST) {
				if (req_ev)
					*req_ev = evs[i];
				return evs[i].request_id;
			}
		}
		if (!n)
			ih_job_wait(j, 50);
	}
	return 0;
}

/* Waits for the job to end (up to limit seconds, draining events);
 * returns the seconds it took, or a large value. */
static double wait_done(ih_job *j, double limit)
{
	double t0 = ih_now();
	ih_event evs[16];
	while (!ih_job_wait(j, 10)) {
		ih_job_events(j, evs, 16);
		if (ih_now() - t0 > limit)
			return 1e9;
	}
	return ih_now() - t0;
}

/* What a worker got for one request. */
struct got {
	ih_answer end;         /* FOUND / NOT_FOUND / CANCELLED */
	size_t bytes;
	uint8_t sha1[20];
	int reason_null;
	char reason[96];
	int pieces;
};

/* Asks for one blob and reads the whole answer. */
static int ask_and_read(ih_job *j, const ih_request *req, struct got *g, atomic_int *gate)
{
	uint64_t id;
	int rc = ih_job_ask(j, req, &id, NULL);
	if (rc)
		return rc;
	if (gate)
		wait_flag(gate); /* the answer queues up meanwhile */
	ih_sha1_ctx *c = ih_sha1_new();
	ih_sha1_init(c);
	for (;;) {
		const void *data;
		size_t len;
		const char *reason;
		ih_answer a = ih_job_answer_next(j, id, &data, &len, &reason);
		if (a == IH_ANSWER_DATA) {
			ih_sha1_update(c, data, len);
			g->bytes += len;
			g->pieces++;
			continue;
		}
		g->end = a;
		g->reason_null = reason == NULL;
		if (reason)
			snprintf(g->reason, sizeof g->reason, "%s", reason);
		break;
	}
	ih_sha1_final(c, g->sha1);
	ih_sha1_free(c);
	ih_job_ask_end(j, id);
	return IH_OK;
}

/* ---------------------------------------------------------------------
 * Many blobs from several worker threads, answered in pieces of random
 * sizes, interleaved, some not found. */

#define RT_THREADS 3
#define RT_BLOBS 6
static const size_t rt_sizes[RT_BLOBS] = {0, 1, 4097, 300000, 20 * MiB + 11, 2 * MiB + 3};

struct rt_blob {
	unsigned char *data;
	size_t size;
	uint8_t sha1[20];
	int present;
	const char *reason; /* when not present; may be NULL */
	char path[32], alt[40];
};

struct rt {
	struct rt_blob b[RT_THREADS][RT_BLOBS];
	struct got got[RT_THREADS][RT_BLOBS];
	atomic_int saw_busy;
};

struct rt_thread {
	struct rt *rt;
	ih_job *j;
	int t;
};

static void *rt_worker(void *arg)
{
	struct rt_thread *th = arg;
	struct rt *rt = th->rt;
	static const uint32_t images[2] = {1, 2};
	for (int b = 0; b < RT_BLOBS; b++) {
		const struct rt_blob *bl = &rt->b[th->t][b];
		ih_ref refs[2] = {{1, (char *)bl->path}, {2, (char *)bl->alt}};
		ih_request req = {.source = th->t, .size = bl->size, .n_refs = 2, .refs = refs,
				  .n_images = 2, .images = images};
		memcpy(req.sha1, bl->sha1, 20);
		/* one big blob is read only once the caller met back-pressure */
		ask_and_read(th->j, &req, &rt->got[th->t][b],
			     th->t == 2 && b == 4 ? &rt->saw_busy : NULL);
	}
	return NULL;
}

static int rt_job(ih_job *j, void *arg, ih_report **report, ih_error *err)
{
	struct rt *rt = arg;
	pthread_t th[RT_THREADS];
	struct rt_thread ta[RT_THREADS];
	(void)err;
	for (int t = 0; t < RT_THREADS; t++) {
		ta[t] = (struct rt_thread){rt, j, t};
		pthread_create(&th[t], NULL, rt_worker, &ta[t]);
	}
	for (int t = 0; t < RT_THREADS; t++)
		pthread_join(th[t], NULL);
	return ok_report(report);
}

struct answering {
	uint64_t id;
	const struct rt_blob *b;
	size_t off;
};

/* Checks a request's details against the blob its path names; returns the
 * blob or NULL. */
static const struct rt_blob *rt_lookup(struct rt *rt, const ih_request *r)
{
	int t, b;
	if (r->n_refs != 2 || sscanf(r->refs[0].path, "/t%d/b%d", &t, &b) != 2 || t < 0 ||
	    t >= RT_THREADS || b < 0 || b >= RT_BLOBS)
		return NULL;
	const struct rt_blob *bl = &rt->b[t][b];
	CHECK_EQ_INT(r->source, t);
	CHECK_EQ_INT(r->size, bl->size);
	CHECK(!memcmp(r->sha1, bl->sha1, 20));
	CHECK_EQ_INT(r->refs[0].image, 1);
	CHECK_EQ_INT(r->refs[1].image, 2);
	CHECK_STR(r->refs[1].path, bl->alt);
	CHECK(r->n_images == 2 && r->images[0] == 1 && r->images[1] == 2);
	return bl;
}

/* Sends one piece of a; returns 1 when a is finished. */
static int rt_step(ih_job *j, struct answering *a, uint64_t *rnd, atomic_int *busy, int *progress)
{
	const struct rt_blob *b = a->b;
	if (!b->present) {
		CHECK_EQ_INT(ih_job_reply_end(j, a->id, 0, b->reason), IH_OK);
		return 1;
	}
	if (a->off < b->size) {
		*rnd = *rnd * 6364136223846793005ull + 1442695040888963407ull;
		size_t piece = 1 + (size_t)(*rnd >> 33) % (3 * MiB / 2);
		if (piece > b->size - a->off)
			piece = b->size - a->off;
		int rc = ih_job_reply_data(j, a->id, b->data + a->off, piece);
		if (rc == IH_ERR_BUSY) {
			atomic_fetch_add(busy, 1);
			return 0;
		}
		CHECK_EQ_INT(rc, IH_OK);
		a->off += piece;
		*progress = 1;
		if (a->off < b->size)
			return 0;
	}
	CHECK_EQ_INT(ih_job_reply_end(j, a->id, 1, NULL), IH_OK);
	/* ended: the id is no longer answerable */
	CHECK_EQ_INT(ih_job_reply_data(j, a->id, "x", 1), IH_ERR_INVALID_ARG);
	CHECK_EQ_INT(ih_job_reply_end(j, a->id, 1, NULL), IH_ERR_INVALID_ARG);
	return 1;
}

static void test_roundtrip(void)
{
	struct rt *rt = calloc(1, sizeof *rt);
	for (int t = 0; t < RT_THREADS; t++) {
		for (int b = 0; b < RT_BLOBS; b++) {
			struct rt_blob *bl = &rt->b[t][b];
			bl->size = rt_sizes[b];
			bl->data = malloc(bl->size + 1);
			fill(bl->data, bl->size, (uint64_t)(t * 100 + b));
			ih_sha1(bl->data, bl->size, bl->sha1);
			bl->present = b % 3 != 2;
			bl->reason = t == 0 ? NULL : (b == 2 ? "not in this mirror" : "gone");
			snprintf(bl->path, sizeof bl->path, "/t%d/b%d", t, b);
			snprintf(bl->alt, sizeof bl->alt, "/t%d/b%d:alt", t, b);
		}
	}
	ih_job *j;
	CHECK_EQ_INT(ih_job_start(rt_job, rt, NULL, NULL, &j, NULL), IH_OK);

	struct answering act[RT_THREADS * RT_BLOBS];
	size_t n_act = 0;
	int requests = 0;
	uint64_t rnd = 42;
	double t0 = ih_now();
	for (;;) {
		ih_event evs[16];
		size_t n = ih_job_events(j, evs, 16);
		for (size_t i = 0; i < n; i++) {
			if (evs[i].type != IH_EVENT_REQUEST)
				continue;
			ih_request r;
			requests++;
			CHECK_EQ_INT(ih_job_request(j, evs[i].request_id, &r), IH_OK);
			CHECK(r.id == evs[i].request_id);
			const struct rt_blob *bl = rt_lookup(rt, &r);
			CHECK(bl != NULL);
			if (bl && n_act < IH_ARRAY_LEN(act))
				act[n_act++] = (struct answering){r.id, bl, 0};
		}
		int progress = n > 0;
		for (size_t i = 0; i < n_act;) {
			if (rt_step(j, &act[i], &rnd, &rt->saw_busy, &progress))
				act[i] = act[--n_act], progress = 1;
			else
				i++;
		}
		if (!n && !n_act && ih_job_done(j))
			break;
		if (ih_now() - t0 > 60) {
			CHECK_MSG(0, "roundtrip timed out");
			break;
		}
		if (!progress)
			ih_job_wait(j, 100);
	}
	ih_report *rep = NULL;
	CHECK_EQ_INT(ih_job_result(j, &rep, NULL), IH_OK);
	ih_report_free(rep);
	ih_job_free(j);

	CHECK_EQ_INT(requests, RT_THREADS * RT_BLOBS);
	int found = 0, not_found = 0;
	for (int t = 0; t < RT_THREADS; t++) {
		for (int b = 0; b < RT_BLOBS; b++) {
			const struct rt_blob *bl = &rt->b[t][b];
			const struct got *g = &rt->got[t][b];
			if (bl->present) {
				CHECK_EQ_INT(g->end, IH_ANSWER_FOUND);
				CHECK_EQ_INT(g->bytes, bl->size);
				CHECK(!memcmp(g->sha1, bl->sha1, 20));
				found += g->end == IH_ANSWER_FOUND;
			} else {
				CHECK_EQ_INT(g->end, IH_ANSWER_NOT_FOUND);
				CHECK_EQ_INT(g->bytes, 0);
				if (bl->reason)
					CHECK_STR(g->reason, bl->reason);
				else
					CHECK(g->reason_null);
				not_found += g->end == IH_ANSWER_NOT_FOUND;
			}
		}
	}
	CHECK_EQ_INT(found, RT_THREADS * 4);
	CHECK_EQ_INT(not_found, RT_THREADS * 2);
	/* the 20 MiB blobs came in many pieces */
	CHECK(rt->got[1][4].pieces > 5);
	CHECK(atomic_load(&rt->saw_busy) > 0);
	for (int t = 0; t < RT_THREADS; t++)
		for (int b = 0; b < RT_BLOBS; b++)
			free(rt->b[t][b].data);
	free(rt);
}

/* ---------------------------------------------------------------------
 * Back-pressure: the worker does not read until told to. */

struct bp {
	unsigned char *data;
	size_t size;
	uint8_t sha1[20];
	atomic_int gate;
	struct got got;
};

static int bp_job(ih_job *j, void *arg, ih_report **report, ih_error *err)
{
	struct bp *bp = arg;
	ih_request req = {.size = bp->size};
	uint64_t id;
	(void)err;
	memcpy(req.sha1, bp->sha1, 20);
	if (ih_job_ask(j, &req, &id, NULL))
		return IH_ERR_INTERNAL;
	wait_flag(&bp->gate); /* the answer queues up meanwhile */
	ih_sha1_ctx *c = ih_sha1_new();
	ih_sha1_init(c);
	for (;;) {
		const void *data;
		size_t len;
		ih_answer a = ih_job_answer_next(j, id, &data, &len, NULL);
		if (a != IH_ANSWER_DATA) {
			bp->got.end = a;
			break;
		}
		ih_sha1_update(c, data, len);
		bp->got.bytes += len;
	}
	ih_sha1_final(c, bp->got.sha1);
	ih_sha1_free(c);
	ih_job_ask_end(j, id);
	return ok_report(report);
}

static void *open_gate_later(void *gate)
{
	sleep_ms(200);
	atomic_store((atomic_int *)gate, 1);
	return NULL;
}

static int fd_readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static void test_backpressure(void)
{
	struct bp bp = {.size = 24 * MiB + 5};
	bp.data = malloc(bp.size);
	fill(bp.data, bp.size, 7);
	ih_sha1(bp.data, bp.size, bp.sha1);
	ih_job *j;
	ih_event evs[16];
	CHECK_EQ_INT(ih_job_start(bp_job, &bp, NULL, NULL, &j, NULL), IH_OK);
	uint64_t id = wait_request(j, NULL, NULL, NULL);
	CHECK(id != 0);

	/* a piece bigger than the bound is taken when nothing is queued */
	size_t off = 9 * MiB;
	CHECK(off > IH_JOB_REPLY_QUEUE_MAX);
	CHECK_EQ_INT(ih_job_reply_data(j, id, bp.data, off), IH_OK);
	/* then nothing more fits; the piece is not taken */
	CHECK_EQ_INT(ih_job_reply_data(j, id, bp.data + off, MiB), IH_ERR_BUSY);
	CHECK_EQ_INT(ih_job_reply_data(j, id, bp.data + off, 1), IH_ERR_BUSY);
	ih_job_events(j, evs, 16);
	CHECK(!fd_readable(ih_job_fd(j), 0));
	/* the worker reads (from 200 ms on): ih_job_wait returns and the fd is
	 * readable though no event came */
	pthread_t opener;
	pthread_create(&opener, NULL, open_gate_later, &bp.gate);
	double t0 = ih_now();
	CHECK_EQ_INT(ih_job_wait(j, 3000), 0);
	double waited = ih_now() - t0;
	CHECK_MSG(waited > 0.1 && waited < 1.5, "ih_job_wait woken by room");
	CHECK(fd_readable(ih_job_fd(j), 0));
	pthread_join(opener, NULL);

	int busy = 0, retried_ok = 0;
	t0 = ih_now();
	while (off < bp.size && ih_now() - t0 < 30) {
		size_t piece = bp.size - off < MiB ? bp.size - off : MiB;
		int rc = ih_job_reply_data(j, id, bp.data + off, piece);
		if (rc == IH_ERR_BUSY) {
			/* readable once the worker made room; then drain,
			 * which resets it, and retry */
			busy++;
			fd_readable(ih_job_fd(j), 1000);
			ih_job_events(j, evs, 16);
			continue;
		}
		CHECK_EQ_INT(rc, IH_OK);
		if (rc)
			break;
		retried_ok++;
		off += piece;
	}
	CHECK_EQ_INT(off, bp.size);
	CHECK(retried_ok > 0);
	CHECK_EQ_INT(ih_job_reply_end(j, id, 1, NULL), IH_OK);
	CHECK(wait_done(j, 10) < 10);
	ih_job_free(j);
	CHECK_EQ_INT(bp.got.end, IH_ANSWER_FOUND);
	CHECK_EQ_INT(bp.got.bytes, bp.size);
	CHECK(!memcmp(bp.got.sha1, bp.sha1, 20));
	fprintf(stderr, "ctest: job backpressure: %d more busy replies\n", busy);
	free(bp.data);
}

/* ---------------------------------------------------------------------
 * Unknown ids, a request the worker abandons, a request left open when
 * the job ends. */

struct ab {
	atomic_int abandoned, checked;
	uint64_t id1, id2;
	int first;
};

static int ab_job(ih_job *j, void *arg, ih_report **report, ih_error *err)
{
	struct ab *ab = arg;
	ih_request req = {.size = 10};
	const void *data;
	size_t len;
	(void)err;
	if (ih_job_ask(j, &req, &ab->id1, NULL))
		return IH_ERR_INTERNAL;
	ab->first = ih_job_answer_next(j, ab->id1, &data, &len, NULL);
	ih_job_ask_end(j, ab->id1); /* one piece is enough: abandon */
	atomic_store(&ab->abandoned, 1);
	wait_flag(&ab->checked);
	/* asked, never ended: the job's end abandons it */
	if (ih_job_ask(j, &req, &ab->id2, NULL))
		return IH_ERR_INTERNAL;
	return ok_report(report);
}

static void test_abandon(void)
{
	struct ab ab = {0};
	ih_request r;
	ih_job *j;
	CHECK_EQ_INT(ih_job_start(ab_job, &ab, NULL, NULL, &j, NULL), IH_OK);
	uint64_t id = wait_request(j, NULL, NULL, NULL);
	CHECK(id != 0);
	CHECK_EQ_INT(ih_job_request(j, id, &r), IH_OK);
	CHECK_EQ_INT(r.n_refs, 0);

	/* ids nobody asked for */
	CHECK_EQ_INT(ih_job_request(j, id + 1000, &r), IH_ERR_INVALID_ARG);
	CHECK_EQ_INT(ih_job_request(j, 0, &r), IH_ERR_INVALID_ARG);
	CHECK_EQ_INT(ih_job_reply_data(j, id + 1000, "abc", 3), IH_ERR_INVALID_ARG);
	CHECK_EQ_INT(ih_job_reply_end(j, id + 1000, 1, NULL), IH_ERR_INVALID_ARG);
	CHECK_EQ_INT(ih_job_reply_end(j, 0, 0, "x"), IH_ERR_INVALID_ARG);
	CHECK_EQ_INT(ih_job_reply_data(j, id, NULL, 3), IH_ERR_INVALID_ARG);

	CHECK_EQ_INT(ih_job_reply_data(j, id, "abc", 3), IH_OK);
	CHECK(wait_flag(&ab.abandoned));
	CHECK_EQ_INT(ab.first, IH_ANSWER_DATA);
	/* the worker no longer wants it */
	CHECK_EQ_INT(ih_job_reply_data(j, id, "defg", 4), IH_ERR_CANCELLED);
	CHECK_EQ_INT(ih_job_request(j, id, &r), IH_ERR_CANCELLED);
	CHECK_EQ_INT(ih_job_reply_end(j, id, 1, NULL), IH_ERR_CANCELLED);
	/* ended by both sides: gone */
	CHECK_EQ_INT(ih_job_reply_end(j, id, 1, NULL), IH_ERR_INVALID_ARG);
	CHECK_EQ_INT(ih_job_request(j, id, &r), IH_ERR_INVALID_ARG);
	atomic_store(&ab.checked, 1);

	uint64_t id2 = wait_request(j, NULL, NULL, NULL);
	CHECK(id2 != 0 && id2 != id);
	CHECK(wait_done(j, 5) < 5);
	CHECK(id2 == ab.id2);
	CHECK_EQ_INT(ih_job_reply_data(j, id2, "abc", 3), IH_ERR_CANCELLED);
	CHECK_EQ_INT(ih_job_reply_end(j, id2, 1, NULL), IH_ERR_CANCELLED);
	CHECK_EQ_INT(ih_job_reply_end(j, id2, 1, NULL), IH_ERR_INVALID_ARG);
	ih_job_free(j);
}

/* ---------------------------------------------------------------------
 * Cancel, token and free while a worker waits for an answer nobody
 * gives. */

struct waiter {
	struct got got;
	atomic_int asked;
};

static int waiter_job(ih_job *j, void *arg, ih_report **report, ih_error *err)
{
	struct waiter *w = arg;
	ih_request req = {.size = 1};
	ih_job_post(j, IH_EVENT_PROGRESS, "before");
	uint64_t id;
	if (ih_job_ask(j, &req, &id, NULL))
		return IH_ERR_INTERNAL;
	ih_job_post(j, IH_EVENT_PROGRESS, "after");
	atomic_store(&w->asked, 1);
	const void *data;
	size_t len;
	const char *reason;
	w->got.end = ih_job_answer_next(j, id, &data, &len, &reason);
	if (reason)
		snprintf(w->got.reason, sizeof w->got.reason, "%s", reason);
	ih_job_ask_end(j, id);
	if (w->got.end == IH_ANSWER_CANCELLED)
		return ih_fail(err, IH_ERR_CANCELLED, "cancelled");
	return ok_report(report);
}

static void test_cancel_waiting(int by_token)
{
	struct waiter w = {0};
	ih_cancel *tok = ih_cancel_new();
	ih_job *j;
	int seen[8];
	size_t n_seen = 0;
	CHECK_EQ_INT(ih_job_start(waiter_job, &w, NULL, by_token ? tok : NULL, &j, NULL), IH_OK);
	uint64_t id = wait_request(j, NULL, seen, &n_seen);
	CHECK(id != 0);
	CHECK(wait_flag(&w.asked));
	/* the progress after the request is its own event: nothing merged */
	ih_event ev;
	CHECK_EQ_INT(ih_job_events(j, &ev, 1), 1);
	CHECK_EQ_INT(ev.type, IH_EVENT_PROGRESS);
	CHECK_STR(ev.text, "after");
	CHECK_EQ_INT(n_seen, 2);
	CHECK_EQ_INT(seen[0], IH_EVENT_PROGRESS);
	CHECK_EQ_INT(seen[1], IH_EVENT_REQUEST);

	sleep_ms(30); /* the worker is waiting */
	if (by_token)
		ih_cancel_trigger(tok); /* no broadcast: the worker's wait must notice */
	else
		ih_job_cancel(j);
	double took = wait_done(j, 5);
	CHECK_MSG(took < 0.5, by_token ? "token" : "ih_job_cancel");
	ih_error err = {0};
	ih_report *rep = NULL;
	CHECK_EQ_INT(ih_job_result(j, &rep, &err), IH_ERR_CANCELLED);
	CHECK_EQ_INT(w.got.end, IH_ANSWER_CANCELLED);
	CHECK_EQ_INT(ih_job_reply_data(j, id, "x", 1), IH_ERR_CANCELLED);
	CHECK_EQ_INT(ih_job_reply_end(j, id, 0, NULL), IH_ERR_CANCELLED);
	ih_job_free(j);
	ih_cancel_unref(tok);
}

static void test_free_waiting(void)
{
	struct waiter w = {0};
	ih_job *j;
	CHECK_EQ_INT(ih_job_start(waiter_job, &w, NULL, NULL, &j, NULL), IH_OK);
	CHECK(wait_request(j, NULL, NULL, NULL) != 0);
	CHECK(wait_flag(&w.asked));
	sleep_ms(30);
	double t0 = ih_now();
	ih_job_free(j);
	CHECK(ih_now() - t0 < 0.5);
	CHECK_EQ_INT(w.got.end, IH_ANSWER_CANCELLED);
}

/* The synchronous path has nobody to answer: it declines, not hangs. */
static void test_finish_declines(void)
{
	struct waiter w = {0};
	ih_job *j;
	ih_report *rep = NULL;
	CHECK_EQ_INT(ih_job_start(waiter_job, &w, NULL, NULL, &j, NULL), IH_OK);
	double t0 = ih_now();
	CHECK_EQ_INT(ih_job_finish(j, &rep, NULL), IH_OK);
	CHECK(ih_now() - t0 < 2);
	ih_report_free(rep);
	CHECK_EQ_INT(w.got.end, IH_ANSWER_NOT_FOUND);
	CHECK(strstr(w.got.reason, "synchronous") != NULL);
}

/* ---------------------------------------------------------------------
 * A full event queue still delivers the request. */

#define FLOOD 1100

struct flood {
	uint64_t id;
	uint8_t sha1[20];
	atomic_int asked;
	struct got got;
};

static int flood_job(ih_job *j, void *arg, ih_report **report, ih_error *err)
{
	struct flood *f = arg;
	ih_request req = {.size = 3};
	(void)err;
	memcpy(req.sha1, f->sha1, 20);
	for (int i = 0; i < FLOOD; i++)
		ih_job_post(j, IH_EVENT_MESSAGE, "message %d", i);
	ih_job_post(j, IH_EVENT_PROGRESS, "dropped");
	uint64_t id;
	if (ih_job_ask(j, &req, &id, NULL))
		return IH_ERR_INTERNAL;
	f->id = id;
	ih_job_post(j, IH_EVENT_PROGRESS, "dropped too");
	atomic_store(&f->asked, 1);
	const void *data;
	size_t len;
	const char *reason;
	f->got.end = ih_job_answer_next(j, id, &data, &len, &reason);
	if (reason)
		snprintf(f->got.reason, sizeof f->got.reason, "%s", reason);
	ih_job_ask_end(j, id);
	return ok_report(report);
}

static void test_full_queue(void)
{
	struct flood f = {0};
	ih_job *j;
	ih_sha1("abc", 3, f.sha1);
	CHECK_EQ_INT(ih_job_start(flood_job, &f, NULL, NULL, &j, NULL), IH_OK);
	CHECK(wait_flag(&f.asked)); /* nothing drained until now */
	ih_event *evs = malloc(2 * FLOOD * sizeof *evs);
	size_t n = ih_job_events(j, evs, 2 * FLOOD);
	int messages = 0, requests = 0, progress = 0;
	for (size_t i = 0; i < n; i++) {
		messages += evs[i].type == IH_EVENT_MESSAGE;
		progress += evs[i].type == IH_EVENT_PROGRESS;
		if (evs[i].type == IH_EVENT_REQUEST) {
			requests++;
			CHECK(evs[i].request_id == f.id);
			CHECK_STR(evs[i].text, "request a9993e364706816aba3e25717850c26c9cd0d89d");
		}
	}
	CHECK_EQ_INT(messages, 1024);
	CHECK_EQ_INT(requests, 1);
	CHECK_EQ_INT(progress, 0);
	CHECK_EQ_INT(ih_job_reply_end(j, f.id, 0, "flooded"), IH_OK);
	CHECK(wait_done(j, 5) < 5);
	ih_report *rep = NULL;
	CHECK_EQ_INT(ih_job_result(j, &rep, NULL), IH_OK);
	ih_report_free(rep);
	ih_job_free(j);
	CHECK_EQ_INT(f.got.end, IH_ANSWER_NOT_FOUND);
	CHECK_STR(f.got.reason, "flooded");
	free(evs);
}

void test_job(void)
{
	test_roundtrip();
	test_backpressure();
	test_abandon();
	test_cancel_waiting(0);
	test_cancel_waiting(1);
	test_free_waiting();
	test_finish_declines();
	test_full_queue();
}
