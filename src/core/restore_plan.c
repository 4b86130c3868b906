/* restore_plan.c - the plan stage: which damaged blobs become targets (or
 * are dropped), and the sources to ask, in DISM's order: the caller's, then
 * those of the image's servicing policy, then the default repair server
 * (the host's configured URLs; Windows Update's place) unless limit_access
 * or the policy's UseWindowsUpdate = 2 bars it. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "job.h"
#include "policy.h"
#include "restore.h"
#include "util.h"

/* The policy: from a hive file the caller names, or from the SOFTWARE
 * hive inside the selected images. */
static void read_policy(ih_session *s, const ih_restore_options *opt, struct policy *pol)
{
	uint32_t first = ih_session_first(s), last = ih_session_last(s);
	struct image_meta *metas;
	struct ih_reader rd;
	size_t nm = 0;

	if (opt->policy_hive) {
		policy_read_hive_file(opt->policy_hive, pol);
		return;
	}
	if (!s->w->image_count)
		return;
	metas = calloc(last - first + 2, sizeof *metas);
	if (!metas)
		return;
	ih_reader_init(&rd, s->w);
	for (uint32_t i = first; i <= last; i++) {
		ih_error e2;
		if (image_meta_read(s->w, &rd, i, &metas[nm], &e2) == IH_OK)
			nm++;
	}
	policy_read(s->w, metas, nm, pol);
	for (size_t i = 0; i < nm; i++)
		image_meta_free(&metas[i]);
	free(metas);
	ih_reader_free(&rd);
}

/* Splits LocalSourcePath ("a;b; c") into specs.  Returns the count or -1. */
static int split_policy_specs(const char *lsp, char ***out)
{
	char *copy = ih_strdup(lsp), *save = NULL;
	char **v = NULL;
	int n = 0;

	if (!copy)
		return -1;
	for (char *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		while (*tok == ' ')
			tok++;
		if (!*tok)
			continue;
		char **nv = realloc(v, (size_t)(n + 1) * sizeof *nv);
		char *dup = ih_strdup(tok);
		if (!nv || !dup) {
			free(dup);
			v = nv ? nv : v;
			while (n > 0)
				free(v[--n]);
			free(v);
			free(copy);
			return -1;
		}
		v = nv;
		v[n++] = dup;
	}
	free(copy);
	*out = v;
	return n;
}

static void free_specs(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Adds spec (trimmed; '#' comments and blank lines skipped) to v. */
static int add_spec(char ***v, int *n, const char *tok, size_t len)
{
	while (len && (*tok == ' ' || *tok == '\t')) {
		tok++;
		len--;
	}
	while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t' || tok[len - 1] == '\r'))
		len--;
	if (!len || *tok == '#')
		return 0;
	char **nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
	if (!nv)
		return -1;
	*v = nv;
	nv[*n] = malloc(len + 1);
	if (!nv[*n])
		return -1;
	memcpy(nv[*n], tok, len);
	nv[*n][len] = '\0';
	(*n)++;
	return 0;
}

/* A repair-sources file: one spec a line.  A missing file is no list (1);
 * anything but a small regular file is ignored. */
static int read_sources_file(const char *path, char ***v, int *n)
{
	char buf[65536];
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 1;
	ssize_t got = -1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < (off_t)sizeof buf)
		got = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (got < 0)
		return 1;
	for (ssize_t i = 0, start = 0; i <= got; i++)
		if (i == got || buf[i] == '\n') {
			if (add_spec(v, n, buf + start, (size_t)(i - start)))
				return -1;
			start = i + 1;
		}
	return 0;
}

/* The default repair server: the caller's override file, else
 * $IMAGEHEALTH_REPAIR_SOURCES (';'-separated; set and empty: none), else
 * $XDG_CONFIG_HOME/imagehealth/repair-sources (~/.config when unset), else
 * /etc/imagehealth/repair-sources.  Returns the count or -1. */
