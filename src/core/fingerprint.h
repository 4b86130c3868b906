/* fingerprint.h - fingerprints of a file's raw bytes (SHA-256 of every
 * FP_CHUNK bytes of every part), hashes of the raw structures a record
 * vouches for, and what a whole-file full scan found, as its fingerprint
 * record keeps it.  A record is a cache, never a proof: fingerprints only
 * say which bytes are the very bytes a full scan read then; whatever cannot
 * be shown to be those is scanned again. */
#ifndef IH_FINGERPRINT_H
#define IH_FINGERPRINT_H

#include <stdint.h>
#include "imagehealth.h"
#include "wim.h"

#define FP_CHUNK (4u << 20)
#define FP_LEN 32
/* Test hook: when set, new fingerprints use chunks of this many bytes (so
 * that a small test image has many of them). */
extern uint32_t ih_test_fp_chunk;

struct evp_md_ctx_st;

/* Fingerprints of every part of a file, chunk by chunk, parts in order. */
struct fp_set {
	uint32_t chunk;
	uint16_t nparts;
	uint64_t *first;         /* nparts + 1 entries: part k's first chunk */
	uint8_t (*fp)[FP_LEN];
};

uint64_t fp_nchunks(uint64_t size, uint32_t chunk);
/* Room for the fingerprints of w's parts as they are now.  0 or -1. */
int fp_set_alloc(struct fp_set *f, const struct wim *w, uint32_t chunk);
void fp_set_free(struct fp_set *f);

/* SHA-256 of every part's raw header and raw blob table as read when the
 * file was opened (what every blob entry, solid layout and image count
 * comes from). */
void fp_layout_hash(const struct wim *w, uint8_t out[FP_LEN]);
/* SHA-256 of bytes [off, end) of a part, read through buf.  0, or -1
 * (errno set; 0 when the file ends early). */
int fp_hash_range(const struct wim *w, uint16_t part, uint64_t off, uint64_t end,
		  uint8_t *buf, size_t buflen, struct evp_md_ctx_st *md, uint8_t out[FP_LEN]);
/* SHA-256 of the raw stored bytes of image's metadata resource.  0, or -1
 * when it has none usable or they cannot be read. */
int fp_metadata_hash(const struct wim *w, uint32_t image, uint8_t out[FP_LEN]);
/* fp_layout_hash, and fp_metadata_hash of images first..last into
 * meta[i - first] (have[i - first]: it has one), on up to `threads`
 * threads (the calling one included): all a quick check from a record
 * reads of the file. */
void fp_raw_hashes(const struct wim *w, uint32_t first, uint32_t last, int threads,
		   uint8_t layout[FP_LEN], uint8_t (*meta)[FP_LEN], uint8_t *have);
struct evp_md_ctx_st *fp_md_new(void);
void fp_md_free(struct evp_md_ctx_st *md);

struct fp_bad_int {
	uint16_t part;
	uint32_t entry;
};

/* What a full scan of every blob of a file found, with the fingerprints of
 * the bytes it read. */
struct fp_record {
	double scanned_at;
	uint8_t layout[FP_LEN];
	struct fp_set fps;
	struct fp_damage {
		uint8_t sha1[20];
		ih_reason reason;
		char detail[160];
	} *dmg;
	size_t ndmg;
	struct fp_bad_int *bad;  /* integrity chunks that did not match */
	size_t nbad;
};
void fp_record_free(struct fp_record *r);

#endif
