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

#endif
