/* sink.h - where fetched bytes go: hashed, counted and (unless only being
 * verified) written through a writer.  The one place where a repair's bytes
 * are checked against the SHA-1 the image wants before they count: a source
 * only streams, the sink decides. */
#ifndef IH_SINK_H
#define IH_SINK_H

#include <stdatomic.h>
#include "imagehealth.h"
#include "sha1.h"
#include "writer.h"

struct ih_job;

/* How the bytes of one candidate are taken. */
enum sink_mode {
	SINK_VERIFY, /* hash only: nothing is written (a candidate whose size nobody vouches for) */
	SINK_ENCODE, /* uncompressed bytes, compressed by the writer with the part's codec */
	SINK_RAW,    /* stored bytes copied as they are (sink_raw), uncompressed ones hashed */
};

/* Outcome of one candidate. */
enum sink_result {
	SINK_OK = 0,      /* the bytes are the blob; out describes what was written */
	SINK_MISMATCH,    /* wrong length, wrong hash or unreadable: nothing kept */
	SINK_STOPPED,     /* cancelled: nothing kept */
	SINK_FAILED,      /* writing failed (wr->err): nothing kept */
};

/* What a supplied blob looks like once written. */
struct supplied {
	struct wim_reshdr res;
	uint64_t size;           /* its uncompressed size, as verified */
	int raw_copy;
};

struct sink {
	struct writer *wr;
	ih_sha1_ctx *md;
	enum sink_mode mode;
	uint64_t got, want;      /* bytes seen; bytes announced */
	int write_failed;
	int too_long;
	struct ih_job *job;      /* progress counters and cancel; may be NULL */
};

/* 0, or -1 when out of memory. */
int sink_init(struct sink *sk, struct ih_job *job);
void sink_free(struct sink *sk);
/* Starts a candidate of `size` bytes.  0, or -1 (writing failed). */
int sink_begin(struct sink *sk, struct writer *wr, enum sink_mode mode, uint64_t size);
/* An ih_data_fn: the uncompressed bytes, in order.  Nonzero stops the read. */
int sink_feed(void *sink, const uint8_t *data, size_t len);
/* An ih_data_fn for SINK_RAW: the stored bytes, written as they are. */
int sink_raw(void *sink, const uint8_t *data, size_t len);
/* Ends the candidate: read_ok says the source read it all without error.
 * Checks length and SHA-1; keeps the bytes (SINK_OK) or rewinds the writer. */
enum sink_result sink_end(struct sink *sk, int read_ok, const uint8_t sha1[20],
			  struct supplied *out);
int sink_stop_requested(const struct sink *sk);

#endif
