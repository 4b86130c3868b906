/* sink.c - hashing and writing what a source streams. */
#include <errno.h>
#include <string.h>
#include "job.h"
#include "sink.h"

int sink_init(struct sink *sk, struct ih_job *job)
{
	memset(sk, 0, sizeof *sk);
	sk->job = job;
	sk->md = ih_sha1_new();
	return sk->md ? 0 : -1;
}

void sink_free(struct sink *sk)
{
	ih_sha1_free(sk->md);
	sk->md = NULL;
}

int sink_stop_requested(const struct sink *sk)
{
	return sk->job && ih_job_cancelled(sk->job);
}

int sink_begin(struct sink *sk, struct writer *wr, enum sink_mode mode, uint64_t size)
{
	sk->wr = wr;
	sk->mode = wr ? mode : SINK_VERIFY;
	sk->got = 0;
	sk->want = size;
	sk->write_failed = 0;
	sk->too_long = 0;
	ih_sha1_init(sk->md);
	if (sk->mode == SINK_RAW) {
		wr->res_start = wr->pos;
		return 0;
	}
	if (sk->mode == SINK_ENCODE && writer_begin(wr, size)) {
		sk->write_failed = 1;
		return -1;
	}
	return 0;
}

int sink_feed(void *ctx, const uint8_t *data, size_t len)
{
	struct sink *sk = ctx;
	if (sink_stop_requested(sk))
		return 1;
	if (len > sk->want - sk->got) {
		sk->too_long = 1; /* longer than announced: not the blob */
		return 1;
	}
	ih_sha1_update(sk->md, data, len);
	sk->got += len;
	if (sk->job) {
		atomic_fetch_add_explicit(&sk->job->bytes_done, len, memory_order_relaxed);
		ih_job_tick(sk->job);
	}
	if (sk->mode == SINK_ENCODE && writer_feed(sk->wr, data, len)) {
		sk->write_failed = 1;
		return 1;
	}
	return 0;
}

int sink_raw(void *ctx, const uint8_t *data, size_t len)
{
	struct sink *sk = ctx;
	if (sk->mode != SINK_RAW)
		return 0;
	if (writer_put(sk->wr, data, len)) {
		sk->write_failed = 1;
		return 1;
	}
	return 0;
}

enum sink_result sink_end(struct sink *sk, int read_ok, const uint8_t sha1[20],
			  struct supplied *out)
{
	uint8_t hash[20];
	ih_sha1_final(sk->md, hash);
	if (sk->write_failed) {
		if (sk->wr)
			writer_rewind(sk->wr);
		return SINK_FAILED;
	}
	if (sink_stop_requested(sk)) {
		if (sk->wr)
			writer_rewind(sk->wr);
		return SINK_STOPPED;
	}
	if (!read_ok || sk->too_long || sk->got != sk->want || memcmp(hash, sha1, 20)) {
		if (sk->wr)
			writer_rewind(sk->wr);
		return SINK_MISMATCH;
	}
	memset(out, 0, sizeof *out);
	out->size = sk->got;
	if (sk->mode == SINK_RAW) {
		out->res.offset = sk->wr->res_start;
		out->res.stored_size = sk->wr->pos - sk->wr->res_start;
		out->res.orig_size = sk->got;
		out->raw_copy = 1;
	} else if (sk->mode == SINK_ENCODE && writer_end(sk->wr, &out->res)) {
		writer_rewind(sk->wr);
		return SINK_FAILED;
	}
	return SINK_OK;
}
