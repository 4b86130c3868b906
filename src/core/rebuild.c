/* rebuild.c - restore with rebuild: a compacted copy of the image (every
 * resource still in use copied as it is, the repairs written fresh, dead
 * space from earlier appends left behind) is written to a temporary file
 * beside the original and renamed over it.  The original is untouched until
 * the rename.
 *
 * Links and ownership: the copy is made beside the file the path resolves
 * to (a symlink stays a symlink, its target is rebuilt), with that file's
 * owner and mode; a file with other hard links is refused (the other names
 * would keep the damaged data).  The temporary file is flock'ed while it is
 * written, so that rebuild_sweep removes only ones a dead rebuild left. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "restore.h"
#include "util.h"

#define TMP_TAG ".ihtmp."
#define TMP_TAG_LEN (sizeof TMP_TAG - 1 + 6) /* the tag and mkstemp's 6 characters */

/* The file the rebuilt copy replaces: rb->tmp without its tag (the copy is
 * always made as TARGET.ihtmp.XXXXXX).  Caller frees. */
static char *rebuild_target(const struct rebuild *rb)
{
	size_t n = strlen(rb->tmp);
	char *t = n > TMP_TAG_LEN ? malloc(n - TMP_TAG_LEN + 1) : NULL;
	if (t) {
		memcpy(t, rb->tmp, n - TMP_TAG_LEN);
		t[n - TMP_TAG_LEN] = '\0';
	}
	return t;
}

__attribute__((format(printf, 4, 0)))
static int begin_fail(struct rebuild *rb, ih_error *err, ih_errcode code, const char *fmt,
		      const char *a, const char *b)
{
	if (rb->fd >= 0) {
		close(rb->fd);
		rb->fd = -1;
		unlink(rb->tmp);
	}
	free(rb->tmp);
	rb->tmp = NULL;
	return ih_fail(err, code, fmt, a, b);
}

