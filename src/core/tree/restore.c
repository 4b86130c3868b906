/* restore.c - the restore of an applied tree, on the stages of restore.h:
 * a full scan finds the damage; the plan makes each modified or missing
 * file with content a target and opens the sources (the reference image
 * first unless told otherwise, then the caller's, the policy's from the
 * tree's own SOFTWARE hive, and the default repair server unless
 * limit_access: the image restore's order); restore_fetch streams
 * each through the sink, which verifies it, into a spool (an unnamed file
 * in the tree: the tree committer's writer); the commit then puts back one
 * path at a time: the spooled bytes, hashed again as they are copied, go
 * to a temporary file in the file's own directory, which is fsynced,
 * given the reference's timestamps and renamed over.  A kill at any moment
 * leaves each file old or new; the temporary files of a killed restore are
 * removed by the next one, which finishes the job.  Paths are reached only
 * below the root without following links: a link that leads out of the
 * tree is refused, never followed, never removed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "job.h"
#include "policy.h"
#include "restore.h"
#include "sha1.h"
#include "tree.h"
#include "util.h"

#define COPY_BUF (1u << 20)

struct tree_committer {
	struct committer c;
	int spool;
	struct writer wr;
};

static int tc_writer_for(struct committer *c, uint16_t part, struct writer **wr, ih_error *err)
{
	(void)part;
	(void)err;
	*wr = &((struct tree_committer *)c)->wr;
	return IH_OK;
}

static int tc_commit(struct committer *c, struct restore_ctx *x, ih_error *err)
{
	(void)c;
	(void)x;
	(void)err;
	return IH_OK; /* the tree's commit is per path: tree_commit below */
}

static void tc_close(struct committer *c)
{
	struct tree_committer *tc = (struct tree_committer *)c;
	writer_free(&tc->wr);
	if (tc->spool >= 0)
		close(tc->spool);
	free(tc);
}

static const struct committer_ops tree_committer_ops = {tc_writer_for, tc_commit, tc_close};

