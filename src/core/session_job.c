/* session_job.c - open and info as jobs, for hosts that must not block on
 * a large image (an event loop): the same work as ih_session_open and
 * ih_session_info on a job's thread, polled, cancelled and released like a
 * check; the outcome is read with ih_job_session_result and
 * ih_job_info_result. */
#include <stdlib.h>
#include "session.h"
#include "util.h"

/* ------------------------------------------------------------ open */

struct open_arg {
	char *path;
	ih_open_options opt;     /* its strings owned here */
	ih_restore_options http; /* opt.http points here: its strings owned too */
};

/* The http_* fields of o, copied (their strings and headers too) into c.
 * 0, or -1 when out of memory (what was copied is freed by http_free). */
static int http_copy(ih_restore_options *c, const ih_restore_options *o)
{
	const char **h = o->n_http_headers ? calloc(o->n_http_headers + 1, sizeof *h) : NULL;
	int bad = o->n_http_headers && !h;
	memset(c, 0, sizeof *c);
	c->http_netrc = o->http_netrc;
	c->http_connect_timeout = o->http_connect_timeout;
	c->http_stall_timeout = o->http_stall_timeout;
	c->http_retries = o->http_retries;
	c->http_retry_wait_max = o->http_retry_wait_max;
	c->http_whole_file_max = o->http_whole_file_max;
	c->http_max_redirects = o->http_max_redirects;
	c->http_parallel = o->http_parallel;
#define DUP(f) bad |= o->f && !(c->f = ih_strdup(o->f))
	DUP(http_ca_file);
	DUP(http_client_cert);
	DUP(http_client_key);
	DUP(http_proxy);
	DUP(http_netrc_file);
#undef DUP
	for (size_t i = 0; h && i < o->n_http_headers; i++)
		bad |= !(h[i] = ih_strdup(o->http_headers[i]));
	c->http_headers = h;
	c->n_http_headers = h ? o->n_http_headers : 0;
	return bad ? -1 : 0;
}

static void http_free(ih_restore_options *c)
{
	free((char *)c->http_ca_file);
	free((char *)c->http_client_cert);
	free((char *)c->http_client_key);
	free((char *)c->http_proxy);
	free((char *)c->http_netrc_file);
	for (size_t i = 0; i < c->n_http_headers; i++)
		free((char *)c->http_headers[i]);
	free((void *)c->http_headers);
}

static void free_open_arg(void *p)
{
	struct open_arg *a = p;
	free(a->path);
	free((char *)a->opt.state_dir);
	free((char *)a->opt.reference);
	http_free(&a->http);
	free(a);
}

/* Copies what the job needs of the caller's arguments (they may be gone
 * before it runs).  NULL when out of memory. */
static struct open_arg *open_arg_new(const char *path, const ih_open_options *opt)
{
	struct open_arg *a = calloc(1, sizeof *a);
	if (!a)
		return NULL;
	if (opt)
		a->opt = *opt;
	a->opt.state_dir = NULL;
	a->opt.reference = NULL;
	a->opt.http = NULL;
	a->path = ih_strdup(path);
	int bad = !a->path;
	if (opt && opt->state_dir)
		bad |= !(a->opt.state_dir = ih_strdup(opt->state_dir));
	if (opt && opt->reference)
		bad |= !(a->opt.reference = ih_strdup(opt->reference));
	if (opt && opt->http) {
		bad |= http_copy(&a->http, opt->http) != 0;
		a->opt.http = &a->http;
	}
	if (bad) {
		free_open_arg(a);
		return NULL;
	}
	return a;
}

static int run_open(ih_job *j, void *argp, ih_report **out, ih_error *err)
{
	struct open_arg *a = argp;
	ih_session *s = NULL;
	(void)out;
	ih_job_set_phase(j, IH_PHASE_START, 0, 0);
	if (ih_job_cancelled(j))
		return ih_fail(err, IH_ERR_CANCELLED, "open cancelled");
	int rc = ih_session_open(a->path, &a->opt, &s, err);
	if (rc == IH_OK && ih_job_cancelled(j)) {
		/* nobody wants it: let go of the image (and its lock) now */
		ih_session_close(s);
		return ih_fail(err, IH_ERR_CANCELLED, "open cancelled");
	}
	if (rc == IH_OK)
		j->session = s;
	return rc;
}

int ih_session_open_start(const char *path, const ih_open_options *opt, ih_cancel *cancel,
			  ih_job **out, ih_error *err)
{
	if (!path || !*path)
		return ih_fail(err, IH_ERR_INVALID_ARG, "no image path given");
	struct open_arg *a = open_arg_new(path, opt);
	if (!a)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	int rc = ih_job_start(run_open, a, free_open_arg, cancel, out, err);
	if (rc)
		free_open_arg(a);
	return rc;
}

/* ------------------------------------------------------------ info */

struct info_arg {
	ih_session *s;
};

static void free_info_arg(void *p)
{
	struct info_arg *a = p;
	ih_session_unref(a->s);
	free(a);
}

static int run_info(ih_job *j, void *argp, ih_report **out, ih_error *err)
{
	struct info_arg *a = argp;
	ih_wim_info *info = NULL;
	(void)out;
	int rc = session_info_job(j, a->s, &info, err);
	ih_session_end_job(a->s, 0);
	if (rc == IH_OK)
		j->info = info;
	return rc;
}

int ih_session_info_start(ih_session *s, ih_cancel *cancel, ih_job **out, ih_error *err)
{
	if (!s)
		return ih_fail(err, IH_ERR_INVALID_SESSION, "no session");
	struct info_arg *a = calloc(1, sizeof *a);
	if (!a)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	a->s = s;
	ih_session_ref(s);
	/* a job on the session: beside checks, never during a restore (which
	 * swaps the image the info is read from) */
	return ih_session_start_job(s, 0, run_info, a, free_info_arg, cancel, out, err);
}
