/* wimtest.h - what the C suites share: running commands, and finding and
 * damaging blob table entries of a WIM on disk (read with the project's
 * format parsers, which tests/test_wimfmt.c checks on their own). */
#ifndef IH_WIMTEST_H
#define IH_WIMTEST_H

#include <stdint.h>
#include "wimfmt.h"

/* system() on a formatted command; returns its status. */
int tsh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The entry of the blob whose SHA-1 is that of the file `file` (found with
 * sha1sum), or the first metadata entry when file is NULL.  0 or -1. */
int twim_entry(const char *wim, const char *file, struct wim_blob_entry *out);

/* XORs n bytes at off with 0xff. */
void tflip(const char *path, uint64_t off, int n);

/* Flips bytes in the middle of the resource of that file's blob (for a solid
 * blob, inside its solid resource's data). */
int tdamage(const char *wim, const char *file);

/* Damages chunk `chunk` of the image's solid resource (there must be exactly
 * one) at the start of its compressed data, the place computed from the
 * file's own blob table and the resource's chunk table.  Fills want with
 * (UINT32_MAX: the compressed chunk most blobs overlap).  Fills want with
 * the SHA-1s of every blob whose uncompressed range overlaps that chunk
 * (all of them are lost with it) and *n with their count, at most max.
 * 0, or -1 if the layout is not as expected (the chunk stored raw, say). */
int tdamage_solid_chunk(const char *wim, uint32_t chunk, uint8_t (*want)[20], size_t max,
			size_t *n);

/* dir/big (8 files of 2 MB of base64 text, big/f0.txt .. f7.txt) and
 * dir/big.wim (LZX): big enough that a scan or a restore from dir/big
 * (compressed anew) runs long enough to be cancelled while it runs. */
int tbig_image(const char *dir);

/* Waits until job j is in phase and has done some bytes, then cancels it
 * (through tok if given, else ih_job_cancel) and waits for its end.
 * Returns 1 if it was cancelled while still running, 0 if it ended first. */
struct ih_job;
struct ih_cancel;
int tcancel_running(struct ih_job *j, int phase, struct ih_cancel *tok);

#endif