static int default_specs(const ih_restore_options *opt, char ***out)
{
	char **v = NULL, path[4096];
	int n = 0, rc = 0;
	const char *env = getenv("IMAGEHEALTH_REPAIR_SOURCES");
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");

	if (opt->default_sources_file) {
		rc = read_sources_file(opt->default_sources_file, &v, &n) < 0 ? -1 : 0;
	} else if (env) {
		for (const char *p = env; rc == 0;) {
			size_t len = strcspn(p, ";");
			rc = add_spec(&v, &n, p, len);
			if (!p[len])
				break;
			p += len + 1;
		}
	} else {
		rc = 1;
		if (xdg && *xdg == '/')
			snprintf(path, sizeof path, "%s/imagehealth/repair-sources", xdg);
		else if (home && *home == '/')
			snprintf(path, sizeof path, "%s/.config/imagehealth/repair-sources", home);
		else
			path[0] = '\0';
		if (path[0])
			rc = read_sources_file(path, &v, &n);
		if (rc == 1)
			rc = read_sources_file("/etc/imagehealth/repair-sources", &v, &n);
		rc = rc < 0 ? -1 : 0;
	}
	if (rc < 0) {
		free_specs(v, n);
		return -1;
	}
	*out = v;
	return n;
}

int restore_open_sources(struct restore_ctx *x, const char *first, struct policy *pol,
			 ih_error *err)
{
	const ih_restore_options *opt = x->opt;
	ih_restore_report *r = x->r;
	char **pol_specs = NULL;
	int npol = 0;
	size_t nfirst = first != NULL;

	r->no_policy = opt->no_policy;
	r->policy_use_windows_update = -1;
	if (!opt->no_policy) {
		r->policy_use_windows_update = pol->use_windows_update;
		r->policy_note = pol->note;
		pol->note = NULL;
		if (pol->local_source_path) {
			r->policy_local_source_path = ih_strdup(pol->local_source_path);
			npol = split_policy_specs(pol->local_source_path, &pol_specs);
		}
	}
	policy_free(pol);
	if (npol < 0)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	/* The default repair server, after everything else, unless barred */
	char **def_specs = NULL;
	int ndef = default_specs(opt, &def_specs);
	if (ndef < 0) {
		free_specs(pol_specs, npol);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	r->n_default_sources = (size_t)ndef;
	r->default_barred = opt->limit_access ? 1 : r->policy_use_windows_update == 2 ? 2 : 0;
	if (r->default_barred) {
		x->default_barred = ndef > 0 ? r->default_barred : 0;
		free_specs(def_specs, ndef);
		def_specs = NULL;
		ndef = 0;
	}
	size_t ncaller = nfirst + opt->n_sources;
	size_t total = ncaller + (size_t)npol + (size_t)ndef;
	x->src = calloc(total + 1, sizeof *x->src);
	r->sources = calloc(total + 1, sizeof *r->sources);
	if (!x->src || !r->sources) {
		free_specs(pol_specs, npol);
		free_specs(def_specs, ndef);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	r->n_sources = x->nsrc = total;
	for (size_t i = 0; i < total; i++) {
		int policy = i >= ncaller && i < ncaller + (size_t)npol;
		int def = i >= ncaller + (size_t)npol;
		const char *spec = def ? def_specs[i - ncaller - (size_t)npol]
				   : policy ? pol_specs[i - ncaller]
				   : i < nfirst ? first : opt->sources[i - nfirst];
		ih_source_origin origin = def ? IH_ORIGIN_DEFAULT
					  : policy ? IH_ORIGIN_POLICY : IH_ORIGIN_CALLER;
		struct source_spec sp;
		char why[600];
		int prc = policy ? source_spec_from_policy(spec, opt->path_map, opt->n_path_map, &sp,
							   why, sizeof why)
				 : source_spec_parse(spec, &sp);
		if (prc < 0) {
			free_specs(pol_specs, npol);
			free_specs(def_specs, ndef);
			return ih_fail(err, IH_ERR_NOMEM, "out of memory");
		}
		if (prc > 0)
			source_unmapped(&x->src[i], &r->sources[i], spec, origin,
					prc == POLICY_PATH_REFUSED, why);
		else
			source_open(&x->src[i], &r->sources[i], spec, &sp, origin, opt);
		x->src[i].index = (int)i;
		x->src[i].job = x->j;
		source_spec_free(&sp);
	}
	free_specs(pol_specs, npol);
	free_specs(def_specs, ndef);
	return IH_OK;
}

static int open_sources(struct restore_ctx *x, ih_error *err)
{
	struct policy pol = {.use_windows_update = -1};
	if (!x->opt->no_policy)
		read_policy(x->s, x->opt, &pol);
	return restore_open_sources(x, NULL, &pol, err);
}

static int cmp_target(const void *a, const void *b)
{
	const struct target *x = a, *y = b;
	return memcmp(x->dm->sha1, y->dm->sha1, 20);
}

/* Whether a blob is used by no image can be told only when every image's
 * directory tree could be read. */
static int trees_known(const ih_session *s, const ih_report *before)
{
	int known = s->index == 0;
	for (size_t k = 0; k < before->n_damage; k++)
		known &= !before->damage[k].is_metadata;
	for (size_t i = 0; i < before->n_problems; i++)
		known &= before->problems[i].kind != IH_PROBLEM_METADATA;
	return known;
}

static int plan_targets(struct restore_ctx *x, ih_error *err)
{
	const ih_report *before = x->r->check;
	int known = trees_known(x->s, before);

	x->nt = before->n_damage;
	x->ts = calloc(x->nt + 1, sizeof *x->ts);
	if (!x->ts)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	for (size_t k = 0; k < x->nt; k++) {
		const ih_damage *dm = &before->damage[k];
		struct target *t = &x->ts[k];
		t->dm = dm;
		t->source = -1;
		t->blob = wim_find_blob(x->s->w, dm->sha1);
		t->part = t->blob ? t->blob->part : 1;
		/* A damaged blob no image uses (say, an entry whose SHA-1 was
		 * damaged: the files now miss the real one) is not fetched: its
		 * entry is removed. */
		t->drop = known && t->blob && !dm->is_metadata && dm->n_images == 0;
	}
	qsort(x->ts, x->nt, sizeof *x->ts, cmp_target);
	/* Part 1's tail is rewritten for its repairable problems (XML,
	 * integrity table, the write-in-progress flag) even with no blob to
	 * repair. */
	for (size_t i = 0; i < before->n_problems; i++)
		x->tail_needs |= before->problems[i].severity == IH_REPAIRABLE;
	return IH_OK;
}

/* Asks the caller about target t (ACCEPT or ORDER).  1: found (for ORDER,
 * *data and *len the answer, malloc'd); 0: not found (reason copied to
 * why); -1: cancelled; -2: out of memory. */
static int ask_caller(struct restore_ctx *x, const struct target *t, ih_request_kind kind,
		      uint8_t **data, size_t *len, char *why, size_t whylen)
{
	const ih_damage *dm = t->dm;
	ih_request req = {.kind = kind, .source = -1, .size = dm->size, .n_refs = dm->n_refs,
			  .refs = dm->refs, .n_images = (uint32_t)dm->n_images,
			  .images = dm->images, .reason = dm->reason,
			  .is_metadata = dm->is_metadata, .n_sources = x->nsrc};
	uint64_t id;
	ih_error e;
	int rc;

	*data = NULL;
	*len = 0;
	memcpy(req.sha1, dm->sha1, 20);
	if (ih_job_ask(x->j, &req, &id, &e) != IH_OK)
		return e.code == IH_ERR_NOMEM ? -2 : -1;
	for (;;) {
		const void *piece;
		size_t n;
		const char *reason;
		ih_answer a = ih_job_answer_next(x->j, id, &piece, &n, &reason);
		if (a == IH_ANSWER_DATA) {
			if (n > ((size_t)1 << 20) - *len)
				continue; /* an order longer than any sane one: ignored */
			uint8_t *nd = realloc(*data, *len + n);
			if (!nd) {
				rc = -2;
				break;
			}
			memcpy(nd + *len, piece, n);
			*data = nd;
			*len += n;
			continue;
		}
		if (a == IH_ANSWER_FOUND) {
			rc = 1;
		} else if (a == IH_ANSWER_NOT_FOUND) {
			snprintf(why, whylen, "%s", reason ? reason : "");
			rc = 0;
		} else {
			rc = -1;
		}
		break;
	}
	ih_job_ask_end(x->j, id);
	if (rc != 1) {
		free(*data);
		*data = NULL;
		*len = 0;
	}
	return rc;
}

/* The caller's source order for t: valid indexes, each once, in the order
 * given.  An answer naming no usable index leaves t with no source. */
static int take_order(struct restore_ctx *x, struct target *t, const uint8_t *data, size_t len)
{
	size_t n = len / sizeof(uint32_t);
	t->order = calloc(n + 1, sizeof *t->order);
	if (!t->order)
		return -1;
	t->norder = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t v;
		memcpy(&v, data + i * sizeof v, sizeof v);
		int dup = v >= x->nsrc;
		for (size_t k = 0; k < t->norder && !dup; k++)
			dup = t->order[k] == v;
		if (!dup)
			t->order[t->norder++] = v;
	}
	return 0;
}

/* The caller's policies, per target: whether to repair it (ACCEPT) and the
 * sources to try (ORDER).  Stops quietly when cancelled (the run reports
 * it). */
static int plan_policies(struct restore_ctx *x, ih_error *err)
{
	if (!x->opt->ask_accept && !x->opt->ask_order)
		return IH_OK;
	for (size_t k = 0; k < x->nt && !ih_job_cancelled(x->j); k++) {
		struct target *t = &x->ts[k];
		uint8_t *data;
		size_t len;
		char why[sizeof t->skip_reason];
		int a;
		if (t->drop)
			continue;
		if (x->opt->ask_accept) {
			why[0] = '\0';
			a = ask_caller(x, t, IH_REQUEST_ACCEPT, &data, &len, why, sizeof why);
			free(data);
			if (a == -2)
				return ih_fail(err, IH_ERR_NOMEM, "out of memory");
			if (a < 0)
				return IH_OK;
			if (a == 0) {
				t->skipped = 1;
				snprintf(t->skip_reason, sizeof t->skip_reason, "%s", why);
				continue;
			}
		}
		if (x->opt->ask_order) {
			a = ask_caller(x, t, IH_REQUEST_ORDER, &data, &len, why, sizeof why);
			if (a == -2)
				return ih_fail(err, IH_ERR_NOMEM, "out of memory");
			if (a < 0)
				return IH_OK;
			if (a == 1 && take_order(x, t, data, len)) {
				free(data);
				return ih_fail(err, IH_ERR_NOMEM, "out of memory");
			}
			free(data);
		}
		atomic_fetch_add(&x->j->blobs_done, 1);
		ih_job_tick(x->j);
	}
	return IH_OK;
}

int restore_plan(struct restore_ctx *x, ih_error *err)
{
	int rc;
	ih_job_set_phase(x->j, IH_PHASE_PLAN, 0, x->r->check->n_damage);
	rc = open_sources(x, err);
	if (rc == IH_OK)
		rc = plan_targets(x, err);
	if (rc == IH_OK)
		rc = plan_policies(x, err);
	if (rc == IH_OK && !ih_job_cancelled(x->j))
		rc = x->opt->dry_run   ? verify_committer_new(x, &x->cm, err)
		     : x->opt->rebuild ? rebuild_committer_new(x, &x->cm, err)
				       : inplace_committer_new(x, &x->cm, err);
	return rc;
}