int rebuild_begin(const struct wim *w, struct rebuild *rb, ih_error *err)
{
	static const uint8_t zero[WIM_HEADER_SIZE];
	const char *path = w->parts[0].path;
	struct stat st, rst, tst;
	char *real;
	size_t len;

	memset(rb, 0, sizeof *rb);
	rb->fd = -1;
	if (w->nparts != 1)
		return ih_fail(err, IH_ERR_INVALID_ARG,
			       "rebuild works on single-file images; a split set is repaired in place");
	if (fstat(w->parts[0].fd, &st))
		return ih_fail(err, IH_ERR_IO, "%s: %s", path, strerror(errno));
	if (st.st_nlink > 1)
		return ih_fail(err, IH_ERR_INVALID_ARG,
			       "%s has %ju hard links: a rebuilt copy would replace only this name and "
			       "the others would keep the damaged data; repair in place (without --rebuild)",
			       path, (uintmax_t)st.st_nlink);
	/* A symlink is kept: the file it points to is what gets replaced,
	 * and only if it is still the file the session opened. */
	real = realpath(path, NULL);
	if (!real)
		return ih_fail(err, ih_errno_code(errno), "%s: cannot resolve the path: %s", path,
			       strerror(errno));
	if (stat(real, &rst) || rst.st_dev != st.st_dev || rst.st_ino != st.st_ino) {
		free(real);
		return ih_fail(err, IH_ERR_IO,
			       "%s no longer names the image this session opened; open it again", path);
	}
	len = strlen(real) + TMP_TAG_LEN + 1;
	rb->tmp = malloc(len);
	if (!rb->tmp) {
		free(real);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	rb->fd = ih_mkstemp(real, TMP_TAG, rb->tmp, len);
	if (rb->fd < 0) {
		int e = errno;
		int rc = ih_fail(err, ih_errno_code(e), "cannot create a file beside %s: %s", real,
				 strerror(e));
		free(real);
		free(rb->tmp);
		rb->tmp = NULL;
		return rc;
	}
	free(real);
	/* Held while the copy is written: a sweep by a later restore leaves
	 * a live rebuild's file alone. */
	flock(rb->fd, LOCK_EX | LOCK_NB);
	/* The copy takes the image's owner and mode (chown first: it clears
	 * set-id bits).  A caller that cannot give it the owner stops here,
	 * before writing anything. */
	if (fstat(rb->fd, &tst))
		return begin_fail(rb, err, IH_ERR_IO, "%s: %s", rb->tmp, strerror(errno));
	if ((tst.st_uid != st.st_uid || tst.st_gid != st.st_gid) &&
	    fchown(rb->fd, st.st_uid, st.st_gid)) {
		char ids[64];
		snprintf(ids, sizeof ids, "uid %ju, gid %ju", (uintmax_t)st.st_uid,
			 (uintmax_t)st.st_gid);
		return begin_fail(rb, err, IH_ERR_ACCESS,
				  "%s: cannot rebuild: the copy cannot be given the image's owner (%s); "
				  "repair in place (without --rebuild) or run as the image's owner",
				  path, ids);
	}
	if (fchmod(rb->fd, st.st_mode & 07777))
		return begin_fail(rb, err, IH_ERR_IO, "%s: %s", rb->tmp, strerror(errno));
	if (writer_init(&rb->wr, rb->fd, rb->tmp, 0, w->ctype, w->chunk_size) ||
	    writer_put(&rb->wr, zero, sizeof zero)) /* the header comes last */
		return ih_fail(err, ih_errno_code(rb->wr.err ? rb->wr.err : ENOMEM),
			       "%s: cannot write: %s", rb->tmp, strerror(rb->wr.err ? rb->wr.err : ENOMEM));
	return IH_OK;
}

/* Is name BASE.ihtmp.XXXXXX, X as mkstemp makes them? */
static int is_leftover(const char *name, const char *base)
{
	size_t bl = strlen(base);
	if (strncmp(name, base, bl) || strncmp(name + bl, TMP_TAG, sizeof TMP_TAG - 1))
		return 0;
	name += bl + sizeof TMP_TAG - 1;
	for (int i = 0; i < 6; i++) {
		char c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			return 0;
	}
	return name[6] == '\0';
}

void rebuild_sweep(const char *path)
{
	char *real = realpath(path, NULL), *d1 = NULL, *d2 = NULL;
	DIR *dir = NULL;
	struct dirent *de;
	if (!real || !(d1 = ih_strdup(real)) || !(d2 = ih_strdup(real)))
		goto out;
	dir = opendir(dirname(d1));
	if (!dir)
		goto out;
	const char *base = basename(d2);
	while ((de = readdir(dir))) {
		struct stat st, again;
		if (!is_leftover(de->d_name, base))
			continue;
		int fd = openat(dirfd(dir), de->d_name,
				O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			continue;
		/* Only the caller's own regular files, no longer locked by a
		 * rebuild, and still the file of that name. */
		if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
		    !flock(fd, LOCK_EX | LOCK_NB) &&
		    !fstatat(dirfd(dir), de->d_name, &again, AT_SYMLINK_NOFOLLOW) &&
		    again.st_dev == st.st_dev && again.st_ino == st.st_ino)
			unlinkat(dirfd(dir), de->d_name, 0);
		close(fd);
	}
out:
	if (dir)
		closedir(dir);
	free(real);
	free(d1);
	free(d2);
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
	const struct wim_blob *bootb = wim_boot_metadata(w);
	int rc = IH_OK, solid_ok = p->hdr.version == WIM_VERSION_SOLID;
	char *target = NULL;

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
		int is_boot = bootb && bootb->part == 1 && bootb->entry == i;
		if (hit) {
			fail = table_put_repaired(&t, raw, hit);
			if (is_boot) {
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
			if (is_boot)
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
	target = rebuild_target(rb);
	if (!target) {
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (rename(rb->tmp, target)) {
		rb->wr.err = errno;
		goto write_failed;
	}
	rb->renamed = 1;
	{
		/* the rename itself must reach the disk */
		char *dup = ih_strdup(target);
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
	free(target);
	free(t.v);
	return rc;
}
