/* request_source.c - a scripted source ("script:NAME"): each blob is asked
 * of the job's caller through the request channel (an IH_REQUEST_BLOB
 * request carrying this source's index, the SHA-1, the size, the paths,
 * the images and how it is damaged).  The answer is spooled while it
 * arrives (in memory up to SPOOL_MEM_MAX, then in an unlinked temporary
 * file), so the candidate's size is what arrived; read streams the spool
 * into the sink, which verifies it like any source's bytes.  A lookup that
 * never ends is bounded by the job's cancel (ih_job_answer_next). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "job.h"
#include "source.h"
#include "util.h"

#define SPOOL_MEM_MAX ((size_t)4 << 20)
#define READ_PIECE ((size_t)256 << 10)

struct spool {
	uint8_t *mem;
	size_t len, cap;
	int fd;                  /* past SPOOL_MEM_MAX, or -1 */
	uint64_t file_len;
	int failed;
};

struct request_source {
	struct spool sp;
};

static void spool_reset(struct spool *sp)
{
	sp->len = 0;
	sp->file_len = 0;
	sp->failed = 0;
	if (sp->fd >= 0 && ftruncate(sp->fd, 0) != 0)
		sp->failed = 1;
}

static int spool_open_file(struct spool *sp)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	sp->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (sp->fd < 0) {
		char tmpl[4096];
		snprintf(tmpl, sizeof tmpl, "%s/imagehealth-spool.XXXXXX", dir);
		sp->fd = mkostemp(tmpl, O_CLOEXEC);
		if (sp->fd < 0)
			return -1;
		unlink(tmpl);
	}
	return 0;
}

static int spool_put(struct spool *sp, const void *data, size_t len)
{
	if (sp->failed)
		return -1;
	if (sp->file_len == 0 && sp->len + len <= SPOOL_MEM_MAX) {
		if (sp->len + len > sp->cap) {
			size_t nc = sp->cap ? sp->cap : 64 << 10;
			while (nc < sp->len + len)
				nc *= 2;
			uint8_t *m = realloc(sp->mem, nc);
			if (!m)
				return sp->failed = 1, -1;
			sp->mem = m;
			sp->cap = nc;
		}
		memcpy(sp->mem + sp->len, data, len);
		sp->len += len;
		return 0;
	}
	/* past the bound: the rest goes to a file, read after the memory */
	if (sp->fd < 0 && spool_open_file(sp))
		return sp->failed = 1, -1;
	const uint8_t *p = data;
	while (len) {
		ssize_t n = pwrite(sp->fd, p, len, (off_t)sp->file_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return sp->failed = 1, -1;
		p += n;
		len -= (size_t)n;
		sp->file_len += (uint64_t)n;
	}
	return 0;
}

static int rq_find(struct source *src, const struct want *w, const struct writer *wr, size_t nth,
		   struct candidate *c)
{
	struct request_source *rs = src->impl;
	ih_request req = {.kind = IH_REQUEST_BLOB, .source = src->index, .size = w->size,
			  .n_refs = w->n_refs, .refs = w->refs,
			  .n_images = (uint32_t)w->n_images, .images = w->images,
			  .reason = w->reason, .is_metadata = w->is_metadata};
	ih_error e;
	uint64_t id;
	int found = 0;

	(void)wr;
	if (nth > 0 || !src->job)
		return 0;
	memcpy(req.sha1, w->sha1, 20);
	if (ih_job_ask(src->job, &req, &id, &e) != IH_OK)
		return 0;
	spool_reset(&rs->sp);
	for (;;) {
		const void *data;
		size_t len;
		const char *why = NULL;
		ih_answer a = ih_job_answer_next(src->job, id, &data, &len, &why);
		if (a == IH_ANSWER_DATA) {
			if (spool_put(&rs->sp, data, len)) {
				/* cannot keep it: not a candidate */
				src->why_error = 1;
				snprintf(src->why, sizeof src->why, "its answer could not be kept "
					 "(out of memory, or no room for a temporary file)");
				break;
			}
			continue;
		}
		found = a == IH_ANSWER_FOUND && !rs->sp.failed;
		if (a == IH_ANSWER_NOT_FOUND && why) /* the caller's own words (a lookup's nil, reason) */
			snprintf(src->why, sizeof src->why, "%s", why);
		break;
	}
	ih_job_ask_end(src->job, id);
	if (!found)
		return 0;
	c->size = rs->sp.len + rs->sp.file_len;
	c->raw = 0;
	c->blob = &rs->sp;
	return 1;
}

static int rq_read(struct source *src, const struct candidate *c, struct sink *sk)
{
	struct request_source *rs = src->impl;
	struct spool *sp = &rs->sp;
	uint8_t *buf = NULL;
	(void)c;

	for (size_t off = 0; off < sp->len; off += READ_PIECE) {
		size_t n = sp->len - off < READ_PIECE ? sp->len - off : READ_PIECE;
		if (sink_feed(sk, sp->mem + off, n))
			return 0;
	}
	if (!sp->file_len)
		return 1;
	buf = malloc(READ_PIECE);
	if (!buf)
		return 0;
	int ok = 1;
	for (uint64_t off = 0; ok && off < sp->file_len;) {
		size_t want = sp->file_len - off < READ_PIECE ? (size_t)(sp->file_len - off) : READ_PIECE;
		ssize_t n = pread(sp->fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || sink_feed(sk, buf, (size_t)n))
			ok = 0;
		else
			off += (uint64_t)n;
	}
	free(buf);
	return ok;
}

static void rq_close(struct source *src)
{
	struct request_source *rs = src->impl;
	if (!rs)
		return;
	if (rs->sp.fd >= 0)
		close(rs->sp.fd);
	free(rs->sp.mem);
	free(rs);
	src->impl = NULL;
}

static const struct source_ops request_ops = {
	.find = rq_find,
	.read = rq_read,
	.close = rq_close,
};

void request_source_open(struct source *src)
{
	struct request_source *rs = calloc(1, sizeof *rs);
	if (!rs) {
		source_fail(src, IH_ERR_NOMEM, "out of memory");
		return;
	}
	rs->sp.fd = -1;
	src->impl = rs;
	src->ops = &request_ops;
}
