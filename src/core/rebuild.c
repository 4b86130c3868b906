/* rebuild.c - restore with rebuild: a compacted copy of the image (every
 * resource still in use copied as it is, the repairs written fresh, dead
 * space from earlier appends left behind) is written to a temporary file
 * beside the original and renamed over it.  The original is untouched until
 * the rename. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "restore.h"
#include "util.h"

int rebuild_begin(const struct wim *w, struct rebuild *rb, ih_error *err)
{
	static const uint8_t zero[WIM_HEADER_SIZE];
	const char *path = w->parts[0].path;
	size_t len = strlen(path) + 32;

	memset(rb, 0, sizeof *rb);
	rb->fd = -1;
	if (w->nparts != 1)
		return ih_fail(err, IH_ERR_INVALID_ARG,
			       "rebuild works on single-file images; a split set is repaired in place");
	rb->tmp = malloc(len);
	if (!rb->tmp)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	rb->fd = ih_mkstemp(path, ".ihtmp.", rb->tmp, len);
	if (rb->fd < 0) {
		int e = errno;
		free(rb->tmp);
		rb->tmp = NULL;
		return ih_fail(err, ih_errno_code(e), "cannot create a file beside %s: %s", path,
			       strerror(e));
	}
	fchmod(rb->fd, 0644);
	if (writer_init(&rb->wr, rb->fd, rb->tmp, 0, w->ctype, w->chunk_size) ||
	    writer_put(&rb->wr, zero, sizeof zero)) /* the header comes last */
		return ih_fail(err, ih_errno_code(rb->wr.err ? rb->wr.err : ENOMEM),
			       "%s: cannot write: %s", rb->tmp, strerror(rb->wr.err ? rb->wr.err : ENOMEM));
	return IH_OK;
}

void rebuild_abort(struct rebuild *rb)
{
	if (rb->fd >= 0) {
		close(rb->fd);
		rb->fd = -1;
	}
	if (rb->tmp && !rb->renamed)
		unlink(rb->tmp);
	writer_free(&rb->wr);
	free(rb->tmp);
	rb->tmp = NULL;
}

/* Copies a resource of the old file; returns its new offset via e. */
static int copy_resource(struct rebuild *rb, int fd, struct wim_reshdr *res)
{
	uint64_t at = rb->wr.pos;
	if (writer_copy(&rb->wr, fd, res->offset, res->stored_size))
		return -1;
	res->offset = at;
	return 0;
}

int rebuild_commit(const struct wim *w, struct rebuild *rb, const struct target *ts, size_t nt,
		   ih_error *err)
{
	const struct wim_part *p = &w->parts[0];
	const struct wim_reshdr *obt = &p->hdr.blob_table;
	size_t n = (size_t)(obt->orig_size / BLOB_ENTRY_SIZE);
	const uint8_t *old = p->blob_table, *oldhdr = p->raw_header;
	uint8_t hdr[WIM_HEADER_SIZE];
	struct new_table t = {0};
	struct wim_reshdr boot = {0};
	uint32_t image = 0;
	int rc = IH_OK, solid_ok = p->hdr.version == WIM_VERSION_SOLID;

	if (!old)
		return ih_fail(err, IH_ERR_NONREPAIRABLE, "%s: the blob table was not readable", p->path);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *raw = old + i * BLOB_ENTRY_SIZE;
		const struct target *hit = target_at(ts, nt, 1, i);
		struct wim_blob_entry e;
		int fail = 0;
		wimfmt_get_blob_entry(raw, &e);
		int solid = solid_ok && (e.res.flags & RESHDR_FLAG_SOLID);
		int metadata = (e.res.flags & RESHDR_FLAG_METADATA) && e.refcnt;
		if (hit) {
			fail = table_put_repaired(&t, raw, hit);
			if (metadata && ++image == p->hdr.boot_index) {
				boot = hit->sup.res;
				boot.flags |= RESHDR_FLAG_METADATA;
			}
		} else if (solid && e.res.orig_size != SOLID_RESOURCE_MAGIC) {
			fail = table_put_raw(&t, raw); /* offset is inside its run */
		} else if (ih_is_zero_hash(e.sha1) && !solid) {
			continue; /* unused entry */
		} else {
			/* Resource still in use, damaged or not: copied as it is
			 * (a damaged one stays for a later repair to fix). */
			if (e.res.offset > p->size || e.res.stored_size > p->size - e.res.offset) {
				if (metadata || solid) {
					rc = ih_fail(err, IH_ERR_NONREPAIRABLE,
						     "%s: a resource lies past the end of the file; it cannot be copied (repair in place instead)",
						     p->path);
					goto out;
				}
				continue; /* its blob becomes missing, still reported */
			}
			if (copy_resource(rb, p->fd, &e.res))
				goto write_failed;
			if (metadata && ++image == p->hdr.boot_index)
				boot = e.res;
			fail = table_put(&t, &e);
		}
		if (fail) {
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	if (table_append_new(&t, 1, ts, nt)) {
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (write_tail(&rb->wr, rb->fd, w, 1, &t, oldhdr, &boot, hdr))
		goto write_failed;
	if (pwrite(rb->fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr || fsync(rb->fd)) {
		rb->wr.err = errno;
		goto write_failed;
	}
	writer_crash_point("header");
	if (rename(rb->tmp, p->path)) {
		rb->wr.err = errno;
		goto write_failed;
	}
	rb->renamed = 1;
	{
		/* the rename itself must reach the disk */
		char *dup = ih_strdup(p->path);
		int dfd = dup ? open(dirname(dup), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		free(dup);
	}
	writer_crash_point("done");
	goto out;
write_failed:
	rc = ih_fail(err, ih_errno_code(rb->wr.err), "%s: writing failed: %s; the image was left as it was",
		     rb->tmp, strerror(rb->wr.err ? rb->wr.err : EIO));
out:
	free(t.v);
	return rc;
}
