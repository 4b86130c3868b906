/* restore.c - DismRestoreImageHealth: repair exactly the damaged blobs,
 * from an ordered list of sources, in place and crash-safe.
 *
 * Per part that needs repair: set the write-in-progress flag, append the
 * replacement resources after the old end, then a new blob table, the XML
 * and a fresh integrity table (if the part had one), fsync, and the header
 * last, fsync.  Until that header write the old image is intact; before it,
 * cancel or failure truncates the file back and restores the header and
 * times, leaving it byte-identical.  After it, the job completes. */
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
#include "session.h"
#include "sha1.h"
#include "source.h"
#include "util.h"
#include "writer.h"

struct restore_arg {
	ih_session *s;
	ih_restore_options opt;
	char **strings;           /* owned copies of the option strings */
	size_t nstrings;
	char *policy_hive;
};

struct part_write {
	int opened;
	int fd;
	uint64_t old_size;
	struct timespec old_times[2];
	uint8_t old_header[WIM_HEADER_SIZE];
	struct writer wr;
	int committed;
};

static void free_restore_arg(void *p)
{
	struct restore_arg *a = p;
	ih_session_unref(a->s);
	ih_cancel_unref(a->opt.cancel);
	for (size_t i = 0; i < a->nstrings; i++)
		free(a->strings[i]);
	free(a->strings);
	free((void *)a->opt.sources);
	free((void *)a->opt.path_map);
	free(a->policy_hive);
	free(a);
}

static int prepare_part(const struct wim *w, uint16_t part, struct part_write *pw,
			ih_error *err)
{
	const struct wim_part *p = &w->parts[part - 1];
	struct stat st;
	uint8_t flagged[WIM_HEADER_SIZE];

	if (pw->opened)
		return IH_OK;
	pw->fd = open(p->path, O_RDWR | O_CLOEXEC);
	if (pw->fd < 0)
		return ih_fail(err, ih_errno_code(errno), "%s: cannot open for writing: %s",
			       p->path, strerror(errno));
	if (fstat(pw->fd, &st) || pread(pw->fd, pw->old_header, WIM_HEADER_SIZE, 0) != WIM_HEADER_SIZE) {
		int e = errno;
		close(pw->fd);
		return ih_fail(err, IH_ERR_IO, "%s: %s", p->path, strerror(e));
	}
	if ((uint64_t)st.st_size != p->size || memcmp(pw->old_header, p->raw_header, WIM_HEADER_SIZE)) {
		close(pw->fd);
		return ih_fail(err, IH_ERR_BUSY, "%s changed since it was opened; open it again",
			       p->path);
	}
	pw->old_size = (uint64_t)st.st_size;
	pw->old_times[0] = st.st_atim;
	pw->old_times[1] = st.st_mtim;
	pw->opened = 1;
	memcpy(flagged, pw->old_header, sizeof flagged);
	put_le32(flagged + 0x10, get_le32(flagged + 0x10) | WIM_HDR_FLAG_WRITE_IN_PROGRESS);
	if (pwrite(pw->fd, flagged, sizeof flagged, 0) != (ssize_t)sizeof flagged)
		return ih_fail(err, write_code(errno), "%s: %s", p->path, strerror(errno));
	writer_crash_point("flag");
	if (writer_init(&pw->wr, pw->fd, p->path, pw->old_size, w->ctype, w->chunk_size))
		return ih_fail(err, IH_ERR_NOMEM, "cannot set up the %s compressor",
			       wim_ctype_name(w->ctype));
	return IH_OK;
}

/* Puts the part back exactly as it was. */
static void rollback_part(struct part_write *pw)
{
	if (!pw->opened || pw->committed)
		return;
	if (ftruncate(pw->fd, (off_t)pw->old_size) == 0 &&
	    pwrite(pw->fd, pw->old_header, WIM_HEADER_SIZE, 0) == WIM_HEADER_SIZE) {
		fsync(pw->fd);
		futimens(pw->fd, pw->old_times);
	}
}

static void close_part(struct part_write *pw)
{
	if (!pw->opened)
		return;
	writer_free(&pw->wr);
	close(pw->fd);
	pw->opened = 0;
}

