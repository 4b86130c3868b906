/* util.h - small helpers shared by the core: little-endian access, errors,
 * allocation, time. */
#ifndef IH_UTIL_H
#define IH_UTIL_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include "imagehealth.h"

static inline uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}
static inline void put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Sets err (may be NULL) and returns code. */
int ih_fail(ih_error *err, ih_errcode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Maps errno of a failed open/read to a code. */
ih_errcode ih_errno_code(int e);

double ih_now(void); /* monotonic seconds */
double ih_wallclock(void);

void ih_sha1_hex(const uint8_t sha1[20], char out[41]);
int ih_sha1_from_hex(const char *hex, uint8_t sha1[20]);
int ih_is_zero_hash(const uint8_t sha1[20]);

char *ih_strdup(const char *s);
/* Creates and opens a new file named PATH + TAG + six random characters
 * (mkstemp), its name in out.  Returns the fd or -1. */
int ih_mkstemp(const char *path, const char *tag, char *out, size_t outlen);
/* Test hook: when ih_test_nomem_after is set to n > 0, the n-th call of
 * ih_test_nomem() (from then on) returns 1 and the hooked allocation site
 * behaves as if out of memory.  0, the default, never fails: out-of-memory
 * paths are otherwise untestable without interposing malloc. */
extern int ih_test_nomem_after;
int ih_test_nomem(void);

#define IH_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
