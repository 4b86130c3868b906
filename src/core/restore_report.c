/* restore_report.c - the restore's report: what was repaired and from
 * where, what is left and why, the sources as they were found; it embeds
 * the check the restore started from. */
#include <stdio.h>
#include <stdlib.h>
#include "restore.h"
#include "util.h"

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

/* The target's tries go to the report entry (moved: the targets are freed
 * after the report). */
static void take_tries(ih_try **out, size_t *nout, struct target *t)
{
	*out = t->tries;
	*nout = t->ntries;
	t->tries = NULL;
	t->ntries = 0;
}

static int report_repair(ih_repair *rp, struct target *t)
{
	memcpy(rp->sha1, t->dm->sha1, 20);
	rp->size = t->sup.size;
	rp->source = t->source;
	rp->raw_copy = t->sup.raw_copy;
	rp->is_metadata = t->dm->is_metadata;
	take_tries(&rp->tries, &rp->n_tries, t);
	return copy_images(&rp->images, &rp->n_images, t->dm) ||
	       copy_refs(&rp->refs, &rp->n_refs, t->dm);
}

/* A damaged blob left as it is: dropped (no image uses it) or unrepaired. */
static int report_left(ih_damage *dm, struct target *t)
{
	*dm = *t->dm;
	dm->refs = NULL;
	dm->n_refs = 0;
	dm->images = NULL;
	dm->n_images = 0;
	take_tries(&dm->tries, &dm->n_tries, t);
	dm->code = t->drop ? IH_OK : t->skipped ? IH_ERR_POLICY : t->code ? t->code
									    : IH_ERR_SOURCE_MISSING;
	if (t->skipped) /* never empty: it tells a skip from a barred repair server */
		snprintf(dm->policy_reason, sizeof dm->policy_reason, "%s",
			 t->skip_reason[0] ? t->skip_reason : "declined by the caller");
	const char *why = t->drop ? "no image uses it: its entry was removed"
		: t->skipped ? "skipped by policy (0x800F0907)"
		: dm->code == IH_ERR_DOWNLOAD ? "the download from a remote source failed (0x800F0906)"
		: dm->code == IH_ERR_POLICY ? "no source has it; the repair server was not asked: "
					      "remote access barred (0x800F0907)"
		: "no source has it (0x800F081F)";
	snprintf(dm->detail, sizeof dm->detail, "%s; %.70s", why,
		 t->dm->detail[0] ? t->dm->detail : ih_reason_name(t->dm->reason));
	return copy_images(&dm->images, &dm->n_images, t->dm) ||
	       copy_refs(&dm->refs, &dm->n_refs, t->dm);
}

int restore_report_start(struct restore_ctx *x)
{
	ih_restore_report *r = calloc(1, sizeof *r);
	if (!r)
		return IH_ERR_NOMEM;
	r->check = x->before;
	x->before = NULL;
	r->state = r->check->state;
	r->image_path = ih_strdup(x->s->w->path);
	r->index = x->s->index;
	r->policy_use_windows_update = -1;
	r->limit_access = x->opt->limit_access;
	r->no_policy = x->opt->no_policy;
	r->dry_run = x->opt->dry_run;
	x->r = r;
	return r->image_path ? IH_OK : IH_ERR_NOMEM;
}

/* Nothing to fix, or nothing anyone can fix: the damage stays, each entry
 * with why. */
