/*
 * imagehealth.h - check and repair the health of Windows images (WIM, ESD,
 * split WIM), the way DISM's DismCheckImageHealth does, on Linux.
 *
 * The core knows nothing of Lua.  Long operations run on worker threads and
 * report through an ih_job: a progress snapshot, a queue of events, a cancel
 * flag, and a file descriptor that becomes readable when something happened.
 */
#ifndef IMAGEHEALTH_H
#define IMAGEHEALTH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every declaration of the public API is exported; the library is built
 * with -fvisibility=hidden, so nothing else is. */
#if defined(__GNUC__)
#define IH_API __attribute__((visibility("default")))
#else
#define IH_API
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define IH_VERSION_STRING "0.2.0"

/* DismImageHealthState */
typedef enum ih_health {
	IH_HEALTHY = 0,
	IH_REPAIRABLE = 1,
	IH_NONREPAIRABLE = 2,
} ih_health;

/* Error codes.  Each has an HRESULT (DISM's where one fits). */
typedef enum ih_errcode {
	IH_OK = 0,
	IH_ERR_NOMEM,           /* 0x8007000E */
	IH_ERR_INVALID_ARG,     /* 0x80070057 */
	IH_ERR_NOT_FOUND,       /* 0x80070002: the image file does not exist */
	IH_ERR_ACCESS,          /* 0x80070005: permission denied */
	IH_ERR_NOT_WIM,         /* 0xC1420113: not a WIM/ESD file at all */
	IH_ERR_BAD_INDEX,       /* 0xC0040005: no such image index */
	IH_ERR_BUSY,            /* 0x800F0902: image locked by a restore */
	IH_ERR_INVALID_SESSION, /* 0xC0040004: session closed */
	IH_ERR_CANCELLED,       /* 0x800704C7 */
	IH_ERR_IO,              /* 0x8007001E: read or write failed */
	IH_ERR_MISSING_PART,    /* 0x80070002: a part of a split set is missing */
	IH_ERR_NONREPAIRABLE,   /* 0x80070570: image structure unreadable */
	IH_ERR_SOURCE_MISSING,  /* 0x800F081F */
	IH_ERR_DOWNLOAD,        /* 0x800F0906 */
	IH_ERR_POLICY,          /* 0x800F0907 */
	IH_ERR_DISK_FULL,       /* 0x80070070 */
	IH_ERR_INTERNAL,        /* 0x8000FFFF */
	IH_ERR__COUNT
} ih_errcode;

typedef struct ih_error {
	ih_errcode code;
	uint32_t hresult;
	char message[512];
} ih_error;

/* Short stable name of a code ("not_found", "busy", ...). */
const char *ih_errcode_name(ih_errcode code);
uint32_t ih_errcode_hresult(ih_errcode code);
const char *ih_health_name(ih_health h); /* "healthy", "repairable", ... */

/* ---------------------------------------------------------------- session */

typedef struct ih_session ih_session;

typedef struct ih_open_options {
	uint32_t index;        /* 0: all images; else 1-based image index */
	const char *state_dir; /* NULL: $XDG_STATE_HOME/imagehealth */
	int threads;           /* <= 0: number of online CPUs */
	/* An applied image tree: path is a directory checked against this
	 * reference: "wim:PATH:INDEX" (or PATH.wim / .esd with index below),
	 * "seal:FILE" (a manifest written by ih_tree_seal), or "seal" (this
	 * tree's seal in the state store).  NULL with a directory path: the
	 * state store's seal. */
	const char *reference;
	int case_insensitive;  /* tree: names compare case-insensitively (also
				* automatic on an ntfs-3g / FUSE or FAT mount) */
	/* An http(s):// reference: its http_* fields (CA bundle, client
	 * certificate, proxy, netrc, headers, timeouts, retries) as a restore
	 * takes them; the other fields are ignored.  NULL: the defaults.
	 * ih_session_open_start copies it. */
	const struct ih_restore_options *http;
} ih_open_options;

