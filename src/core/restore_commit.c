/* restore_commit.c - the commit stage and its two committers.
 *
 * In place, a transaction per part of the image:
 *   begin     the part is opened, checked unchanged since the session read
 *             it, and the write-in-progress flag set in its header;
 *   append    the fetch stage appends repaired resources after the old end;
 *   commit    a new blob table, the XML and a fresh integrity table are
 *             written after them, fsync, then the header (flag cleared),
 *             fsync: the header write is the commit point;
 *   rollback  the part is truncated to its old size, its old header and
 *             times put back: byte-identical to before.
 * Parts are committed one after another; if one fails, every part not yet
 * committed is rolled back and the error names the parts that were.
 *
 * Rebuild: a compacted copy of the image, renamed over it (rebuild.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "job.h"
#include "restore.h"
#include "util.h"

struct part_txn {
	int open;
	int fd;
	uint64_t old_size;
	struct timespec old_times[2];
	uint8_t old_header[WIM_HEADER_SIZE];
	struct writer wr;
	int committed;
};

struct inplace {
	struct committer c;
	const struct wim *w;
	struct part_txn *txn;        /* one per part */
};

/* The header as it is with the write-in-progress flag set or cleared. */
static void header_with_flag(const struct wim_header *h, const uint8_t old[WIM_HEADER_SIZE],
			     int in_progress, uint8_t out[WIM_HEADER_SIZE])
{
	struct wim_header nh = *h;
	if (in_progress)
		nh.flags |= WIM_HDR_FLAG_WRITE_IN_PROGRESS;
	else
		nh.flags &= ~(uint32_t)WIM_HDR_FLAG_WRITE_IN_PROGRESS;
	memcpy(out, old, WIM_HEADER_SIZE);
	wimfmt_set_header(out, &nh);
}