/* Writes the new blob table, XML, integrity table, then the header. */
static int commit_part(const struct wim *w, uint16_t part, struct part_write *pw,
		       struct target *ts, size_t nt, ih_error *err)
{
	const struct wim_part *p = &w->parts[part - 1];
	const struct wim_reshdr *obt = &p->hdr.blob_table;
	size_t n = (size_t)(obt->orig_size / BLOB_ENTRY_SIZE);
	const uint8_t *old = p->blob_table;
	uint8_t hdr[WIM_HEADER_SIZE];
	struct new_table t = {0};
	struct wim_reshdr boot = p->hdr.boot_metadata;
	int rc = IH_OK;

	if (!old)
		return ih_fail(err, IH_ERR_NONREPAIRABLE, "%s: the blob table was not readable", p->path);
	/* Old entries in order, repaired ones rewritten where they were. */
	for (size_t i = 0; i < n; i++) {
		const uint8_t *raw = old + i * BLOB_ENTRY_SIZE;
		const struct target *hit = target_at(ts, nt, part, i);
		int bad;
		if (!hit) {
			bad = table_put_raw(&t, raw);
		} else {
			struct wim_blob_entry e;
			wimfmt_get_blob_entry(raw, &e);
			if (boot.offset && e.res.offset == boot.offset && hit->blob->image) {
				boot = hit->sup.res;
				boot.flags |= RESHDR_FLAG_METADATA;
			}
			bad = table_put_repaired(&t, raw, hit);
		}
		if (bad) {
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	if (table_append_new(&t, part, ts, nt)) {
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (write_tail(&pw->wr, pw->fd, w, part, &t, pw->old_header, &boot, hdr))
		goto write_failed;
	if (pwrite(pw->fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr) {
		pw->wr.err = errno;
		goto write_failed;
	}
	pw->committed = 1; /* from here the repaired image is the image */
	writer_crash_point("header");
	if (fsync(pw->fd))
		rc = ih_fail(err, IH_ERR_IO, "%s: fsync after the header: %s", p->path, strerror(errno));
	writer_crash_point("done");
	goto out;
write_failed:
	rc = ih_fail(err, write_code(pw->wr.err), "%s: writing failed: %s; the image was left as it was",
		     p->path, strerror(pw->wr.err ? pw->wr.err : EIO));
out:
	free(t.v);
	return rc;
}

/* Sources in DISM's order: the caller's, then the image's policy. */
static int open_sources(ih_session *s, const ih_restore_options *opt, ih_report *r,
			struct source **out, size_t *nout, ih_error *err)
{
	struct policy pol = {.use_windows_update = -1};
	char **pol_specs = NULL;
	size_t npol = 0;

	r->policy_use_windows_update = -1;
	if (!opt->no_policy) {
		if (opt->policy_hive) {
			policy_read_hive_file(opt->policy_hive, &pol);
		} else {
			uint32_t first = ih_session_first(s), last = ih_session_last(s);
			struct image_meta *metas = calloc(last - first + 2, sizeof *metas);
			struct ih_reader rd;
			size_t nm = 0;
			ih_reader_init(&rd, s->w);
			for (uint32_t i = first; metas && i <= last && s->w->image_count; i++) {
				ih_error e2;
				if (image_meta_read(s->w, &rd, i, &metas[nm], &e2) == IH_OK)
					nm++;
			}
			if (metas)
				policy_read(s->w, metas, nm, &pol);
			for (size_t i = 0; i < nm; i++)
				image_meta_free(&metas[i]);
			free(metas);
			ih_reader_free(&rd);
		}
		r->policy_use_windows_update = pol.use_windows_update;
		r->policy_note = pol.note;
		pol.note = NULL;
		if (pol.local_source_path) {
			r->policy_local_source_path = ih_strdup(pol.local_source_path);
			char *save = NULL, *copy = ih_strdup(pol.local_source_path);
			for (char *tok = copy ? strtok_r(copy, ";", &save) : NULL; tok;
			     tok = strtok_r(NULL, ";", &save)) {
				while (*tok == ' ')
					tok++;
				if (!*tok)
					continue;
				char **np = realloc(pol_specs, (npol + 1) * sizeof *np);
				if (!np)
					break;
				pol_specs = np;
				pol_specs[npol++] = ih_strdup(tok);
			}
			free(copy);
		}
	}
	size_t total = opt->n_sources + npol;
	struct source *src = calloc(total + 1, sizeof *src);
	r->sources = calloc(total + 1, sizeof *r->sources);
	if (!src || !r->sources) {
		free(src);
		for (size_t i = 0; i < npol; i++)
			free(pol_specs[i]);
		free(pol_specs);
		policy_free(&pol);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < opt->n_sources; i++)
		source_open(&src[i], &r->sources[i], opt->sources[i], IH_ORIGIN_CALLER);
	for (size_t i = 0; i < npol; i++) {
		/* "wim:C:\src\install.wim:1" -> the mapped local path */
		const char *spec = pol_specs[i];
		char prefix[5] = "";
		if (!strncasecmp(spec, "wim:", 4) || !strncasecmp(spec, "esd:", 4)) {
			memcpy(prefix, spec, 4);
			spec += 4;
		}
		char *winpath = ih_strdup(spec);
		uint32_t idx = winpath ? source_split_index(winpath) : 0;
		char msg[600] = "out of memory";
		char *local = winpath ? policy_map_path_why(winpath, opt->path_map, opt->n_path_map,
							    msg, sizeof msg) : NULL;
		ih_source_report *rep = &r->sources[opt->n_sources + i];
		if (!local) {
			src[opt->n_sources + i].rep = rep; /* kept, unusable, for the report */
			rep->spec = ih_strdup(pol_specs[i]);
			rep->origin = IH_ORIGIN_POLICY;
			rep->kind = prefix[0] ? IH_SOURCE_WIM : IH_SOURCE_DIR;
			rep->error = ih_strdup(msg);
		} else {
			char full[4200];
			if (idx)
				snprintf(full, sizeof full, "%s%s:%u", prefix, local, idx);
			else
				snprintf(full, sizeof full, "%s%s", prefix, local);
			source_open(&src[opt->n_sources + i], rep, full, IH_ORIGIN_POLICY);
			free(rep->spec);
			rep->spec = ih_strdup(pol_specs[i]); /* report what the policy says */
		}
		free(local);
		free(winpath);
		free(pol_specs[i]);
	}
	free(pol_specs);
	policy_free(&pol);
	r->n_sources = total;
	*out = src;
	*nout = total;
	return IH_OK;
}

static int cmp_target(const void *a, const void *b)
{
	const struct target *x = a, *y = b;
	return memcmp(x->dm->sha1, y->dm->sha1, 20);
}

/* Asks for the header's tables of a WIM source to be read ahead. */
static void prefetch_tables(const char *spec)
{
	uint8_t hb[WIM_HEADER_SIZE];
	struct wim_header h;
	char why[64];
	uint32_t index;
	int wim_prefix;
	char *path = source_spec_path(spec, &index, &wim_prefix);
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;

	free(path);
	if (fd < 0)
		return;
	if (pread(fd, hb, sizeof hb, 0) == (ssize_t)sizeof hb &&
	    wimfmt_parse_header(hb, sizeof hb, &h, why, sizeof why) == 0) {
		posix_fadvise(fd, (off_t)h.blob_table.offset, (off_t)h.blob_table.stored_size,
			      POSIX_FADV_WILLNEED);
		posix_fadvise(fd, (off_t)h.xml.offset, (off_t)h.xml.stored_size, POSIX_FADV_WILLNEED);
	}
	close(fd); /* the readahead goes on */
}

static int hash_data(void *ctx, const uint8_t *data, size_t len)
{
	ih_sha1_update(ctx, data, len);
	return 0;
}

/* Re-reads every repaired blob from the new file. */
static int reverify(const struct wim *nw, const struct target *ts, size_t nt, char *why,
		    size_t whylen)
{
	struct ih_reader rd;
	ih_sha1_ctx *md = ih_sha1_new();
	int bad = 0;
	ih_reader_init(&rd, nw);
	for (size_t k = 0; k < nt && !bad && md; k++) {
		const struct wim_blob *b = NULL;
		ih_reason reason;
		char detail[160];
		uint8_t hash[20];
		if (ts[k].source < 0)
			continue;
		size_t *v = ih_blobindex_get(&nw->index, ts[k].dm->sha1);
		if (v)
			b = &nw->blobs[*v];
		for (uint32_t i = 0; !b && i < nw->image_count; i++)
			if (nw->metadata[i] != SIZE_MAX &&
			    !memcmp(nw->blobs[nw->metadata[i]].sha1, ts[k].dm->sha1, 20))
				b = &nw->blobs[nw->metadata[i]];
		ih_sha1_init(md);
		if (!b || ih_read_any_blob(&rd, b, hash_data, md, NULL,
					   &reason, detail, sizeof detail) != IH_READ_OK) {
			bad = 1;
		} else {
			ih_sha1_final(md, hash);
			bad = memcmp(hash, ts[k].dm->sha1, 20) != 0;
		}
		if (bad) {
			char hex[41];
			ih_sha1_hex(ts[k].dm->sha1, hex);
			snprintf(why, whylen, "blob %s does not read back right after writing", hex);
		}
	}
	ih_sha1_free(md);
	ih_reader_free(&rd);
	return bad ? -1 : 0;
}

static int copy_images(uint32_t **out, size_t *nout, const ih_damage *dm)
{
	*nout = 0;
	*out = calloc(dm->n_images + 1, sizeof **out);
	if (!*out)
		return -1;
	for (size_t i = 0; i < dm->n_images; i++)
		(*out)[(*nout)++] = dm->images[i];
	return 0;
}

static int copy_refs(ih_ref **out, size_t *nout, const ih_damage *dm)
{
	*nout = 0;
	*out = calloc(dm->n_refs + 1, sizeof **out);
	if (!*out)
		return -1;
	for (size_t i = 0; i < dm->n_refs; i++) {
		(*out)[i].image = dm->refs[i].image;
		(*out)[i].path = ih_strdup(dm->refs[i].path);
		if (!(*out)[i].path)
			return -1;
		(*nout)++;
	}
	return 0;
}

static int run_restore(ih_job *j, void *argp, ih_report **out, ih_error *err)
{
	struct restore_arg *a = argp;
	ih_session *s = a->s;
	const ih_restore_options *opt = &a->opt;
	ih_report *before = NULL, *r = calloc(1, sizeof *r);
	struct source *src = NULL;
	size_t nsrc = 0, nt = 0;
	struct target *ts = NULL;
	struct part_write *pws = NULL;
	struct rebuild rb = {.fd = -1};
	int rc = IH_OK, any_commit = 0, locked = 0;
	double t0 = ih_now();

	if (!r)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	/* The session's shared lock becomes exclusive: no other session, in
	 * this process or another, has the image open meanwhile. */
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK
			     ? ih_fail(err, IH_ERR_BUSY,
				       "%s is in use by another session or restore; close it and retry",
				       s->w->path)
			     : ih_fail(err, IH_ERR_IO, "%s: lock: %s", s->w->path, strerror(errno));
		goto out;
	}
	locked = 1;
	rebuild_sweep(s->w->path);

	/* The sources' blob tables are read first thing when they open: have
	 * the kernel fetch them while the check below runs. */
	for (size_t i = 0; i < opt->n_sources; i++)
		prefetch_tables(opt->sources[i]);

	/* The damage: what the last full scan of this exact file recorded,
	 * or a full scan now. */
	ih_check_options co = {.scan = 1, .threads = opt->threads};
	rc = check_from_records(s, &before);
	if (rc == 1)
		rc = check_run(s, j, &co, &before, err);
	else if (rc)
		rc = ih_fail(err, rc, "out of memory");
	if (rc)
		goto out;
	if (ih_job_cancelled(j))
		goto out;
	r->restored = 1;
	r->state_before = before->state;
	r->image_path = ih_strdup(s->w->path);
	r->index = s->index;
	r->scanned = before->scanned;
	r->from_record = before->from_record;
	r->recorded_at = before->recorded_at;
	r->blobs_checked = before->blobs_checked;
	r->bytes_checked = before->bytes_checked;
	r->policy_use_windows_update = -1;
	if (before->state == IH_NONREPAIRABLE || (before->state == IH_HEALTHY)) {
		/* Nothing anyone can fix, or nothing to fix: report as found. */
		ih_report *keep = before;
		before = NULL;
		keep->restored = 1;
		keep->state_before = keep->state;
		keep->policy_use_windows_update = -1;
		ih_report_free(r);
		r = keep;
		goto done;
	}

	ih_job_set_phase(j, IH_PHASE_PLAN, 0, before->n_damage);
	rc = open_sources(s, opt, r, &src, &nsrc, err);
	if (rc)
		goto out;

	nt = before->n_damage;
	ts = calloc(nt + 1, sizeof *ts);
	pws = calloc(s->w->nparts + 1u, sizeof *pws);
	if (!ts || !pws) {
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* Whether a blob is used by no image can be told only when every
	 * image's directory tree could be read. */
	int trees_known = s->index == 0;
	for (size_t k = 0; k < nt; k++)
		trees_known &= !before->damage[k].is_metadata;
	for (size_t i = 0; i < before->n_problems; i++)
		trees_known &= before->problems[i].kind != IH_PROBLEM_METADATA;
	uint64_t total = 0;
	for (size_t k = 0; k < nt; k++) {
		const ih_damage *dm = &before->damage[k];
		struct target *t = &ts[k];
		size_t *v = ih_blobindex_get(&s->w->index, dm->sha1);
		t->dm = dm;
		t->source = -1;
		if (v)
			t->blob = &s->w->blobs[*v];
		for (uint32_t i = 0; !t->blob && i < s->w->image_count; i++)
			if (s->w->metadata[i] != SIZE_MAX &&
			    !memcmp(s->w->blobs[s->w->metadata[i]].sha1, dm->sha1, 20))
				t->blob = &s->w->blobs[s->w->metadata[i]];
		t->part = t->blob ? t->blob->part : 1;
		/* A damaged blob no image uses (say, an entry whose SHA-1 was
		 * damaged: the files now miss the real one) is not fetched: its
		 * entry is removed. */
		t->drop = trees_known && t->blob && !dm->is_metadata && dm->n_images == 0;
		total += dm->size;
	}
	qsort(ts, nt, sizeof *ts, cmp_target);

	if (opt->rebuild) {
		rc = rebuild_begin(s->w, &rb, err);
		if (rc)
			goto out;
	}
	ih_job_set_phase(j, IH_PHASE_FETCH, total, nt);
	uint64_t done_bytes = 0;
	for (size_t k = 0; k < nt && rc == IH_OK; k++) {
		struct target *t = &ts[k];
		struct writer *wr = &rb.wr;
		if (ih_job_cancelled(j))
			break;
		if (!opt->rebuild) {
			rc = prepare_part(s->w, t->part, &pws[t->part - 1], err);
			wr = &pws[t->part - 1].wr;
		}
		for (size_t i = 0; i < nsrc && rc == IH_OK && t->source < 0 && !t->drop; i++) {
			int got = source_supply(&src[i], t->dm->sha1, t->blob ? t->blob->size : 0,
						t->dm->refs, t->dm->n_refs, wr, &j->cancel, j,
						&t->sup);
			atomic_store(&j->bytes_done, done_bytes); /* a rejected try does not count */
			if (got == 1)
				t->source = (int)i;
			else if (got < 0 && !ih_job_cancelled(j))
				rc = ih_fail(err, write_code(wr->err),
					     "%s: writing failed: %s; the image was left as it was",
					     wr->path, strerror(wr->err ? wr->err : EIO));
		}
		done_bytes += t->dm->size;
		atomic_store(&j->bytes_done, done_bytes);
		atomic_fetch_add(&j->blobs_done, 1);
		ih_job_tick(j);
	}
	if (rc || ih_job_cancelled(j))
		goto out;

	/* Commit: each part that got repairs (part 1 too if only its XML or
	 * integrity table needed rewriting). */
	ih_job_set_phase(j, IH_PHASE_WRITE, 0, s->w->nparts);
	int part1_needs = 0;
	for (size_t i = 0; i < before->n_problems; i++)
		part1_needs |= before->problems[i].severity == IH_REPAIRABLE;
	if (opt->rebuild) {
		if (ih_job_cancelled(j))
			goto out;
		rc = rebuild_commit(s->w, &rb, ts, nt, err);
		any_commit = rb.renamed;
		r->rebuilt = rb.renamed;
		r->bytes_written = rb.wr.bytes_written;
		if (any_commit) {
			/* the lock and the view follow the new file */
			int nfd = open(s->w->path, O_RDONLY | O_CLOEXEC);
			if (nfd >= 0 && flock(nfd, LOCK_EX | LOCK_NB) == 0) {
				close(s->lock_fd);
				s->lock_fd = nfd;
			} else if (nfd >= 0) {
				close(nfd);
			}
		}
	}
	for (uint16_t p = 1; p <= s->w->nparts && rc == IH_OK && !opt->rebuild; p++) {
		int has = 0;
		for (size_t k = 0; k < nt; k++)
			has |= ts[k].part == p && (ts[k].source >= 0 || ts[k].drop);
		if (!has && !(p == 1 && part1_needs))
			continue;
		/* The last point where cancel leaves the image as it was. */
		if (!any_commit && ih_job_cancelled(j))
			goto out;
		rc = prepare_part(s->w, p, &pws[p - 1], err);
		if (rc == IH_OK)
			rc = commit_part(s->w, p, &pws[p - 1], ts, nt, err);
		any_commit |= pws[p - 1].committed;
		atomic_fetch_add(&j->blobs_done, 1);
	}
	if (rc)
		goto out;

	/* The repaired file replaces the session's view of it. */
	ih_job_set_phase(j, IH_PHASE_VERIFY, 0, nt);
	for (uint16_t p = 0; p < s->w->nparts; p++) {
		r->bytes_written += pws[p].wr.bytes_written;
		if (pws[p].opened && !pws[p].committed)
			rollback_part(&pws[p]); /* flagged but nothing to write */
		close_part(&pws[p]);
	}
	struct wim *nw = NULL;
	rc = wim_open(s->w->path, &nw, err);
	if (rc)
		goto out;
	char why[160];
	if (reverify(nw, ts, nt, why, sizeof why)) {
		wim_free(nw);
		rc = ih_fail(err, IH_ERR_INTERNAL, "%s: %s", s->w->path, why);
		goto out;
	}
	pthread_mutex_lock(&s->mu);
	wim_free(s->w);
	s->w = nw;
	s->info_ready = 0;
	pthread_mutex_unlock(&s->mu);

	/* The report: what was repaired and from where, what is left. */
	r->repaired = calloc(nt + 1, sizeof *r->repaired);
	r->damage = calloc(nt + 1, sizeof *r->damage);
	r->dropped = calloc(nt + 1, sizeof *r->dropped);
	if (!r->repaired || !r->damage || !r->dropped) {
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < nt; k++) {
		const struct target *t = &ts[k];
		if (t->source >= 0) {
			ih_repair *rp = &r->repaired[r->n_repaired++];
			memcpy(rp->sha1, t->dm->sha1, 20);
			rp->size = t->dm->size;
			rp->source = t->source;
			rp->raw_copy = t->sup.raw_copy;
			rp->is_metadata = t->dm->is_metadata;
			if (copy_images(&rp->images, &rp->n_images, t->dm) ||
			    copy_refs(&rp->refs, &rp->n_refs, t->dm))
				rc = IH_ERR_NOMEM;
		} else {
			int dropped = t->drop;
			ih_damage *dm = dropped ? &r->dropped[r->n_dropped++] : &r->damage[r->n_damage++];
			*dm = *t->dm;
			dm->refs = NULL;
			dm->n_refs = 0;
			snprintf(dm->detail, sizeof dm->detail, "%s; %.110s",
				 dropped ? "no image uses it: its entry was removed"
					 : "no source has it (0x800F081F)",
				 t->dm->detail[0] ? t->dm->detail : ih_reason_name(t->dm->reason));
			if (copy_images(&dm->images, &dm->n_images, t->dm) ||
			    copy_refs(&dm->refs, &dm->n_refs, t->dm))
				rc = IH_ERR_NOMEM;
		}
	}
	if (rc) {
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
		goto out;
	}
	r->state = r->n_damage ? IH_REPAIRABLE : IH_HEALTHY;
	/* Problems the rewrite could not fix stay. */
	r->problems = calloc(before->n_problems + 1, sizeof *r->problems);
	for (size_t i = 0; r->problems && i < before->n_problems; i++)
		if (before->problems[i].severity == IH_NONREPAIRABLE)
			r->problems[r->n_problems++] = before->problems[i];

	/* Record the new state of the new file: a quick check knows at once. */
	state_save_report(s, r);
done:
	r->seconds = ih_now() - t0;
out:
	rebuild_abort(&rb);
	if (pws) {
		for (uint16_t p = 0; p < s->w->nparts; p++) {
			if (!any_commit)
				rollback_part(&pws[p]);
			close_part(&pws[p]);
		}
	}
	for (size_t i = 0; i < nsrc; i++)
		source_close(&src[i]);
	free(src);
	free(ts);
	free(pws);
	ih_report_free(before);
	if (locked)
		flock(s->lock_fd, LOCK_SH);
	ih_session_end_job(s, 1);
	if (rc == IH_OK && ih_job_cancelled(j) && !any_commit) {
		ih_report_free(r);
		return ih_fail(err, IH_ERR_CANCELLED,
			       "restore cancelled before anything was committed; the image is as it was");
	}
	if (rc) {
		ih_report_free(r);
		return rc;
	}
	if (any_commit)
		atomic_store(&j->cancel, 0); /* past the point of no return: it completed */
	*out = r;
	return IH_OK;
}

static int dup_strings(struct restore_arg *a, const char *const *in, size_t n,
		       const char *const **out)
{
	const char **v = calloc(n + 1, sizeof *v);
	char **ns = realloc(a->strings, (a->nstrings + n + 1) * sizeof *ns);
	if (!v || !ns) {
		free(v);
		if (ns)
			a->strings = ns;
		return -1;
	}
	a->strings = ns;
	for (size_t i = 0; i < n; i++) {
		char *c = ih_strdup(in[i] ? in[i] : "");
		if (!c) {
			free(v);
			return -1;
		}
		a->strings[a->nstrings++] = c;
		v[i] = c;
	}
	*out = v;
	return 0;
}

int ih_restore_start(ih_session *s, const ih_restore_options *opt, ih_job **out,
		     ih_error *err)
{
	struct restore_arg *a;

	if (!s)
		return ih_fail(err, IH_ERR_INVALID_SESSION, "no session");
	a = calloc(1, sizeof *a);
	if (!a)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	if (opt)
		a->opt = *opt;
	ih_cancel_ref(a->opt.cancel); /* free_restore_arg drops it */
	a->opt.sources = NULL;
	a->opt.path_map = NULL;
	a->opt.policy_hive = NULL;
	if (opt && (dup_strings(a, opt->sources, opt->n_sources, &a->opt.sources) ||
		    dup_strings(a, opt->path_map, 2 * opt->n_path_map, &a->opt.path_map) ||
		    (opt->policy_hive && !(a->policy_hive = ih_strdup(opt->policy_hive))))) {
		free_restore_arg(a);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	a->opt.policy_hive = a->policy_hive;
	a->s = s;
	ih_session_ref(s);
	return ih_session_start_job(s, 1, run_restore, a, free_restore_arg, a->opt.cancel, out,
				    err);
}

int ih_restore(ih_session *s, const ih_restore_options *opt, ih_report **report,
	       ih_error *err)
{
	ih_job *j;
	int rc = ih_restore_start(s, opt, &j, err);
	return rc ? rc : ih_job_finish(j, report, err);
}