typedef struct ih_image_info {
	uint32_t index;
	char *name;            /* from the XML data; "" when absent */
	char *description;
	uint64_t file_count;   /* non-directory entries in the metadata */
	uint64_t dir_count;
	uint64_t blob_count;   /* distinct streams referenced */
	uint64_t total_bytes;  /* sum of referenced stream sizes, per path */
	int metadata_ok;       /* 0 when the metadata resource is damaged */
} ih_image_info;

typedef struct ih_wim_info {
	char *path;
	uint8_t guid[16];
	uint32_t version;
	uint32_t flags;
	uint32_t chunk_size;
	int compression;       /* WIMLIB_COMPRESSION_TYPE_* of the header */
	const char *compression_name; /* "none", "XPRESS", "LZX", "LZMS" */
	int solid;             /* has solid resources (ESD) */
	uint16_t total_parts;
	uint32_t image_count;
	uint32_t boot_index;
	uint64_t blob_count;   /* entries in the blob table(s), metadata excluded */
	uint64_t file_size;    /* all parts */
	int has_integrity;
	uint32_t selected_index; /* 0: all */
	size_t n_images;
	ih_image_info *images; /* the selected image(s) */
} ih_wim_info;

int ih_session_open(const char *path, const ih_open_options *opt,
		    ih_session **out, ih_error *err);
/* Fills *info (owned by the session, valid until close).  Parses metadata
 * on first call; damaged metadata is reported as metadata_ok = 0. */
int ih_session_info(ih_session *s, const ih_wim_info **info, ih_error *err);
void ih_session_close(ih_session *s);

/* ---------------------------------------------------------------- cancel */

/* A cancel token may be shared by several jobs and triggered from any
 * thread.  Reference counted. */
typedef struct ih_cancel ih_cancel;
ih_cancel *ih_cancel_new(void);
ih_cancel *ih_cancel_ref(ih_cancel *c);
void ih_cancel_unref(ih_cancel *c);
void ih_cancel_trigger(ih_cancel *c);
int ih_cancel_is_set(const ih_cancel *c);

/* ---------------------------------------------------------------- jobs */

typedef enum ih_phase {
	IH_PHASE_START = 0,
	IH_PHASE_QUICK,     /* structural checks, metadata */
	IH_PHASE_SCAN,      /* reading and hashing every blob */
	IH_PHASE_INTEGRITY, /* integrity table */
	IH_PHASE_REPORT,
	IH_PHASE_PLAN,      /* restore: finding sources */
	IH_PHASE_FETCH,     /* restore: reading from sources */
	IH_PHASE_WRITE,     /* restore: writing */
	IH_PHASE_VERIFY,    /* restore: re-verifying */
	IH_PHASE_DONE,
} ih_phase;
const char *ih_phase_name(ih_phase p);

typedef struct ih_progress {
	ih_phase phase;
	uint64_t bytes_done, bytes_total;
	uint64_t blobs_done, blobs_total;
	double elapsed;      /* seconds since the job started */
} ih_progress;

typedef enum ih_event_type {
	IH_EVENT_PROGRESS = 1,
	IH_EVENT_DAMAGE,     /* a damaged blob was found: sha1, size, reason; text has details */
	IH_EVENT_MESSAGE,
	IH_EVENT_DONE,
	IH_EVENT_REQUEST,    /* a worker asks for a blob: see ih_job_request */
} ih_event_type;

typedef struct ih_event {
	ih_event_type type;
	ih_progress progress;
	char text[256];
	uint64_t request_id; /* IH_EVENT_REQUEST: the request's id */
	/* IH_EVENT_DAMAGE: the blob */
	uint8_t sha1[20];
	uint64_t size;       /* uncompressed size the image claims */
	int reason;          /* ih_reason */
	int is_metadata;
	/* IH_EVENT_DAMAGE: the files that use the blob, as the report lists
	 * them (by image, then path; beyond the report's cap only counted).
	 * Owned by the job: valid until ih_job_free. */
	const struct ih_ref *refs;
	size_t n_refs;
	size_t n_refs_omitted;
} ih_event;

typedef struct ih_job ih_job;
typedef struct ih_report ih_report;

/* Readable (POLLIN) when events are queued, the job finished, or a reply
 * refused with IH_ERR_BUSY may be retried. */
