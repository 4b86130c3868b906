/* source.h - where repair bytes come from.  Every kind of source (a WIM,
 * ESD or split set; a directory holding an extracted or mounted image;
 * later a web server or a Lua script) is one implementation of this
 * interface.  Sources are untrusted: they only offer candidates and stream
 * their bytes into a sink, which checks them against the SHA-1 the image
 * wants before anything counts. */
#ifndef IH_SOURCE_H
#define IH_SOURCE_H

#include "imagehealth.h"
#include "sink.h"

struct ih_job;

/* What the restore wants: a blob by SHA-1.  size is what the damaged
 * image's entry claims (0: unknown); it may itself be damaged, so sources
 * match by SHA-1 and say their own size. */
struct want {
	const uint8_t *sha1;
	uint64_t size;
	const ih_ref *refs;      /* paths that use it, for sources laid out as trees */
	size_t n_refs;
	const uint32_t *images;  /* images that use it; how it is damaged (for a */
	size_t n_images;         /* scripted source's request) */
	ih_reason reason;
	int is_metadata;
};

/* A candidate a source offers. */
struct candidate {
	uint64_t size;           /* the size the source claims for it */
	int raw;                 /* its stored bytes suit the writer as they are */
	uint8_t raw_flags;       /* reshdr flags of those stored bytes */
	const void *blob;        /* source-private: which blob */
	char *path;              /* source-private: which file (malloc'd, freed by the fetch) */
};

struct source;

/* Bytes of a source's reason kept per blob in the report (longer ones are
 * cut). */
#define SOURCE_WHY_MAX 256

struct source_ops {
	/* The nth candidate (0, 1, ...) for w, considering a writer wr
	 * (NULL: verify only) for whether raw copying suits.  1 with *c
	 * filled, 0 when there are no more. */
	int (*find)(struct source *src, const struct want *w, const struct writer *wr,
		    size_t nth, struct candidate *c);
	/* Streams the candidate's bytes into sk (begun by the caller).
	 * Returns 1 when the whole candidate was read, 0 when reading failed
	 * or was stopped by the sink. */
	int (*read)(struct source *src, const struct candidate *c, struct sink *sk);
	void (*close)(struct source *src);
	/* Optional: called by the fetch stage before it asks for any of the n
	 * wants of a round, so that a remote source can request every
	 * resource at once (one wave) and then serve find/read from what
	 * arrived.  job: cancel and progress (may be NULL).  Returns 0, or -1
	 * when the source became unusable meanwhile (it has then called
	 * source_fail: ops is NULL). */
	int (*prepare)(struct source *src, const struct want *wants, size_t n,
		       struct ih_job *job);
	/* Optional: after find said no (or its bytes did not verify), why
	 * this source did not supply w: IH_ERR_DOWNLOAD when it has the blob
	 * but the download failed, else IH_OK. */
	ih_errcode (*why_not)(struct source *src, const struct want *w);
};

/* A parsed source spec: "wim:PATH[:INDEX]", "esd:...", a .wim/.esd/.swm
 * path, a directory, an http:// or https:// URL[:INDEX], or "script:NAME"
 * (the caller answers requests). */
struct source_spec {
	char *path;              /* local path (malloc'd) */
	uint32_t index;          /* INDEX, or 0 */
	int wim_prefix;          /* written wim:/esd: */
	int script;              /* written script:NAME (path is NAME): the caller answers */
};

struct source {
	const struct source_ops *ops; /* NULL while unusable */
	ih_source_report *rep;
	void *impl;
	const ih_restore_options *opt; /* the restore's options (remote sources) */
	int index;               /* in the restore's sources (a scripted source's requests) */
	struct ih_job *job;      /* the restore's job (a scripted source asks through it) */
	/* Why its last find said no, for the report (cleared by the fetch
	 * before each find): a scripted source's reason, and whether the
	 * answer could not be kept rather than was not there. */
	char why[SOURCE_WHY_MAX];
	int why_error;
};

/* Parses spec.  0, or -1 when out of memory. */
int source_spec_parse(const char *spec, struct source_spec *out);
/* A policy's Windows spec ("wim:C:\src\install.wim:1", "D:\mount") made
 * local through the caller's path map.  0; POLICY_PATH_UNMAPPED (no
 * mapping) or POLICY_PATH_REFUSED (a ".." component), *why saying so; -1
 * when out of memory. */
int source_spec_from_policy(const char *winspec, const char *const *path_map, size_t n_map,
			    struct source_spec *out, char *why, size_t whylen);
void source_spec_free(struct source_spec *sp);

/* Opens a source of the spec, the report's fields filled.  Never fails: an
 * unusable source is kept (ops NULL) with rep->status and rep->error
 * saying why.  origin as in the report. */
void source_open(struct source *src, ih_source_report *rep, const char *spec,
		 const struct source_spec *sp, ih_source_origin origin,
		 const ih_restore_options *opt);
/* A source that could not even be named locally (a policy spec no path map
 * entry covers, or one refused): kept for the report. */
void source_unmapped(struct source *src, ih_source_report *rep, const char *spec,
		     ih_source_origin origin, int refused, const char *why);
void source_close(struct source *src);
/* Frees what a source report holds (not the report itself). */
void source_report_free(ih_source_report *rep);
/* Marks src unusable with a message (printf-style). */
void source_fail(struct source *src, ih_errcode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The implementations. */
void wim_source_open(struct source *src);
void dir_source_open(struct source *src);
/* An http:// or https:// URL (rep->path is the URL as shown; url may hold
 * credentials).  Nothing is fetched until the source is first asked. */
void http_source_open(struct source *src, const char *url);
/* The remote WIM of an HTTP source, opened now if it was not (header, blob
 * table, XML and, with an INDEX, that image's metadata resource, which
 * must match its SHA-1); NULL when it cannot be (src->rep says why). */
const struct wim *http_source_wim(struct source *src);
/* A scripted source: asks src->job's caller for each blob (request_source.c). */
void request_source_open(struct source *src);

/* Asks for the tables of a WIM source spec to be read ahead (the kernel
 * fetches them while the damage is being found). */
void source_prefetch(const char *spec);

#endif