static int tree_committer_new(struct tree *t, struct committer **out, ih_error *err)
{
	struct tree_committer *tc = calloc(1, sizeof *tc);
	if (!tc)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	tc->c.ops = &tree_committer_ops;
	tc->spool = openat(t->rootfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (tc->spool < 0) {
		char name[64];
		for (int tries = 0; tc->spool < 0 && tries < 100; tries++) {
			snprintf(name, sizeof name, TREE_TMP_PREFIX "spool.%08lx", (unsigned long)random());
			tc->spool = openat(t->rootfd, name,
					   O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		}
		if (tc->spool >= 0)
			unlinkat(t->rootfd, name, 0);
	}
	if (tc->spool < 0 || writer_init(&tc->wr, tc->spool, t->root, 0, CTYPE_NONE, 0)) {
		int e = errno;
		tc_close(&tc->c);
		return ih_fail(err, ih_errno_code(e), "%s: no room for the fetched files: %s", t->root,
			       strerror(e));
	}
	*out = &tc->c;
	return IH_OK;
}

/* What became of each damage entry. */
struct outcome {
	const char *action;      /* done: what */
	ih_errcode code;         /* not done: why */
	char why[120];
	int target;              /* index in x->ts, or -1 */
	size_t mi;               /* manifest entry */
};

struct tctx {
	struct restore_ctx *x;
	struct tree *t;
	struct tree_scan *ts;
	struct outcome *oc;
	uint8_t *touched;        /* per manifest dir: its contents changed */
	uint64_t written;
	uint8_t *buf;
	ih_sha1_ctx *md;
	unsigned seq;
};

static const char *rel_of(const struct tctx *c, size_t mi)
{
	return c->ts->actual[mi] ? c->ts->actual[mi] : c->t->m.v[mi].path;
}

static const char *base_of(const char *path)
{
	const char *p = strrchr(path, '/');
	return p ? p + 1 : path;
}

static void left(struct outcome *o, ih_errcode code, const char *fmt, const char *arg)
{
	o->code = code;
	snprintf(o->why, sizeof o->why, fmt, arg);
}

/* Copies the spooled bytes into a new temporary file in pfd, hashing them
 * again, gives it the reference's timestamps, fsyncs it.  0 or an errno. */
static int write_temp(struct tctx *c, int pfd, char *tmp, size_t tmplen,
		      const struct tree_entry *e, const struct supplied *sup)
{
	int fd = -1;
	for (int tries = 0; fd < 0 && tries < 100; tries++) {
		snprintf(tmp, tmplen, TREE_TMP_PREFIX "%08lx%04x", (unsigned long)random(), c->seq++ & 0xffff);
		fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0 && errno != EEXIST)
			return errno;
	}
	if (fd < 0)
		return EEXIST;
	struct tree_committer *tc = (struct tree_committer *)c->x->cm;
	uint64_t off = sup ? sup->res.offset : 0, left_b = sup ? sup->size : 0;
	int e_no = 0;
	ih_sha1_init(c->md);
	while (left_b && !e_no) {
		size_t n = left_b < COPY_BUF ? (size_t)left_b : COPY_BUF;
		ssize_t got = pread(tc->spool, c->buf, n, (off_t)off);
		if (got <= 0) {
			e_no = got < 0 ? errno : EIO;
			break;
		}
		ih_sha1_update(c->md, c->buf, (size_t)got);
		for (ssize_t w = 0; w < got && !e_no;) {
			ssize_t k = write(fd, c->buf + w, (size_t)(got - w));
			if (k < 0 && errno != EINTR)
				e_no = errno;
			else if (k > 0)
				w += k;
			/* The writers' test hook (IMAGEHEALTH_CRASH_AT=bytes:N)
			 * counts these bytes too: a crash in the middle of a file. */
			if (k > 0 && tc->wr.crash_after >= 0 &&
			    (tc->wr.crash_count += k) >= tc->wr.crash_after)
				abort();
		}
		off += (uint64_t)got;
		left_b -= (uint64_t)got;
	}
	uint8_t h[20];
	ih_sha1_final(c->md, h);
	if (!e_no && sup && memcmp(h, e->sha1, 20))
		e_no = EIO; /* the spool did not keep what the sink verified */
	struct timespec times[2];
	tree_filetime_to_ts(e->atime, &times[0]);
	tree_filetime_to_ts(e->mtime, &times[1]);
	if (!e_no && futimens(fd, times))
		e_no = errno;
	if (!e_no && fsync(fd))
		e_no = errno;
	if (close(fd) && !e_no)
		e_no = errno;
	if (e_no)
		unlinkat(pfd, tmp, 0);
	else
		c->written += sup ? sup->size : 0;
	return e_no;
}

/* A link as wimlib applies a reparse point (link.c), from the verified
 * reparse data in the spool: created under a temporary name with the
 * reference's times, to be renamed over.  0, an errno, or -1 when the
 * reparse point has no POSIX form (o says why). */
static int make_link(struct tctx *c, struct outcome *o, int pfd, char *tmp, size_t tmplen,
		     const struct tree_entry *e, const struct supplied *sup)
{
	struct tree_committer *tc = (struct tree_committer *)c->x->cm;
	uint8_t data[16384], h[20];
	char *target, why[120];
	if (!sup || sup->size > sizeof data)
		return EIO;
	if (pread(tc->spool, data, (size_t)sup->size, (off_t)sup->res.offset) != (ssize_t)sup->size)
		return EIO;
	ih_sha1(data, (size_t)sup->size, h);
	if (memcmp(h, e->sha1, 20))
		return EIO; /* the spool did not keep what the sink verified */
	if (link_target(e, data, (size_t)sup->size, c->t->root, &target, why, sizeof why)) {
		left(o, IH_ERR_NONREPAIRABLE, "%s", why);
		return -1;
	}
	int en = EEXIST;
	for (int tries = 0; en == EEXIST && tries < 100; tries++) {
		snprintf(tmp, tmplen, TREE_TMP_PREFIX "%08lx%04x", (unsigned long)random(), c->seq++ & 0xffff);
		en = symlinkat(target, pfd, tmp) ? errno : 0;
	}
	free(target);
	struct timespec times[2];
	tree_filetime_to_ts(e->atime, &times[0]);
	tree_filetime_to_ts(e->mtime, &times[1]);
	if (!en && utimensat(pfd, tmp, times, AT_SYMLINK_NOFOLLOW)) {
		en = errno;
		unlinkat(pfd, tmp, 0); /* ours: created just now */
	}
	return en;
}

static void commit_entry(struct tctx *c, size_t k)
{
	struct outcome *o = &c->oc[k];
	const struct tree_entry *e = &c->t->m.v[o->mi];
	const ih_damage *dm = &c->x->r->check->damage[k];
	ih_tree_type found = dm->found_type;
	const char *name = base_of(rel_of(c, o->mi));
	char tmp[64];

	if (found == IH_TREE_LINK && c->ts->link_out[o->mi]) {
		left(o, IH_ERR_ACCESS, "%s", "a link leading out of the tree is there: refused (never "
					     "followed, never removed)");
		return;
	}
	if (e->type == IH_TREE_LINK && ih_is_zero_hash(e->sha1)) {
		left(o, IH_ERR_NONREPAIRABLE, "%s", "a reparse point without reparse data");
		return;
	}
	if (e->type != IH_TREE_DIR && !ih_is_zero_hash(e->sha1) &&
	    (o->target < 0 || c->x->ts[o->target].source < 0)) {
		left(o, IH_ERR_SOURCE_MISSING, "%s", "no source has it (0x800F081F)");
		return;
	}
	int pfd = tree_open_dir(c->t->rootfd, rel_of(c, e->parent));
	if (pfd < 0) {
		int en = errno;
		left(o, en == ELOOP || en == ENOTDIR || en == EXDEV ? IH_ERR_ACCESS : ih_errno_code(en),
		     "its directory cannot be reached below the root (%s): refused",
		     en == ELOOP || en == EXDEV ? "a link on the way" : strerror(en));
		return;
	}
	int en = 0;
	if (e->type == IH_TREE_DIR) {
		if (found == IH_TREE_FILE || found == IH_TREE_LINK || found == IH_TREE_OTHER)
			en = unlinkat(pfd, name, 0) ? errno : 0;
		if (!en && mkdirat(pfd, name, 0755))
			en = errno;
		if (!en) {
			o->action = found == IH_TREE_NONE ? "created" : "replaced by its directory";
			c->touched[o->mi] = 1;
		}
	} else {
		const struct supplied *sup = o->target >= 0 ? &c->x->ts[o->target].sup : NULL;
		en = e->type == IH_TREE_LINK ? make_link(c, o, pfd, tmp, sizeof tmp, e, sup)
					     : write_temp(c, pfd, tmp, sizeof tmp, e, sup);
		if (!en && found == IH_TREE_DIR && tree_remove_all(pfd, name))
			en = errno;
		if (!en && renameat(pfd, tmp, pfd, name)) {
			en = errno;
			unlinkat(pfd, tmp, 0);
		}
		if (en == -1)
			goto out; /* make_link said why */
		if (!en)
			o->action = found == IH_TREE_NONE ? "created"
				    : found == IH_TREE_FILE ? "rewritten"
				    : found == IH_TREE_DIR ? "replaced a directory (and what it held)"
				    : found == IH_TREE_LINK ? "replaced a link"
							    : "replaced a special file";
	}
	if (en)
		left(o, ih_errno_code(en), "writing failed: %s; the path was left as it was",
		     strerror(en));
	else
		c->touched[e->parent] = 1;
out:
	close(pfd);
}

/* Directories whose contents changed get the reference's timestamps back
 * (writing into them changed their mtime) and are fsynced. */
static void settle_dirs(struct tctx *c)
{
	const struct manifest *m = &c->t->m;
	for (size_t i = 0; i < m->n; i++) {
		if (!c->touched[i])
			continue;
		struct timespec times[2];
		tree_filetime_to_ts(m->v[i].atime, &times[0]);
		tree_filetime_to_ts(m->v[i].mtime, &times[1]);
		int fd = tree_open_dir(c->t->rootfd, rel_of(c, i));
		if (fd < 0)
			continue;
		fsync(fd);
		futimens(fd, times);
		close(fd);
	}
}

static void remove_stale(struct tctx *c)
{
	for (size_t i = 0; i < c->ts->nstale; i++) {
		char *p = c->ts->stale[i], *slash = strrchr(p, '/');
		*slash = '\0';
		int fd = tree_open_dir(c->t->rootfd, *p ? p : "/");
		*slash = '/';
		if (fd < 0)
			continue;
		unlinkat(fd, slash + 1, 0);
		fsync(fd);
		close(fd);
	}
}

/* The servicing policy of an applied Windows tree: its own SOFTWARE hive
 * (where the reference puts it, under the tree's own spelling), reached
 * below the root like every other file; or the caller's hive file. */
static void read_policy(struct tctx *c, struct policy *pol)
{
	const struct manifest *m = &c->t->m;
	if (c->x->opt->policy_hive) {
		policy_read_hive_file(c->x->opt->policy_hive, pol);
		return;
	}
	size_t mi = 0;
	while (mi < m->n && (m->v[mi].type != IH_TREE_FILE || strcasecmp(m->v[mi].path, POLICY_HIVE_PATH)))
		mi++;
	if (mi == m->n) {
		pol->note = ih_strdup("the reference has no " POLICY_HIVE_PATH " hive: no policy sources");
		return;
	}
	int fd = tree_open_file(c->t->rootfd, rel_of(c, mi), NULL);
	if (fd < 0) {
		char buf[300];
		snprintf(buf, sizeof buf, "the tree's SOFTWARE hive cannot be read below the root: %s",
			 strerror(errno));
		pol->note = ih_strdup(buf);
		return;
	}
	policy_read_hive_fd(fd, "in the tree", pol);
	close(fd);
}

static int open_sources(struct tctx *c, ih_error *err)
{
	struct restore_ctx *x = c->x;
	struct policy pol = {.use_windows_update = -1};
	if (!x->opt->no_policy)
		read_policy(c, &pol);
	return restore_open_sources(x, x->opt->no_reference_source ? NULL : c->t->ref_source, &pol,
				    err);
}

static int copy_refs(ih_ref **out, size_t *n, const ih_damage *dm)
{
	*n = 0;
	*out = calloc(dm->n_refs + 1, sizeof **out);
	if (!*out)
		return -1;
	for (size_t i = 0; i < dm->n_refs; i++) {
		(*out)[i].image = dm->refs[i].image;
		if (!((*out)[i].path = ih_strdup(dm->refs[i].path)))
			return -1;
		(*n)++;
	}
	return 0;
}

static int copy_images(uint32_t **out, size_t *n, const ih_damage *dm)
{
	*n = 0;
	*out = calloc(dm->n_images + 1, sizeof **out);
	if (!*out)
		return -1;
	if (dm->n_images)
		memcpy(*out, dm->images, dm->n_images * sizeof **out);
	*n = dm->n_images;
	return 0;
}

/* What the sources said of a path's blob (paths with the same content
 * share a target: each entry gets a copy). */
static int copy_tries(ih_try **v, size_t *n, const struct restore_ctx *x, long target)
{
	if (target < 0)
		return 0;
	return tries_copy(v, n, x->ts[target].tries, x->ts[target].ntries);
}

static int finish_report(struct restore_ctx *x, const struct outcome *oc, int ran)
{
	ih_restore_report *r = x->r;
	const ih_report *b = r->check;
	r->repaired = calloc(b->n_damage + 1, sizeof *r->repaired);
	r->unrepaired = calloc(b->n_damage + 1, sizeof *r->unrepaired);
	r->problems = calloc(b->n_problems + 1, sizeof *r->problems);
	if (!r->repaired || !r->unrepaired || !r->problems)
		return -1;
	for (size_t k = 0; k < b->n_damage; k++) {
		const ih_damage *dm = &b->damage[k];
		if (ran && oc[k].action) {
			ih_repair *rp = &r->repaired[r->n_repaired++];
			memcpy(rp->sha1, dm->sha1, 20);
			rp->size = dm->size;
			rp->source = oc[k].target >= 0 ? x->ts[oc[k].target].source : -1;
			rp->raw_copy = oc[k].target >= 0 && x->ts[oc[k].target].sup.raw_copy;
			rp->action = oc[k].action;
			if (copy_refs(&rp->refs, &rp->n_refs, dm) || copy_images(&rp->images, &rp->n_images, dm) ||
			    copy_tries(&rp->tries, &rp->n_tries, x, oc[k].target))
				return -1;
			continue;
		}
		ih_damage *u = &r->unrepaired[r->n_unrepaired++];
		*u = *dm;
		u->refs = NULL;
		u->images = NULL;
		u->tries = NULL;
		u->n_refs = u->n_images = u->n_tries = 0;
		u->code = ran ? oc[k].code : b->state == IH_NONREPAIRABLE ? IH_ERR_NONREPAIRABLE
									 : IH_ERR_CANCELLED;
		if (ran)
			snprintf(u->detail, sizeof u->detail, "%s; %.38s", oc[k].why, dm->detail);
		if (copy_refs(&u->refs, &u->n_refs, dm) || copy_images(&u->images, &u->n_images, dm) ||
		    (ran && copy_tries(&u->tries, &u->n_tries, x, oc[k].target)))
			return -1;
	}
	if (b->n_problems)
		memcpy(r->problems, b->problems, b->n_problems * sizeof *b->problems);
	r->n_problems = b->n_problems;
	r->state = r->n_problems ? IH_NONREPAIRABLE : r->n_unrepaired ? IH_REPAIRABLE : IH_HEALTHY;
	return 0;
}

static int lock_exclusive(ih_session *s, ih_error *err)
{
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0)
		return IH_OK;
	int e = errno;
	flock(s->lock_fd, LOCK_SH | LOCK_NB); /* a failed upgrade dropped it */
	if (e != EWOULDBLOCK)
		return ih_fail(err, IH_ERR_IO, "%s: lock: %s", s->tree->root, strerror(e));
	return ih_fail(err, IH_ERR_BUSY, "%s is in use by another session or restore; close it and retry",
		       s->tree->root);
}