int ih_job_fd(const ih_job *j);
/* Copies up to max queued events out; returns how many.  Also resets the
 * fd's readiness when the queue is drained. */
size_t ih_job_events(ih_job *j, ih_event *out, size_t max);
void ih_job_progress(ih_job *j, ih_progress *out);
void ih_job_cancel(ih_job *j);
int ih_job_done(ih_job *j);
/* Waits up to timeout_ms (< 0: forever) for the job to finish, for an
 * event, or for room for a refused reply; returns 1 if done. */
int ih_job_wait(ih_job *j, int timeout_ms);
/* After a check job is done: the outcome.  Returns IH_OK and hands over
 * the report (the caller frees it), or the error.  A restore job's outcome
 * is read with ih_job_restore_result, an open job's with
 * ih_job_session_result, an info job's with ih_job_info_result. */
int ih_job_result(ih_job *j, ih_report **report, ih_error *err);
/* Cancels if running, joins the threads, frees.  After ih_job_release it
 * never blocks: it drops the caller's hold, and the job is freed once its
 * threads are joined. */
void ih_job_free(ih_job *j);
/* Jobs started from now on run their threads this much nicer than the
 * calling thread (0..19; default 0), so that an event loop on the calling
 * thread is scheduled promptly on a busy machine (Linux: per-thread nice). */
void ih_set_worker_nice(int increment);
/* For event loops and garbage collectors: ends the caller's use of the job
 * without blocking.  Cancels it if running, closes its fd at once (tell the
 * loop that polls it first: cqueues.cancel(fd), stop a luv poll handle) and
 * joins its threads on a thread of its own, which then also lets go of the
 * session (and its lock).  ih_job_done, ih_job_wait (by its condition
 * variable), ih_job_result and ih_job_restore_result still work: an outcome
 * computed before the release, or after it when the cancel came too late
 * (a restore already committing), can still be read.  ih_job_fd returns -1
 * and ih_job_events nothing.  Call ih_job_free once done with it. */
void ih_job_release(ih_job *j);
/* Waits up to timeout_ms (< 0: forever) until the threads of every released
 * job are joined.  Done at exit by itself (up to 5 s); a host that unloads
 * the library, or closes the Lua state that used it, calls it first. */
void ih_jobs_wait_released(int timeout_ms);

/* Requests: a worker of the job (for example the restore's fetch stage,
 * asking a scripted source for a blob) posts an IH_EVENT_REQUEST event and
 * waits; the caller answers from its own thread with the calls below.  The
 * core never calls its caller.  Each request the caller saw should be ended
 * with ih_job_reply_end, even after a call returned IH_ERR_CANCELLED: that
 * releases it (otherwise it is released when the job is freed). */
typedef enum ih_request_kind {
	IH_REQUEST_BLOB = 0,  /* a scripted source ("script:NAME") is asked for the blob: answer
			       * its bytes (ih_job_reply_data) and end found = 1, or end
			       * found = 0 (reason: why not) */
	IH_REQUEST_ORDER,     /* (ih_restore_options.ask_order) the sources to try for this
			       * blob: answer the 0-based source indexes as uint32_t values
			       * (native byte order) and end found = 1; found = 0 keeps the
			       * restore's order */
	IH_REQUEST_ACCEPT,    /* (ih_restore_options.ask_accept) end found = 1 to repair the
			       * blob, found = 0 to skip it (reason: why; the report lists it
			       * unrepaired with code IH_ERR_POLICY) */
} ih_request_kind;

typedef struct ih_request {
	uint64_t id;
	int source;                 /* BLOB: index of the asking source in the restore's
				     * sources (as in the report); else -1 */
	uint8_t sha1[20];
	uint64_t size;              /* expected size, 0 when unknown */
	size_t n_refs;
	const struct ih_ref *refs;  /* paths that use it (ih_ref below) */
	uint32_t n_images;
	const uint32_t *images;     /* images (1-based) that use it */
	ih_request_kind kind;
	int reason;                 /* ih_reason: how the blob is damaged */
	int is_metadata;            /* the directory tree of images[0] */
	size_t n_sources;           /* the restore's sources (ORDER picks among them) */
} ih_request;
/* Details of a request; refs and images stay valid until the caller's
 * ih_job_reply_end for it or ih_job_free.  IH_OK; IH_ERR_CANCELLED when the
 * worker no longer wants it; IH_ERR_INVALID_ARG when there is none with
 * that id (unknown or already ended). */
