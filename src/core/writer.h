/* writer.h - appending resources to a WIM part, the way wimlib appends:
 * new data after the old end, then a new blob table, XML and integrity
 * table, and the header last.  Until the header is written the old image is
 * intact; a failed or cancelled write is undone by truncating. */
#ifndef IH_WRITER_H
#define IH_WRITER_H

#include <stdint.h>
#include <sys/types.h>
#include "imagehealth.h"
#include "wimfmt.h"

struct wimlib_compressor;

struct writer {
	int fd;
	const char *path;
	uint64_t pos;            /* where the next byte goes */
	uint64_t res_start;      /* start of the resource being written */
	int ctype;
	uint32_t chunk_size;
	struct wimlib_compressor *comp;
	uint8_t *ubuf, *cbuf;    /* one chunk, uncompressed and compressed */
	size_t ufill;
	uint64_t usize;          /* size of the resource being written */
	uint64_t nchunks, chunk_no;
	uint64_t *chunk_ends;    /* end offsets of the chunks, relative to data */
	uint64_t data_start;
	uint64_t bytes_written;
	int err;                 /* errno of the first failed write */
	uint16_t part;           /* the part written (test hooks name it); 0: a rebuild */
	/* test hooks, read from the environment when the writer is set up,
	 * so concurrent restores in one process do not share them */
	long long crash_after;   /* "bytes:N": abort after N bytes; -1 off */
	long long crash_count;
	char fail_step[32];      /* "fail:STEP:PART": that step fails with EIO */
	int fail_part;
};

int writer_init(struct writer *wr, int fd, const char *path, uint64_t start, int ctype,
		uint32_t chunk_size);
void writer_free(struct writer *wr);

/* Raw bytes at the append position. */
int writer_put(struct writer *wr, const void *buf, size_t len);

/* A resource of usize bytes, fed in any pieces, compressed chunk by chunk
 * with the part's codec (stored chunks where compression does not help). */
int writer_begin(struct writer *wr, uint64_t usize);
int writer_feed(struct writer *wr, const uint8_t *data, size_t len);
int writer_end(struct writer *wr, struct wim_reshdr *out);
/* Drops the resource being written: the space is reused. */
void writer_rewind(struct writer *wr);

/* Copies len bytes at off of fd as they are (a compressed resource whose
 * codec and chunk size match). */
int writer_copy(struct writer *wr, int fd, uint64_t off, uint64_t len);

/* The test hooks, from IMAGEHEALTH_CRASH_AT:
 *   "step:NAME"        aborts the process when a writer reaches that step;
 *   "bytes:N"          aborts after a writer wrote N bytes;
 *   "fail:NAME:PART"   makes that step of the writer of that part fail
 *                      with EIO (a failed commit without a crash).
 * Steps: flag, resources, blob_table, xml, integrity, fsync,
 * before_header, header, done. */
void writer_crash_point(const char *step);
/* writer_crash_point, and the fail hook of this writer: 0, or -1 with
 * wr->err = EIO. */
int writer_hook(struct writer *wr, const char *step);

#endif
