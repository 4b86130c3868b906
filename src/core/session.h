/* session.h - the session object and what the check modules share. */
#ifndef IH_SESSION_H
#define IH_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include "imagehealth.h"
#include "blobindex.h"
#include "job.h"
#include "reader.h"
#include "wim.h"
#include "metadata.h"
#include "fingerprint.h"

struct ih_session {
	struct wim *w;
	char *state_dir;
	int threads;
	uint32_t index;          /* 0: all images */
	pthread_mutex_t mu;
	ih_wim_info info;
	int info_ready;
	atomic_int refs;         /* the caller's handle plus running jobs */
	int active_jobs;         /* under mu: checks running */
	int restoring;           /* under mu: a restore is running */
	int lock_fd;             /* holds the shared lock */
	int lock_mode;           /* under the restore's exclusivity: LOCK_SH, LOCK_EX or 0 */
	const char *state_note;  /* static text: why there is no state directory */
	struct tree *tree;       /* a session on an applied tree (src/core/tree/), or NULL */
};

/* The image lock across processes: every session holds it shared, a
 * restore exclusive.  On Linux a failed flock upgrade drops the shared
 * lock; this takes it back, so the session keeps excluding other restores.
 * Returns IH_OK, or IH_ERR_BUSY (err set, also saying if the shared lock
 * could not be taken back). */
int ih_session_lock_exclusive(ih_session *s, ih_error *err);
/* Back to shared after a restore. */
void ih_session_lock_shared(ih_session *s);

void ih_session_ref(ih_session *s);
/* Jobs on one session: checks run side by side, a restore runs alone.
 * Returns IH_OK, or IH_ERR_BUSY (err set). */
int ih_session_begin_job(ih_session *s, int exclusive, ih_error *err);
void ih_session_end_job(ih_session *s, int exclusive);
/* Starts fn(arg) on a job of session s.  arg already holds a reference to
 * s and to cancel, which free_arg drops; on failure arg is freed here.  The
 * job's fn must call ih_session_end_job(s, exclusive) when it ends. */
int ih_session_start_job(ih_session *s, int exclusive, ih_job_fn fn, void *arg,
			 void (*free_arg)(void *), ih_cancel *cancel, ih_job **out, ih_error *err);
void ih_session_unref(ih_session *s);
/* The info of s built on job j's thread (progress per image, cancel between
 * images) and the session's cache filled; *out a copy the caller frees. */
int session_info_job(ih_job *j, ih_session *s, ih_wim_info **out, ih_error *err);
/* First and last selected image (1-based). */
uint32_t ih_session_first(const ih_session *s);
uint32_t ih_session_last(const ih_session *s);

/* One image's metadata resource, read and SHA-1 checked. */
struct image_meta {
	uint32_t image;
	int ok;
	ih_reason reason;
	char detail[160];
	uint8_t *buf;
	size_t len;
	ih_meta_stats stats;
};

int image_meta_read(const struct wim *w, struct ih_reader *r, uint32_t image,
		    struct image_meta *m, ih_error *err);
/* For tests: how many times image_meta_read ran (trees read and decoded). */
extern atomic_uint ih_test_tree_reads;
void image_meta_free(struct image_meta *m);

/* Damage found so far; thread-safe adds, one entry per SHA-1. */
struct damage_set {
	pthread_mutex_t mu;
	ih_damage *v;
	size_t n, cap;
	struct ih_blobindex idx;
	size_t walked;           /* entries [0, walked) have their refs already */
	size_t ref_bytes;        /* paths kept, with their overhead */
	int oom;                 /* something was lost: damage_to_report fails */
	int threads;             /* for decoding metadata again (damage_to_report) */
};

int damage_set_init(struct damage_set *d);
/* Frees what one damage entry owns (its refs, images and tries). */
void damage_free(ih_damage *dm);
/* Frees a list of tries (a restore report's) and their reasons. */
void tries_free(ih_try *v, size_t n);
/* A copy of v[0..n) into *out (NULL when n is 0).  0, or -1 (no memory). */
int tries_copy(ih_try **out, size_t *nout, const ih_try *v, size_t n);
void damage_set_free(struct damage_set *d);
/* Adds unless the SHA-1 is already there; returns the entry or NULL. */
ih_damage *damage_add(struct damage_set *d, const struct wim *w, const uint8_t sha1[20],
		      const struct wim_blob *b, ih_reason reason, const char *detail);
/* Notes that `path` of `image` uses sha1, if it is damaged (while walking
 * the metadata for other reasons: saves a second walk).  0, or -1 (ENOMEM). */
int damage_note_ref(struct damage_set *d, uint32_t image, const uint8_t sha1[20],
		    const char *path);