int ih_job_request(ih_job *j, uint64_t id, ih_request *out);
/* Appends a piece of the answer (copied).  Never blocks.  IH_OK;
 * IH_ERR_BUSY when too much is queued already (IH_JOB_REPLY_QUEUE_MAX): the
 * piece was NOT taken; wait until the job fd is readable (or ih_job_wait),
 * drain the events and retry.  IH_ERR_CANCELLED when the worker no longer
 * wants it (job cancelled or request abandoned); IH_ERR_INVALID_ARG for an
 * unknown or already-ended id (or data NULL with len > 0); IH_ERR_NOMEM
 * when the piece cannot be copied. */
int ih_job_reply_data(ih_job *j, uint64_t id, const void *data, size_t len);
/* Ends the answer: found = 1 (the pieces given are the blob) or 0 (this
 * source does not have it; reason may be NULL, copied; pieces not yet read
 * are dropped).  IH_OK, IH_ERR_CANCELLED (the request is released all the
 * same) or IH_ERR_INVALID_ARG as for ih_job_reply_data. */
int ih_job_reply_end(ih_job *j, uint64_t id, int found, const char *reason);
/* Bytes queued per request beyond which ih_job_reply_data says IH_ERR_BUSY
 * (a larger single piece is taken when nothing is queued). */
#define IH_JOB_REPLY_QUEUE_MAX ((size_t)8 << 20)

/* ---------------------------------------------------------------- check */

typedef struct ih_check_options {
	int scan;           /* 0: quick check (CheckHealth); 1: full (ScanHealth) */
	int threads;        /* <= 0: the session's */
	ih_cancel *cancel;  /* optional */
	int no_record;      /* do not write the state store */
	int deep;           /* with scan: decompress and SHA-1 every blob, never
			     * take unchanged bytes from fingerprints */
} ih_check_options;

int ih_check_start(ih_session *s, const ih_check_options *opt,
		   ih_job **out, ih_error *err);
/* Synchronous convenience: start + wait + result. */
int ih_check(ih_session *s, const ih_check_options *opt,
	     ih_report **report, ih_error *err);

/* ---------------------------------------------------------------- reports */

typedef enum ih_reason {
	IH_REASON_HASH_MISMATCH = 1,
	IH_REASON_DECOMPRESS,  /* a chunk failed to decompress */
	IH_REASON_TRUNCATED,   /* resource extends past the end of its file */
	IH_REASON_MISSING,     /* referenced but not in the blob table */
	IH_REASON_BAD_ENTRY,   /* its blob table entry is inconsistent */
	/* An applied tree (IH_REASON_MISSING: the path is not there): */
	IH_REASON_MODIFIED,    /* the file's content is not the reference's */
	IH_REASON_WRONG_TYPE,  /* a file where a directory belongs, the reverse, or a link */
	IH_REASON_SUSPECT,     /* quick check: its mtime differs; not read */
} ih_reason;
const char *ih_reason_name(ih_reason r); /* "hash_mismatch", ... */

/* Entries of an applied tree. */
typedef enum ih_tree_type {
	IH_TREE_NONE = 0,
	IH_TREE_FILE,
	IH_TREE_DIR,
	IH_TREE_LINK,       /* a symbolic link (a reparse point in the reference) */
	IH_TREE_OTHER,      /* a FIFO, device or socket */
} ih_tree_type;
const char *ih_tree_type_name(ih_tree_type t); /* "none", "file", "directory", ... */

typedef struct ih_ref {
	uint32_t image;     /* 1-based */
	char *path;         /* "/dir/file" or "/dir/file:stream" */
} ih_ref;

/* What one source said when the restore asked it for a blob (a restore
 * report's entries list each source asked, in the order asked). */
