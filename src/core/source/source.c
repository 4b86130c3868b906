/* source.c - source specs, opening a source of the right kind, and the
 * report's view of it. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "http_ranges.h"
#include "policy.h"
#include "source.h"
#include "util.h"
#include "wimfmt.h"

/* Splits "PATH:INDEX" (INDEX all digits) in place; returns INDEX or 0. */
static uint32_t split_index(char *path)
{
	char *colon = strrchr(path, ':');
	if (!colon || !colon[1] || colon == path)
		return 0;
	for (const char *p = colon + 1; *p; p++)
		if (!isdigit((unsigned char)*p))
			return 0;
	unsigned long v = strtoul(colon + 1, NULL, 10);
	if (v == 0 || v > UINT32_MAX)
		return 0;
	*colon = '\0';
	return (uint32_t)v;
}

static int has_wim_prefix(const char *spec)
{
	return !strncasecmp(spec, "wim:", 4) || !strncasecmp(spec, "esd:", 4);
}

int source_spec_parse(const char *spec, struct source_spec *out)
{
	struct stat st;

	memset(out, 0, sizeof *out);
	if (!strncmp(spec, "script:", 7)) {
		out->script = 1;
		out->path = ih_strdup(spec + 7);
		return out->path ? 0 : -1;
	}
	out->wim_prefix = has_wim_prefix(spec);
	out->path = ih_strdup(spec + (out->wim_prefix ? 4 : 0));
	if (!out->path)
		return -1;
	/* "URL:INDEX": an index after the path (a port has a path after it) */
	if (url_is_http(out->path)) {
		const char *auth = strstr(out->path, "://") + 3;
		const char *path = strchr(auth, '/');
		const char *colon = strrchr(out->path, ':');
		if (path && colon > path)
			out->index = split_index(out->path);
		return 0;
	}
	/* "PATH:INDEX" when PATH itself does not exist with the colon */
	if (stat(out->path, &st) != 0)
		out->index = split_index(out->path);
	return 0;
}

int source_spec_from_policy(const char *winspec, const char *const *path_map, size_t n_map,
			    struct source_spec *out, char *why, size_t whylen)
{
	char *winpath;

	memset(out, 0, sizeof *out);
	out->wim_prefix = has_wim_prefix(winspec);
	winpath = ih_strdup(winspec + (out->wim_prefix ? 4 : 0));
	if (!winpath)
		return -1;
	/* "C:\src\install.wim:1": the drive's colon is not an index */
	out->index = split_index(winpath);
	int rc = policy_map_path_why(winpath, path_map, n_map, &out->path, why, whylen);
	free(winpath);
	return rc;
}

void source_spec_free(struct source_spec *sp)
{
	free(sp->path);
	sp->path = NULL;
}

void source_fail(struct source *src, ih_errcode code, const char *fmt, ...)
{
	char buf[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (src->ops && src->ops->close)
		src->ops->close(src);
	src->ops = NULL;
	free(src->rep->error);
	src->rep->error = ih_strdup(buf);
	src->rep->error_code = code;
	src->rep->status = IH_SOURCE_UNUSABLE;
	src->rep->usable = 0;
}

static void report_init(struct source *src, ih_source_report *rep, const char *spec,
			ih_source_origin origin)
{
	memset(src, 0, sizeof *src);
	src->rep = rep;
	/* a URL's user:password and query (a token) are never reported */
	const char *bare = has_wim_prefix(spec) ? spec + 4 : spec;
	rep->spec = url_is_http(bare) ? url_shown(spec) : ih_strdup(spec);
	rep->origin = origin;
}

void source_unmapped(struct source *src, ih_source_report *rep, const char *spec,
		     ih_source_origin origin, int refused, const char *why)
{
	report_init(src, rep, spec, origin);
	rep->kind = has_wim_prefix(spec) ? IH_SOURCE_WIM : IH_SOURCE_DIR;
	rep->status = refused ? IH_SOURCE_UNUSABLE : IH_SOURCE_UNMAPPED;
	rep->error_code = refused ? IH_ERR_INVALID_ARG : IH_ERR_SOURCE_MISSING;
	rep->error = ih_strdup(why);
}

void source_open(struct source *src, ih_source_report *rep, const char *spec,
		 const struct source_spec *sp, ih_source_origin origin,
		 const ih_restore_options *opt)
{
	struct stat st;
	int http = !sp->script && url_is_http(sp->path);

	report_init(src, rep, spec, origin);
	src->opt = opt;
	rep->path = http ? url_shown(sp->path) : ih_strdup(sp->path);
	rep->index = sp->index;
	rep->kind = http ? IH_SOURCE_HTTP : sp->wim_prefix ? IH_SOURCE_WIM : IH_SOURCE_DIR;
	if (!rep->path || !rep->spec) {
		source_fail(src, IH_ERR_NOMEM, "out of memory");
		return;
	}
	if (http) {
		/* contacted only when first asked: a remote source behind
		 * local ones that had everything costs nothing */
		http_source_open(src, sp->path);
		if (src->ops)
			rep->status = IH_SOURCE_NOT_CONTACTED;
		return;
	}
	if (sp->script) {
		rep->kind = IH_SOURCE_SCRIPT;
		request_source_open(src);
		goto opened;
	}
	/* stat, not open: a FIFO named as a source must not block us */
	if (stat(rep->path, &st) != 0) {
		source_fail(src, ih_errno_code(errno), "%s: %s", rep->path, strerror(errno));
		return;
	}
	if (S_ISDIR(st.st_mode) && !sp->wim_prefix) {
		dir_source_open(src);
	} else if (S_ISREG(st.st_mode)) {
		rep->kind = IH_SOURCE_WIM;
		wim_source_open(src);
	} else {
		source_fail(src, IH_ERR_INVALID_ARG, "%s: not a regular file%s", rep->path,
			    sp->wim_prefix ? "" : " or a directory");
		return;
	}
opened:
	if (src->ops) {
		rep->status = IH_SOURCE_USABLE;
		rep->usable = 1;
	}
}

void source_close(struct source *src)
{
	if (src->ops && src->ops->close)
		src->ops->close(src);
	memset(src, 0, sizeof *src);
}

void source_report_free(ih_source_report *rep)
{
	for (size_t k = 0; k < rep->n_notes; k++)
		free(rep->notes[k]);
	free(rep->notes);
	free(rep->spec);
	free(rep->path);
	free(rep->error);
}

void source_prefetch(const char *spec)
{
	uint8_t hb[WIM_HEADER_SIZE];
	struct wim_header h;
	struct source_spec sp;
	char why[64];
	int fd;

	if (source_spec_parse(spec, &sp))
		return;
	if (sp.script || url_is_http(sp.path)) {
		source_spec_free(&sp);
		return;
	}
	fd = open(sp.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	source_spec_free(&sp);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    pread(fd, hb, sizeof hb, 0) == (ssize_t)sizeof hb &&
	    wimfmt_parse_header(hb, sizeof hb, &h, why, sizeof why) == 0) {
		posix_fadvise(fd, (off_t)h.blob_table.offset, (off_t)h.blob_table.stored_size,
			      POSIX_FADV_WILLNEED);
		posix_fadvise(fd, (off_t)h.xml.offset, (off_t)h.xml.stored_size, POSIX_FADV_WILLNEED);
	}
	close(fd); /* the readahead goes on */
}