int tree_restore_job(ih_job *j, ih_session *s, const ih_restore_options *opt, ih_error *err)
{
	struct tree *t = s->tree;
	struct restore_ctx x = {.s = s, .j = j, .opt = opt};
	struct tree_scan ts = {0};
	struct tctx c = {.x = &x, .t = t, .ts = &ts};
	struct wim_blob *blobs = NULL;
	int threads = opt->threads > 0 ? opt->threads : s->threads, ran = 0;
	double t0 = ih_now();
	int rc = lock_exclusive(s, err);
	int locked = rc == IH_OK;

	if (rc == IH_OK)
		rc = tree_scan_run(s, j, 1, threads, &x.before, &ts, err);
	if (rc == IH_OK) {
		x.r = calloc(1, sizeof *x.r);
		if (!x.r || !(x.r->image_path = ih_strdup(t->root)))
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	if (rc == IH_OK) {
		x.r->check = x.before;
		x.before = NULL;
		x.r->index = s->index;
		x.r->state = x.r->check->state;
		x.r->limit_access = opt->limit_access;
		x.r->no_policy = opt->no_policy;
		x.r->policy_use_windows_update = -1;
	}
	const ih_report *b = rc == IH_OK ? x.r->check : NULL;
	size_t nd = b ? b->n_damage : 0;
	if (rc == IH_OK) {
		c.oc = calloc(nd + 1, sizeof *c.oc);
		c.touched = calloc(t->m.n + 1, 1);
		x.ts = calloc(nd + 1, sizeof *x.ts);
		blobs = calloc(nd + 1, sizeof *blobs);
		c.buf = malloc(COPY_BUF);
		c.md = ih_sha1_new();
		if (!c.oc || !c.touched || !x.ts || !blobs || !c.buf || !c.md)
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	/* plan: a target per file with content; the sources */
	if (rc == IH_OK && b->state == IH_REPAIRABLE && !ih_job_cancelled(j)) {
		ih_job_set_phase(j, IH_PHASE_PLAN, 0, nd);
		for (size_t k = 0; k < nd && rc == IH_OK; k++) {
			const ih_damage *dm = &b->damage[k];
			char *key = manifest_key(dm->refs[0].path, t->m.ci);
			if (!key) {
				rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
				break;
			}
			c.oc[k].mi = manifest_find(&t->m, key);
			free(key);
			c.oc[k].target = -1;
			const struct tree_entry *e = &t->m.v[c.oc[k].mi];
			if (e->type == IH_TREE_DIR || ih_is_zero_hash(e->sha1) ||
			    (dm->found_type == IH_TREE_LINK && ts.link_out[c.oc[k].mi]))
				continue;
			struct target *tg = &x.ts[x.nt];
			memcpy(blobs[x.nt].sha1, e->sha1, 20);
			blobs[x.nt].size = e->size == UINT64_MAX ? 0 : e->size;
			tg->dm = dm;
			tg->blob = &blobs[x.nt];
			tg->part = 1;
			tg->source = -1;
			c.oc[k].target = (int)x.nt++;
		}
		if (rc == IH_OK)
			rc = open_sources(&c, err);
		if (rc == IH_OK)
			rc = tree_committer_new(t, &x.cm, err);
		if (rc == IH_OK && x.nt)
			rc = restore_fetch(&x, err);
		/* commit: past this point the restore completes */
		if (rc == IH_OK && !ih_job_cancelled(j)) {
			ih_job_set_phase(j, IH_PHASE_WRITE, 0, nd);
			remove_stale(&c);
			for (size_t k = 0; k < nd; k++) {
				commit_entry(&c, k);
				atomic_fetch_add(&j->blobs_done, 1);
				ih_job_tick(j);
			}
			settle_dirs(&c);
			ran = 1;
		}
	} else if (rc == IH_OK && ts.nstale && !ih_job_cancelled(j)) {
		remove_stale(&c);
	}
	if (rc == IH_OK && (ran || !ih_job_cancelled(j)) && finish_report(&x, c.oc, ran))
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
	if (x.r) {
		x.r->bytes_written = c.written;
		x.r->seconds = ih_now() - t0;
	}
	if (x.cm)
		x.cm->ops->close(x.cm);
	for (size_t i = 0; i < x.nsrc; i++)
		source_close(&x.src[i]);
	free(x.src);
	restore_targets_free(x.ts, x.nt);
	free(blobs);
	free(c.oc);
	free(c.touched);
	free(c.buf);
	ih_sha1_free(c.md);
	ih_report_free(x.before);
	tree_scan_free(&ts, t->m.n);
	if (locked)
		flock(s->lock_fd, LOCK_SH);
	ih_session_end_job(s, 1);
	if (rc == IH_OK && !ran && ih_job_cancelled(j))
		rc = ih_fail(err, IH_ERR_CANCELLED,
			     "restore cancelled before anything was written; the tree is as it was");
	if (rc) {
		ih_restore_report_free(x.r);
		return rc;
	}
	if (ran)
		atomic_store(&j->cancel, 0);
	j->restore_report = x.r;
	return IH_OK;
}