typedef enum ih_try_status {
	IH_TRY_NOT_FOUND = 1,   /* it does not have the blob; reason: a scripted
				 * source's own words (lookup's nil, reason) */
	IH_TRY_WRONG_BYTES,     /* it offered bytes that did not match the SHA-1 */
	IH_TRY_DOWNLOAD_FAILED, /* a remote source has it, and the download failed */
	IH_TRY_UNUSABLE,        /* it could not be opened or read (sources[].error) */
	IH_TRY_ERROR,           /* its answer could not be kept (memory, temporary file) */
} ih_try_status;
const char *ih_try_status_name(ih_try_status s); /* "not_found", "wrong_bytes", ... */

typedef struct ih_try {
	int source;             /* index into the report's sources */
	ih_try_status status;
	char *reason;           /* the source's reason, or NULL */
} ih_try;

typedef struct ih_damage {
	uint8_t sha1[20];
	uint64_t size;          /* uncompressed size */
	ih_reason reason;
	int is_metadata;        /* the metadata resource of image images[0] */
	int solid;
	uint16_t part;          /* part number holding it, 0 if missing */
	uint64_t offset;        /* resource offset in that part */
	uint64_t stored_size;   /* resource size in that part */
	ih_errcode code;        /* in a restore report: why it is left
				 * (source_missing: no source had it), else IH_OK */
	size_t n_images;
	uint32_t *images;       /* images hit, sorted, unique */
	size_t n_refs;
	ih_ref *refs;           /* files hit, sorted by (image, path) */
	char detail[160];       /* e.g. "chunk 3 of 7 failed to decompress" */
	char policy_reason[128];/* code IH_ERR_POLICY: the reason the caller's ACCEPT
				 * answer gave for skipping it, or "" */
	size_t n_refs_omitted;  /* further files hit whose paths were not kept
				 * (at most 1000 per blob and 16 MiB of paths
				 * per report); their images are in images */
	/* An applied tree: one entry per path (refs[0]), sha1/size those the
	 * reference wants (zero for a directory or an empty file). */
	ih_tree_type want_type; /* what the reference has there; 0: not a tree */
	ih_tree_type found_type;/* what the tree has there (IH_TREE_NONE: nothing) */
	/* In a restore report's unrepaired entries: each source asked for it
	 * and what it said, in the order asked (none for a check's damage) */
	size_t n_tries;
	ih_try *tries;
} ih_damage;

typedef enum ih_problem_kind {
	IH_PROBLEM_HEADER = 1,
	IH_PROBLEM_BLOB_TABLE,
	IH_PROBLEM_XML,
	IH_PROBLEM_INTEGRITY,
	IH_PROBLEM_METADATA,
	IH_PROBLEM_OTHER,
} ih_problem_kind;

typedef struct ih_problem {
	ih_problem_kind kind;
	ih_health severity;     /* REPAIRABLE or NONREPAIRABLE */
	char message[256];
} ih_problem;

/* ---------------------------------------------------------------- restore */

typedef enum ih_source_kind {
	IH_SOURCE_WIM = 1,   /* wim:PATH[:INDEX], esd:..., or a .wim/.esd/.swm path */
	IH_SOURCE_DIR,       /* an extracted or mounted image tree */
	IH_SOURCE_SCRIPT,    /* script:NAME: the caller answers IH_REQUEST_BLOB requests */
	IH_SOURCE_HTTP,      /* http:// or https:// URL of a WIM, ESD or first .swm */
} ih_source_kind;

typedef enum ih_source_origin {
	IH_ORIGIN_CALLER = 1, /* given by the caller */
	IH_ORIGIN_POLICY,     /* LocalSourcePath in the image's SOFTWARE hive */
	IH_ORIGIN_DEFAULT,    /* the default repair server (the host's configuration:
			       * $IMAGEHEALTH_REPAIR_SOURCES, else
			       * $XDG_CONFIG_HOME/imagehealth/repair-sources, else
			       * /etc/imagehealth/repair-sources); never with limit_access
			       * or a policy UseWindowsUpdate of 2 */
} ih_source_origin;