/* Attaches to entries [from, to) the paths from the selected images'
 * metadata (those read ok; a freed tree is read again, one at a time),
 * each entry's refs then sorted as a report gives them; or, when `known`
 * (may be NULL: damage recalled from records of these very trees) holds
 * every entry that can have paths, its refs, and no tree is read.
 * Entries may be added meanwhile.  stop (may be NULL) ends the walk early.
 * IH_OK, IH_ERR_NOMEM or IH_ERR_IO. */
int damage_walk_refs(struct damage_set *d, const struct wim *w, const struct image_meta *metas,
		     size_t nmetas, size_t from, size_t to, const struct damage_set *known,
		     const atomic_int *stop);
/* Whether every entry's paths are all there (no cap reached, recalled
 * ones included: a record keeps no count of those it left out). */
int damage_refs_complete(const struct damage_set *d);
/* Sorts, attaches the paths from the images' metadata (walking it again
 * only for entries added after `walked`; a tree whose buffer was freed
 * after its first walk is read again, one at a time), moves into report. */
int damage_to_report(struct damage_set *d, const struct wim *w, struct image_meta *metas,
		     size_t nmetas, ih_report *r);

/* The state store. */
struct state_recall {
	ih_health state;
	double scanned_at;
	const char *note;  /* static text: why a record there was not used, or NULL */
	uint8_t layout[FP_LEN];  /* raw headers and blob tables when recorded */
	uint8_t metaraw[FP_LEN]; /* the image's raw metadata resource then */
	int have_metaraw;
};
/* Adds what the record of (file, image) holds to d and pl, if there is a
 * trustworthy record of this very file (GUID, sizes, mtimes) whose
 * checksum matches and that parses whole; with_refs also its paths.
 * Returns IH_OK, IH_ERR_NOMEM, or STATE_NO_RECORD (nothing added). */
#define STATE_NO_RECORD (-1)
int state_recall(const ih_session *s, uint32_t image, int with_refs, struct damage_set *d,
		 struct problem_list *pl, struct state_recall *out);
/* Records a report for each image of the session (per image: the damage
 * that hits it, with its paths there, and blobs no image uses).  A failed
 * record costs only the memory of it: callers may ignore the result.
 * state_save_report_note also sets *note to static text when the state
 * directory is not one we may keep records in. */
int state_save_report(const ih_session *s, const ih_report *r);
/* The state directory, if records may live there (see statestore.c): an
 * fd, or -1 with *note (may stay NULL) saying why not. */
int state_dir_open(const ih_session *s, int create, const char **note);
int state_save_report_note(const ih_session *s, const ih_report *r, const char **note);
/* The file's fingerprint record (what the last full scan of all its blobs
 * found, and the fingerprints of the bytes it read), if there is a
 * trustworthy one whose sizes match the file: IH_OK, IH_ERR_NOMEM, or
 * STATE_NO_RECORD (*note may say why).  The caller compares the layout. */
int state_fp_load(const ih_session *s, struct fp_record *rec, const char **note);
int state_fp_save(const ih_session *s, const struct fp_record *rec);

/* The health check itself, run on the caller's job thread. */
/* A report made from the records alone, when every selected image has one:
 * returns IH_OK with *out, CHECK_NO_RECORD when some image has none, or
 * IH_ERR_NOMEM. */
#define CHECK_NO_RECORD (-1)
int check_from_records(ih_session *s, ih_report **out);
int check_run(ih_session *s, ih_job *j, const ih_check_options *opt, ih_report **out,
	      ih_error *err);

/* How a full scan runs, and what it did. */
struct scan_opts {
	ih_scan_kind mode;          /* DEEP, FINGERPRINT (rec set) or INTEGRITY */
	const struct fp_record *rec;
	struct fp_set *fp_out;      /* fingerprints to compute now, or NULL (FINGERPRINT: required) */
	uint64_t bytes_deep;        /* out: blob bytes decompressed and hashed */
	uint64_t bytes_fp;          /* out: raw bytes hashed for fingerprints */
	uint64_t bytes_checked;     /* out: blob bytes verified (read now or proven
				     * unchanged) and integrity chunk bytes */
	struct fp_bad_int *bad_int; /* out: integrity chunks that did not match (caller frees) */
	size_t nbad_int;
	/* the selected images' trees (as the report will walk them): the
	 * paths damage events carry */
	const struct image_meta *metas;
	size_t nmetas;
	const struct damage_set *known; /* paths recalled from the records, or NULL */
};
/* Full scan: every blob whose want[i] is set (want NULL: all) is read, or
 * proven unchanged since the record; adds damage. */
int scan_blobs(ih_session *s, ih_job *j, int threads, const uint8_t *want,
	       struct scan_opts *so, struct damage_set *d, struct problem_list *problems,
	       ih_error *err);
/* Whether scan_blobs reads blob i when nothing limits it. */
int scan_candidate(const struct wim *w, size_t i);

#endif
