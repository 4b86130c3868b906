/* open.c - a session on an applied tree: its root, its reference (a WIM
 * image, or a seal), and sealing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include "source/http_ranges.h"
#include "source/source.h"
#include "tree.h"
#include "util.h"

#define FUSE_MAGIC 0x65735546   /* ntfs-3g (fuseblk) and other FUSE mounts */
#define MSDOS_MAGIC 0x4d44
#define EXFAT_MAGIC 0x2011BAB0
#define NTFS3_MAGIC 0x7366746e  /* the kernel's ntfs3 (case-sensitive by default, but
				 * trees come from Windows) */

int tree_wanted(const char *path, const ih_open_options *opt)
{
	struct stat st;
	if (opt && opt->reference)
		return 1;
	return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void tree_free(struct tree *t)
{
	if (!t)
		return;
	if (t->rootfd >= 0)
		close(t->rootfd);
	manifest_free(&t->m);
	free(t->root);
	free(t->ref_source);
	free(t->shown);
	free(t);
}

/* A seal file we may trust for the state store: ours, written by nobody else. */
static int open_seal_in_store(ih_session *s, int *fd, ih_error *err)
{
	const char *note = NULL;
	char name[96];
	struct stat st;
	int dfd = state_dir_open(s, 0, &note);
	if (dfd < 0)
		return ih_fail(err, IH_ERR_NOT_FOUND,
			       "%s has no reference given and no seal in the state store%s%s",
			       s->tree->root, note ? ": " : "", note ? note : "");
	seal_store_name(s->tree->root, name, sizeof name);
	*fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	close(dfd);
	if (*fd < 0)
		return ih_fail(err, IH_ERR_NOT_FOUND,
			       "%s has no reference given and no seal in the state store "
			       "(seal it with a reference first)", s->tree->root);
	if (fstat(*fd, &st) || st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		close(*fd);
		return ih_fail(err, IH_ERR_ACCESS,
			       "the state store's seal of %s is not the caller's own or others may "
			       "write it: refused", s->tree->root);
	}
	return IH_OK;
}

/* An image on a web server: its header, blob table and the image's
 * metadata resource are fetched by ranges (the HTTP source's own rounds);
 * metadata that does not match its SHA-1 (a lying or truncated answer)
 * fails the open with the source's reason: nothing in the tree is read or
 * written.  A restore asks the same URL again as its first source. */
static int open_http_reference(ih_session *s, const char *ref, const struct source_spec *sp,
			       uint32_t index, const ih_restore_options *http, ih_error *err)
{
	struct tree *t = s->tree;
	struct source src;
	ih_source_report rep;
	struct source_spec isp = *sp;
	int rc;

	memset(&rep, 0, sizeof rep);
	isp.index = index; /* the source narrows to it: its metadata is fetched */
	source_open(&src, &rep, ref, &isp, IH_ORIGIN_CALLER, http);
	const struct wim *w = src.ops ? http_source_wim(&src) : NULL;
	s->index = index;
	if (!w)
		rc = ih_fail(err, rep.error_code ? rep.error_code : IH_ERR_DOWNLOAD,
			     "the reference cannot be read: %s", rep.error ? rep.error : "?");
	else
		rc = manifest_from_image(&t->m, w, index, t->ci, t->why, sizeof t->why, err);
	if (rc == IH_OK) {
		t->have_manifest = t->why[0] == '\0';
		t->ref_source = ih_strdup(ref);
		t->shown = ih_strdup(rep.spec); /* without credentials or a query */
		t->m.reference = ih_strdup(ref);
		if (!t->ref_source || !t->shown || !t->m.reference)
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	source_close(&src);
	source_report_free(&rep);
	return rc;
}

static int open_reference(ih_session *s, const ih_open_options *opt, ih_error *err)
{
	struct tree *t = s->tree;
	const char *ref = opt ? opt->reference : NULL;
	int rc, fd = -1;

	if (!ref || !strcmp(ref, "seal") || !strncmp(ref, "seal:", 5)) {
		if (ref && ref[4] == ':') {
			fd = open(ref + 5, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
			if (fd < 0)
				return ih_fail(err, ih_errno_code(errno), "%s: %s", ref + 5, strerror(errno));
		} else if ((rc = open_seal_in_store(s, &fd, err))) {
			return rc;
		}
		ih_error e2 = {0};
		rc = seal_read(fd, &t->m, t->ci, t->why, sizeof t->why, &e2);
		close(fd);
		if (rc)
			return ih_fail(err, rc, "%s: %s", ref ? ref : "the state store's seal",
				       e2.message);
		t->have_manifest = 1;
		s->index = t->m.index;
		/* The image it was sealed from stays the first source of a restore
		 * (reported unusable when it is gone: the caller's come next). */
		if (t->m.reference[0] && !(t->ref_source = ih_strdup(t->m.reference)))
			return ih_fail(err, IH_ERR_NOMEM, "out of memory");
		size_t n = strlen(t->m.reference) + (ref ? strlen(ref) : 4) + 64;
		if (!(t->shown = malloc(n)))
			return ih_fail(err, IH_ERR_NOMEM, "out of memory");
		snprintf(t->shown, n, "%s (sealed from %s)", ref && ref[4] == ':' ? ref : "the state store's seal",
			 t->m.reference);
		return IH_OK;
	}
	struct source_spec sp;
	if (source_spec_parse(ref, &sp))
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	uint32_t index = sp.index ? sp.index : opt && opt->index ? opt->index : 1;
	if (url_is_http(sp.path)) {
		rc = open_http_reference(s, ref, &sp, index, opt ? opt->http : NULL, err);
		source_spec_free(&sp);
		return rc;
	}
	rc = wim_open(sp.path, &s->w, err);
	source_spec_free(&sp);
	if (rc)
		return rc;
	if (!s->w->nonrepairable && (index == 0 || index > s->w->image_count))
		return ih_fail(err, IH_ERR_BAD_INDEX, "%s has %u image%s; there is no image %u",
			       s->w->path, s->w->image_count, s->w->image_count == 1 ? "" : "s", index);
	s->index = index;
	t->ref_source = ih_strdup(ref);
	if (!t->ref_source)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	if (s->w->nonrepairable) {
		snprintf(t->why, sizeof t->why, "the reference %s cannot be read", s->w->path);
	} else {
		rc = manifest_from_image(&t->m, s->w, index, t->ci, t->why, sizeof t->why, err);
		if (rc)
			return rc;
		t->have_manifest = t->why[0] == '\0';
	}
	t->m.reference = ih_strdup(ref);
	if (!t->m.reference)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	return IH_OK;
}

int tree_open(ih_session *s, const char *dir, const ih_open_options *opt, ih_error *err)
{
	struct tree *t = calloc(1, sizeof *t);
	struct statfs sf;
	if (!t)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	t->rootfd = -1;
	s->tree = t;
	t->root = realpath(dir, NULL);
	if (!t->root)
		return ih_fail(err, ih_errno_code(errno), "%s: %s", dir, strerror(errno));
	t->rootfd = open(t->root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (t->rootfd < 0)
		return ih_fail(err, ih_errno_code(errno), "%s: %s", t->root,
			       errno == ENOTDIR ? "not a directory: a reference is for an applied tree"
						: strerror(errno));
	t->ci = opt && opt->case_insensitive;
	if (fstatfs(t->rootfd, &sf) == 0 &&
	    ((unsigned long)sf.f_type == FUSE_MAGIC || (unsigned long)sf.f_type == MSDOS_MAGIC ||
	     (unsigned long)sf.f_type == EXFAT_MAGIC || (unsigned long)sf.f_type == NTFS3_MAGIC))
		t->ci = 1;
	return open_reference(s, opt, err);
}

int ih_tree_seal(ih_session *s, const char *file, char **where, ih_error *err)
{
	char tmp[4200], name[96];
	int fd, dfd = -1, rc;

	if (where)
		*where = NULL;
	if (!s || !s->tree)
		return ih_fail(err, IH_ERR_INVALID_ARG, "only a session on an applied tree can be sealed");
	if (!s->tree->have_manifest)
		return ih_fail(err, IH_ERR_NONREPAIRABLE, "%s", s->tree->why);
	if (file) {
		fd = ih_mkstemp(file, ".tmp", tmp, sizeof tmp);
		if (fd < 0)
			return ih_fail(err, ih_errno_code(errno), "%s: %s", file, strerror(errno));
	} else {
		const char *note = NULL;
		dfd = state_dir_open(s, 1, &note);
		if (dfd < 0)
			return ih_fail(err, IH_ERR_ACCESS, "no seal kept: %s",
				       note ? note : "the state directory cannot be opened");
		seal_store_name(s->tree->root, name, sizeof name);
		fd = ih_create_tmp_at(dfd, name, tmp, sizeof tmp);
		if (fd < 0) {
			rc = ih_fail(err, ih_errno_code(errno), "state store: %s", strerror(errno));
			close(dfd);
			return rc;
		}
	}
	rc = seal_write(&s->tree->m, fd);
	close(fd);
	if (rc == IH_OK && (file ? rename(tmp, file) : renameat(dfd, tmp, dfd, name)))
		rc = ih_errno_code(errno);
	if (rc) {
		if (file)
			unlink(tmp);
		else
			unlinkat(dfd, tmp, 0);
		if (dfd >= 0)
			close(dfd);
		return ih_fail(err, rc, "writing the seal failed: %s", ih_errcode_name(rc));
	}
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	if (where) {
		if (file) {
			*where = ih_strdup(file);
		} else {
			size_t n = strlen(s->state_dir) + strlen(name) + 2;
			*where = malloc(n);
			if (*where)
				snprintf(*where, n, "%s/%s", s->state_dir, name);
		}
	}
	return IH_OK;
}