typedef enum ih_source_status {
	IH_SOURCE_USABLE = 1,   /* it opened: asked for every blob it may have */
	IH_SOURCE_UNUSABLE,     /* it could not be opened or read: error says why */
	IH_SOURCE_UNMAPPED,     /* a policy path that no path_map entry maps */
	IH_SOURCE_NOT_CONTACTED,/* a remote source nothing was asked of: every blob
				 * was found before its turn */
} ih_source_status;

/* One source as the restore saw it. */
typedef struct ih_source_report {
	char *spec;             /* as given ("wim:/x.wim:1", "/mnt/win", ...) */
	ih_source_kind kind;
	ih_source_origin origin;
	char *path;             /* local path used */
	uint32_t index;         /* wim INDEX, 0 if none */
	int usable;             /* it opened (status == IH_SOURCE_USABLE) */
	ih_source_status status;
	ih_errcode error_code;  /* why not, as a code, or IH_OK */
	char *error;            /* why not, or NULL */
	uint64_t bytes_read;    /* blob bytes read from it */
	uint64_t blobs_used;    /* blobs it supplied */
	uint64_t blobs_rejected;/* candidates whose bytes did not hash right */
	uint64_t blobs_not_found;/* blobs it was asked for and said it does not have */
	/* Remote (HTTP) sources; 0 for others.  path is the URL as shown:
	 * without user:password and query string. */
	uint64_t requests;      /* HTTP requests made (retries included) */
	uint64_t bytes_fetched; /* response body bytes received */
	uint64_t bytes_total;   /* bytes the requests asked for */
	uint64_t retries;       /* requests repeated after a transient failure */
	uint64_t failures;      /* requests that failed (each has a note) */
	uint64_t round_trips;   /* sequential waves of requests */
	size_t n_notes;
	char **notes;           /* what the server did, one line each (a 200 for a
				 * range, a retry after 503, a stall, ...); bounded */
} ih_source_report;

typedef struct ih_repair {
	uint8_t sha1[20];
	uint64_t size;
	int source;             /* index into report sources */
	int raw_copy;           /* compressed bytes copied as they were */
	int is_metadata;        /* the directory tree of images[0] */
	const char *action;     /* an applied tree: what was done to refs[0]
				 * ("rewritten", "created", "replaced a directory",
				 * ...); static text, else NULL */
	size_t n_images;
	uint32_t *images;       /* images it serves, sorted */
	size_t n_refs;
	ih_ref *refs;
	size_t n_tries;         /* the sources asked before the one that served */
	ih_try *tries;          /* it, and what each said (as in ih_damage) */
} ih_repair;

/* Answers one request (see ih_request); runs on the thread that waits. */
typedef void (*ih_answer_fn)(ih_job *j, const ih_request *req, void *data);