static int report_as_found(ih_restore_report *r)
{
	const ih_report *c = r->check;
	ih_errcode why = c->state == IH_NONREPAIRABLE ? IH_ERR_NONREPAIRABLE : IH_ERR_SOURCE_MISSING;
	r->unrepaired = calloc(c->n_damage + 1, sizeof *r->unrepaired);
	r->problems = calloc(c->n_problems + 1, sizeof *r->problems);
	if (!r->unrepaired || !r->problems)
		return IH_ERR_NOMEM;
	for (size_t k = 0; k < c->n_damage; k++) {
		ih_damage *dm = &r->unrepaired[r->n_unrepaired++];
		*dm = c->damage[k];
		dm->refs = NULL;
		dm->images = NULL;
		dm->n_refs = dm->n_images = 0;
		dm->tries = NULL;
		dm->n_tries = 0;
		dm->code = why;
		if (copy_images(&dm->images, &dm->n_images, &c->damage[k]) ||
		    copy_refs(&dm->refs, &dm->n_refs, &c->damage[k]))
			return IH_ERR_NOMEM;
	}
	memcpy(r->problems, c->problems, c->n_problems * sizeof *c->problems);
	r->n_problems = c->n_problems;
	return IH_OK;
}

int restore_report_finish(struct restore_ctx *x, ih_error *err)
{
	ih_restore_report *r = x->r;
	const ih_report *c = r->check;
	int bad = 0;

	if (!x->ts)
		return report_as_found(r) ? ih_fail(err, IH_ERR_NOMEM, "out of memory") : IH_OK;
	r->repaired = calloc(x->nt + 1, sizeof *r->repaired);
	r->unrepaired = calloc(x->nt + 1, sizeof *r->unrepaired);
	r->dropped = calloc(x->nt + 1, sizeof *r->dropped);
	r->problems = calloc(c->n_problems + 1, sizeof *r->problems);
	if (!r->repaired || !r->unrepaired || !r->dropped || !r->problems)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	for (size_t k = 0; k < x->nt && !bad; k++) {
		struct target *t = &x->ts[k];
		if (t->source >= 0) {
			bad = report_repair(&r->repaired[r->n_repaired++], t);
			r->bytes_planned += t->sup.size;
		}
		else if (t->drop)
			bad = report_left(&r->dropped[r->n_dropped++], t);
		else
			bad = report_left(&r->unrepaired[r->n_unrepaired++], t);
	}
	if (bad)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	r->state = r->n_unrepaired ? IH_REPAIRABLE : IH_HEALTHY;
	/* Problems the rewrite could not fix stay. */
	for (size_t i = 0; i < c->n_problems; i++)
		if (c->problems[i].severity == IH_NONREPAIRABLE)
			r->problems[r->n_problems++] = c->problems[i];
	if (r->n_problems)
		r->state = IH_NONREPAIRABLE;
	if (r->dry_run) /* nothing was written: the image is as found */
		r->state = c->state;
	return IH_OK;
}

/* The restore's outcome as a check report, for the state store: what a
 * quick check of the new file should say. */
int restore_report_as_check(const ih_restore_report *r, ih_report *out)
{
	memset(out, 0, sizeof *out);
	out->state = r->state;
	out->scanned = 1;
	out->image_path = r->image_path;
	out->index = r->index;
	out->n_damage = r->n_unrepaired;
	out->damage = r->unrepaired;
	out->n_problems = r->n_problems;
	out->problems = r->problems;
	return IH_OK;
}

void ih_restore_report_free(ih_restore_report *r)
{
	if (!r)
		return;
	ih_report_free(r->check);
	free(r->image_path);
	for (size_t i = 0; i < r->n_repaired; i++) {
		for (size_t k = 0; k < r->repaired[i].n_refs; k++)
			free(r->repaired[i].refs[k].path);
		free(r->repaired[i].refs);
		free(r->repaired[i].images);
		tries_free(r->repaired[i].tries, r->repaired[i].n_tries);
	}
	free(r->repaired);
	for (size_t i = 0; i < r->n_unrepaired; i++)
		damage_free(&r->unrepaired[i]);
	free(r->unrepaired);
	for (size_t i = 0; i < r->n_dropped; i++)
		damage_free(&r->dropped[i]);
	free(r->dropped);
	free(r->problems);
	for (size_t i = 0; i < r->n_sources; i++)
		source_report_free(&r->sources[i]);
	free(r->sources);
	free(r->policy_local_source_path);
	free(r->policy_note);
	free(r);
}