static int part_begin(const struct wim *w, uint16_t part, struct part_txn *t, ih_error *err)
{
	const struct wim_part *p = &w->parts[part - 1];
	struct stat st;
	uint8_t flagged[WIM_HEADER_SIZE];

	if (t->open)
		return IH_OK;
	t->fd = open(p->path, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (t->fd < 0)
		return ih_fail(err, ih_errno_code(errno), "%s: cannot open for writing: %s", p->path,
			       strerror(errno));
	if (fstat(t->fd, &st) || !S_ISREG(st.st_mode) ||
	    pread(t->fd, t->old_header, WIM_HEADER_SIZE, 0) != WIM_HEADER_SIZE) {
		int e = errno;
		close(t->fd);
		return ih_fail(err, IH_ERR_IO, "%s: %s", p->path, e ? strerror(e) : "not a regular file");
	}
	if ((uint64_t)st.st_size != p->size || memcmp(t->old_header, p->raw_header, WIM_HEADER_SIZE)) {
		close(t->fd);
		return ih_fail(err, IH_ERR_BUSY, "%s changed since it was opened; open it again", p->path);
	}
	t->old_size = (uint64_t)st.st_size;
	t->old_times[0] = st.st_atim;
	t->old_times[1] = st.st_mtim;
	t->open = 1;
	if (writer_init(&t->wr, t->fd, p->path, t->old_size, w->ctype, w->chunk_size))
		return ih_fail(err, IH_ERR_NOMEM, "cannot set up the %s compressor",
			       wim_ctype_name(w->ctype));
	t->wr.part = part;
	header_with_flag(&p->hdr, t->old_header, 1, flagged);
	if (pwrite(t->fd, flagged, sizeof flagged, 0) != (ssize_t)sizeof flagged)
		return ih_fail(err, ih_errno_code(errno), "%s: %s", p->path, strerror(errno));
	if (writer_hook(&t->wr, "flag"))
		return ih_fail(err, IH_ERR_IO, "%s: test hook failed the flag", p->path);
	return IH_OK;
}

/* Puts the part back exactly as it was. */
static void part_rollback(struct part_txn *t)
{
	if (!t->open || t->committed)
		return;
	if (ftruncate(t->fd, (off_t)t->old_size) == 0 &&
	    pwrite(t->fd, t->old_header, WIM_HEADER_SIZE, 0) == WIM_HEADER_SIZE) {
		fsync(t->fd);
		futimens(t->fd, t->old_times);
	}
}

static void part_close(struct part_txn *t)
{
	if (!t->open)
		return;
	writer_free(&t->wr);
	close(t->fd);
	t->open = 0;
}

/* The part's new blob table: old entries in order, repaired ones rewritten
 * where they were, new ones at the end.  *boot becomes the boot image's
 * new metadata resource if that was repaired. */
static int build_table(const struct wim *w, uint16_t part, const struct target *ts, size_t nt,
		       struct new_table *t, struct wim_reshdr *boot)
{
	const struct wim_part *p = &w->parts[part - 1];
	size_t n = (size_t)(p->hdr.blob_table.orig_size / BLOB_ENTRY_SIZE);
	const struct wim_blob *bootb = wim_boot_metadata(w);

	for (size_t i = 0; i < n; i++) {
		const uint8_t *raw = p->blob_table + i * BLOB_ENTRY_SIZE;
		const struct target *hit = target_at(ts, nt, part, i);
		if (hit && hit->blob == bootb && !hit->drop) {
			*boot = hit->sup.res;
			boot->flags |= RESHDR_FLAG_METADATA;
		}
		if (hit ? table_put_repaired(t, raw, hit) : table_put_raw(t, raw))
			return -1;
	}
	return table_append_new(t, part, ts, nt);
}

/* Writes the part's tail, then its header: the commit point. */
static int part_commit(const struct wim *w, uint16_t part, struct part_txn *t,
		       const struct target *ts, size_t nt, ih_error *err)
{
	const struct wim_part *p = &w->parts[part - 1];
	struct new_table nt_ = {0};
	struct wim_reshdr boot = p->hdr.boot_metadata;
	uint8_t hdr[WIM_HEADER_SIZE];
	int rc = IH_OK;

	if (!p->blob_table)
		return ih_fail(err, IH_ERR_NONREPAIRABLE, "%s: the blob table was not readable", p->path);
	if (build_table(w, part, ts, nt, &nt_, &boot)) {
		free(nt_.v);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	if (write_tail(&t->wr, t->fd, w, part, &nt_, t->old_header, &boot, hdr) ||
	    writer_hook(&t->wr, "before_header") ||
	    pwrite(t->fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr) {
		int e = t->wr.err ? t->wr.err : errno ? errno : EIO;
		rc = ih_fail(err, ih_errno_code(e), "%s: writing failed: %s", p->path, strerror(e));
		goto out;
	}
	t->committed = 1; /* from here the repaired part is the part */
	writer_hook(&t->wr, "header");
	if (fsync(t->fd))
		rc = ih_fail(err, IH_ERR_IO, "%s: fsync after the header: %s", p->path, strerror(errno));
	writer_hook(&t->wr, "done");
out:
	free(nt_.v);
	return rc;
}

static int inplace_writer_for(struct committer *c, uint16_t part, struct writer **wr,
			      ih_error *err)
{
	struct inplace *ip = (struct inplace *)c;
	int rc = part_begin(ip->w, part, &ip->txn[part - 1], err);
	*wr = rc == IH_OK ? &ip->txn[part - 1].wr : NULL;
	return rc;
}

/* Does part p get a new tail? */
static int part_needs_commit(const struct restore_ctx *x, uint16_t p)
{
	for (size_t k = 0; k < x->nt; k++)
		if (x->ts[k].part == p && (x->ts[k].source >= 0 || x->ts[k].drop))
			return 1;
	return p == 1 && x->tail_needs;
}

/* "1 and 3" style list of the committed parts. */
static void committed_parts(const struct inplace *ip, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (uint16_t p = 1; p <= ip->w->nparts && n < len; p++)
		if (ip->txn[p - 1].committed)
			n += (size_t)snprintf(buf + n, len - n, "%s%u", n ? ", " : "", p);
}

static int inplace_commit(struct committer *c, struct restore_ctx *x, ih_error *err)
{
	struct inplace *ip = (struct inplace *)c;
	int rc = IH_OK;

	for (uint16_t p = 1; p <= ip->w->nparts && rc == IH_OK; p++) {
		if (!part_needs_commit(x, p))
			continue;
		/* Before the first commit, cancel still leaves the image as it was. */
		if (!c->committed && ih_job_cancelled(x->j))
			return IH_ERR_CANCELLED;
		rc = part_begin(ip->w, p, &ip->txn[p - 1], err);
		if (rc == IH_OK)
			rc = part_commit(ip->w, p, &ip->txn[p - 1], x->ts, x->nt, err);
		c->committed |= ip->txn[p - 1].committed;
		atomic_fetch_add(&x->j->blobs_done, 1);
	}
	for (size_t k = 0; k < x->nt; k++)
		x->ts[k].kept = ip->txn[x->ts[k].part - 1].committed &&
				(x->ts[k].source >= 0 || x->ts[k].drop);
	for (uint16_t p = 1; p <= ip->w->nparts; p++) {
		struct part_txn *t = &ip->txn[p - 1];
		if (t->committed)
			c->bytes_written += t->wr.bytes_written;
		else
			part_rollback(t); /* failed, or flagged with nothing to write */
	}
	if (rc && c->committed && err) {
		char parts[128], msg[sizeof err->message];
		committed_parts(ip, parts, sizeof parts);
		snprintf(msg, sizeof msg, "%.300s; part%s %s had been committed (repaired), the others were left as they were",
			 err->message, strchr(parts, ',') ? "s" : "", parts);
		snprintf(err->message, sizeof err->message, "%s", msg);
	} else if (rc && err) {
		size_t n = strlen(err->message);
		snprintf(err->message + n, sizeof err->message - n, "; the image was left as it was");
	}
	return rc;
}

static void inplace_close(struct committer *c)
{
	struct inplace *ip = (struct inplace *)c;
	for (uint16_t p = 0; p < ip->w->nparts; p++) {
		part_rollback(&ip->txn[p]);
		part_close(&ip->txn[p]);
	}
	free(ip->txn);
	free(ip);
}

static const struct committer_ops inplace_ops = {
	.writer_for = inplace_writer_for,
	.commit = inplace_commit,
	.close = inplace_close,
};

int inplace_committer_new(struct restore_ctx *x, struct committer **out, ih_error *err)
{
	struct inplace *ip = calloc(1, sizeof *ip);
	if (ip)
		ip->txn = calloc(x->s->w->nparts + 1u, sizeof *ip->txn);
	if (!ip || !ip->txn) {
		free(ip);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	ip->c.ops = &inplace_ops;
	ip->w = x->s->w;
	*out = &ip->c;
	return IH_OK;
}

/* ------------------------------------------------------------ rebuild */

struct rebuilder {
	struct committer c;
	const struct wim *w;
	struct rebuild rb;
};

static int rebuild_writer_for(struct committer *c, uint16_t part, struct writer **wr,
			      ih_error *err)
{
	(void)part;
	(void)err;
	*wr = &((struct rebuilder *)c)->rb.wr;
	return IH_OK;
}

static int rebuild_do_commit(struct committer *c, struct restore_ctx *x, ih_error *err)
{
	struct rebuilder *rb = (struct rebuilder *)c;
	if (ih_job_cancelled(x->j))
		return IH_ERR_CANCELLED;
	int rc = rebuild_commit(rb->w, &rb->rb, x->ts, x->nt, err);
	c->committed = c->rebuilt = rb->rb.renamed;
	for (size_t k = 0; k < x->nt; k++)
		x->ts[k].kept = c->committed && (x->ts[k].source >= 0 || x->ts[k].drop);
	if (c->committed)
		c->bytes_written = rb->rb.wr.bytes_written;
	return rc;
}

static void rebuild_close(struct committer *c)
{
	struct rebuilder *rb = (struct rebuilder *)c;
	rebuild_abort(&rb->rb);
	free(rb);
}

static const struct committer_ops rebuild_ops = {
	.writer_for = rebuild_writer_for,
	.commit = rebuild_do_commit,
	.close = rebuild_close,
};

int rebuild_committer_new(struct restore_ctx *x, struct committer **out, ih_error *err)
{
	struct rebuilder *rb = calloc(1, sizeof *rb);
	if (!rb)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	rb->c.ops = &rebuild_ops;
	rb->w = x->s->w;
	int rc = rebuild_begin(rb->w, &rb->rb, err);
	if (rc) {
		rebuild_abort(&rb->rb);
		free(rb);
		return rc;
	}
	*out = &rb->c;
	return IH_OK;
}

/* ------------------------------------------------------------ dry run */

/* A dry run's committer: the fetch stage gets no writer, so the sink only
 * hashes; nothing is opened for writing and there is nothing to commit. */
static int verify_writer_for(struct committer *c, uint16_t part, struct writer **wr,
			     ih_error *err)
{
	(void)c;
	(void)part;
	(void)err;
	*wr = NULL;
	return IH_OK;
}

static int verify_commit(struct committer *c, struct restore_ctx *x, ih_error *err)
{
	(void)c;
	(void)x;
	(void)err;
	return IH_OK;
}

static void verify_close(struct committer *c)
{
	free(c);
}

static const struct committer_ops verify_ops = {
	.writer_for = verify_writer_for,
	.commit = verify_commit,
	.close = verify_close,
};

int verify_committer_new(struct restore_ctx *x, struct committer **out, ih_error *err)
{
	(void)x;
	struct committer *c = calloc(1, sizeof *c);
	if (!c)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	c->ops = &verify_ops;
	*out = c;
	return IH_OK;
}

/* ------------------------------------------------------------ the stage */

int restore_commit(struct restore_ctx *x, ih_error *err)
{
	ih_job_set_phase(x->j, IH_PHASE_WRITE, 0, x->s->w->nparts);
	int rc = x->cm->ops->commit(x->cm, x, err);
	x->committed = x->cm->committed;
	if (rc == IH_ERR_CANCELLED && !x->committed)
		return IH_OK; /* the caller reports the cancel */
	return rc;
}