typedef struct ih_restore_options {
	const char *const *sources;  /* in order; may be NULL */
	size_t n_sources;
	int limit_access;            /* never use remote defaults */
	/* Windows path prefix -> local path, for policy sources:
	 * path_map[2*i] = "C:\\Sources", path_map[2*i+1] = "/mnt/sources" */
	const char *const *path_map;
	size_t n_path_map;
	int no_policy;               /* ignore the image's LocalSourcePath */
	int rebuild;                 /* write a compacted copy and rename it over */
	int threads;
	ih_cancel *cancel;
	const char *policy_hive;     /* test/override: read policy from this hive file */
	int use_record;              /* trust the last full scan's state record
				      * instead of scanning (DISM scans) */
	int no_reference_source;     /* an applied tree: do not ask the reference
				      * image first (only the sources above) */
	int dry_run;                 /* plan and look up, verify the bytes, write nothing:
				      * the image is never opened for writing; the report's
				      * repaired list says what would come from where */
	int ask_order;               /* an IH_REQUEST_ORDER request per blob */
	int ask_accept;              /* an IH_REQUEST_ACCEPT request per blob */
	/* For the synchronous ih_restore (and ih_job_wait_answering): called
	 * on the caller's own thread, from its wait loop, for each request;
	 * answers with ih_job_reply_data / ih_job_reply_end (a request it
	 * leaves unended is ended "not found").  NULL: every request is
	 * answered "not found". */
	ih_answer_fn answer;
	void *answer_data;
	/* Remote (http://, https://) sources.  Zero/NULL: the default. */
	const char *http_ca_file;    /* CA bundle (PEM) to verify servers with */
	const char *http_client_cert;/* client certificate (PEM) */
	const char *http_client_key; /* its key (PEM) */
	const char *http_proxy;      /* proxy URL; NULL: libcurl's environment
				      * (http_proxy, https_proxy, no_proxy) */
	int http_netrc;              /* 1: take credentials from .netrc */
	const char *http_netrc_file; /* that .netrc instead of ~/.netrc */
	const char *const *http_headers; /* extra request headers ("Authorization:
				      * Bearer ..."), never reported */
	size_t n_http_headers;
	double http_connect_timeout; /* seconds (default 10) */
	double http_stall_timeout;   /* seconds without a byte before a transfer is
				      * abandoned (default 30) */
	int http_retries;            /* tries after the first for transient failures
				      * (408, 429, 5xx, reset, stall; default 4; < 0: none) */
	double http_retry_wait_max;  /* cap of the backoff and of Retry-After (default 30) */
	uint64_t http_whole_file_max;/* a server that ignores Range is used only when
				      * the whole file is at most this big (default 0:
				      * never) */
	int http_max_redirects;      /* default 5; never from https to http */
	int http_parallel;           /* requests in flight per source (default 8) */
	const char *default_sources_file; /* test/override: read the default repair
				      * server list from this file instead */
} ih_restore_options;

/* How a check looked at the image (ih_report.scan_kind). */
typedef enum ih_scan_kind {
	IH_SCAN_QUICK = 0,      /* quick check: metadata decoded and walked */
	IH_SCAN_QUICK_RECORD,   /* quick check: metadata and blob table proven
				 * unchanged by hashes of their raw bytes kept
				 * in the record; the record's findings reported */
	IH_SCAN_DEEP,           /* full scan: every blob decompressed and SHA-1 checked */
	IH_SCAN_FINGERPRINT,    /* full scan: raw bytes hashed against the record's
				 * fingerprints; blobs in changed bytes deep-scanned */
	IH_SCAN_INTEGRITY,      /* full scan: raw bytes checked against the image's
				 * own integrity table; blobs in chunks that fail it
				 * (or that it does not cover) deep-scanned */
} ih_scan_kind;
const char *ih_scan_kind_name(ih_scan_kind k); /* "quick", "quick_record", "deep", ... */

/* A check's report (DismCheckImageHealth). */
struct ih_report {
	ih_health state;
	int scanned;            /* a full scan ran now */
	int from_record;        /* damage recalled from the state store */
	double recorded_at;     /* unix time of the recalled scan, or 0 */
	const char *record_note; /* static text: why no state record was read or
				  * kept (no safe state directory, a record
				  * refused), or NULL */
	char *image_path;
	uint32_t index;         /* 0: all images */
	uint64_t blobs_checked, bytes_checked;
	double seconds;
	size_t n_damage;
	ih_damage *damage;      /* sorted by sha1 */
	size_t n_problems;
	ih_problem *problems;
	ih_scan_kind scan_kind;     /* how the check ran */
	uint64_t bytes_deep_scanned; /* blob bytes decompressed and SHA-1 checked
				     * now (all of them in a deep scan) */
	uint64_t bytes_fingerprinted; /* raw file bytes hashed against fingerprints
				       * (record or integrity table) */
	const char *scan_note;      /* static text: why a full scan ran deep rather
				     * than from fingerprints, or NULL */
	/* An applied tree (image_path is the directory): */
	int tree;
	char *reference;        /* the reference as used */
	uint64_t files_checked;
	size_t n_extra;
	char **extra;           /* paths the reference does not have: listed,
				 * never touched (sorted; at most 10000 kept) */
	size_t n_extra_omitted;
	uint64_t named_streams_skipped; /* named data streams the tree has no place for */
	uint64_t links_unverified;      /* reparse points: checked as links only */
};

