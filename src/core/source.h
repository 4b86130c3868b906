/* source.h - where repair bytes come from: another WIM/ESD/SWM, or a
 * directory holding an extracted or mounted image.  Sources are untrusted:
 * every byte is SHA-1 checked before the repair uses it. */
#ifndef IH_SOURCE_H
#define IH_SOURCE_H

#include <stdatomic.h>
#include "blobindex.h"
#include "imagehealth.h"
#include "reader.h"
#include "wim.h"
#include "writer.h"

struct source {
	ih_source_report *rep;
	struct wim *w;               /* WIM sources */
	struct ih_blobindex allowed; /* with an INDEX: the blobs that image uses */
	int narrowed;
	char *dir;                   /* directory sources */
	struct ih_reader rd;
};

/* Parses spec ("wim:PATH[:INDEX]", "esd:PATH[:INDEX]", a .wim/.esd/.swm
 * path, or a directory) and opens it.  Never fails: an unusable source is
 * kept, with rep->error saying why. */
void source_open(struct source *src, ih_source_report *rep, const char *spec,
		 ih_source_origin origin);
void source_close(struct source *src);

/* What a supplied blob looks like once written. */
struct supplied {
	struct wim_reshdr res;
	int raw_copy;
};

/* Tries to supply the blob (sha1, size; size 0 if unknown) through wr,
 * trying the given image paths for directory sources; bytes read count in
 * the job's progress (job may be NULL).  Returns 1 when written and
 * verified, 0 when this source cannot (nothing kept), -1 when writing
 * failed (wr->err) or cancel was set. */
int source_supply(struct source *src, const uint8_t sha1[20], uint64_t size,
		  const ih_ref *refs, size_t n_refs, struct writer *wr,
		  const atomic_int *cancel, ih_job *job,
		  struct supplied *out);

/* The local path of a source spec (malloc'd), its INDEX or 0, and whether
 * it was written wim:/esd:. */
char *source_spec_path(const char *spec, uint32_t *index, int *wim_prefix);
/* Splits "PATH:INDEX" (INDEX all digits) in place; returns the index or 0. */
uint32_t source_split_index(char *path);

#endif