/* A restore's report (DismRestoreImageHealth).  It embeds the check it
 * started from: the state before, the damage found and how it was found. */
typedef struct ih_restore_report {
	ih_report *check;       /* never NULL */
	ih_health state;        /* after the restore */
	char *image_path;
	uint32_t index;
	double seconds;         /* the whole restore, the check included */
	size_t n_repaired;
	ih_repair *repaired;    /* sorted by sha1 */
	size_t n_unrepaired;
	ih_damage *unrepaired;  /* damage left, each with its code (why) */
	size_t n_dropped;
	ih_damage *dropped;     /* damaged blobs no image uses: their blob table
				 * entries were removed, nothing needs them */
	size_t n_problems;
	ih_problem *problems;   /* problems left (those a rewrite cannot fix) */
	size_t n_sources;
	ih_source_report *sources;
	uint64_t bytes_written; /* committed bytes; 0 when nothing was committed */
	int rebuilt;
	int limit_access;       /* the options as the restore ran */
	int no_policy;
	char *policy_local_source_path; /* as read from the hive, or NULL */
	int policy_use_windows_update;  /* -1: not set */
	char *policy_note;              /* why the policy could not be read, or NULL */
	int dry_run;                    /* nothing was written: repaired lists what would
					 * be, from which source; state is the image's as found */
	uint64_t bytes_planned;         /* dry run: bytes the repairs would take */
	/* The default repair server: how many URLs the host configures, and
	 * whether they were barred (1: limit_access, 2: the policy's
	 * UseWindowsUpdate = 2); 0: allowed (then they are among sources). */
	size_t n_default_sources;
	int default_barred;
} ih_restore_report;

int ih_restore_start(ih_session *s, const ih_restore_options *opt, ih_job **out,
		     ih_error *err);
/* Synchronous convenience: start + wait + result. */
int ih_restore(ih_session *s, const ih_restore_options *opt, ih_restore_report **report,
	       ih_error *err);
/* Waits for the job to end, answering each request it makes with fn
 * (NULL: "not found") on this thread, and draining other events. */
void ih_job_wait_answering(ih_job *j, ih_answer_fn fn, void *data);
/* After a restore job is done: its outcome (ih_job_result is for checks). */
int ih_job_restore_result(ih_job *j, ih_restore_report **report, ih_error *err);

/* ---------------------------------------------------------------- open and info as jobs */

/* For hosts that must not block on a large image (an event loop): the
 * work of ih_session_open and ih_session_info on a job's thread, polled,
 * cancelled and released like a check's job.
 *
 * Opens path as ih_session_open does (opt's strings are copied).  Once done,
 * ih_job_session_result hands over the session.  A job cancelled or
 * released before the open ended closes what it opened (the image's lock
 * is let go); an opened session nobody took is closed with the job. */
int ih_session_open_start(const char *path, const ih_open_options *opt, ih_cancel *cancel,
			  ih_job **out, ih_error *err);
int ih_job_session_result(ih_job *j, ih_session **s, ih_error *err);
/* The session's info as ih_session_info gives it (every selected image's
 * metadata read and decoded: progress counts images, a cancel is seen
 * between them), without holding the session from other callers.  A job
 * on the session: it runs beside checks, not during a restore
 * (IH_ERR_BUSY).  The session's own info is filled too. */
int ih_session_info_start(ih_session *s, ih_cancel *cancel, ih_job **out, ih_error *err);
/* Once done: hands over a copy of the info (valid after the session is
 * closed), which the caller frees with ih_wim_info_free. */
int ih_job_info_result(ih_job *j, ih_wim_info **info, ih_error *err);
void ih_wim_info_free(ih_wim_info *info);

/* Records the reference manifest of a tree session, so that later checks
 * need no image: in the file `file` (written atomically, tamper-evident: a
 * SHA-256 over the record), or with file NULL in the state store.  *where
 * (may be NULL) gets the path written (the caller frees it). */
int ih_tree_seal(ih_session *s, const char *file, char **where, ih_error *err);

void ih_report_free(ih_report *r);
void ih_restore_report_free(ih_restore_report *r);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif
