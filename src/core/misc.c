/* misc.c - time, hex and string helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "util.h"

int ih_test_nomem_after;

int ih_test_nomem(void)
{
	int n = __atomic_load_n(&ih_test_nomem_after, __ATOMIC_RELAXED);
	return n > 0 && __atomic_sub_fetch(&ih_test_nomem_after, 1, __ATOMIC_RELAXED) == 0;
}

double ih_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double ih_wallclock(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void ih_sha1_hex(const uint8_t sha1[20], char out[41])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 20; i++) {
		out[2 * i] = digits[sha1[i] >> 4];
		out[2 * i + 1] = digits[sha1[i] & 15];
	}
	out[40] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int ih_sha1_from_hex(const char *hex, uint8_t sha1[20])
{
	for (int i = 0; i < 20; i++) {
		int hi = hexval(hex[2 * i]), lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		sha1[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int ih_is_zero_hash(const uint8_t sha1[20])
{
	for (int i = 0; i < 20; i++)
		if (sha1[i])
			return 0;
	return 1;
}

char *ih_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

int ih_mkstemp(const char *path, const char *tag, char *out, size_t outlen)
{
	size_t n = (size_t)snprintf(out, outlen, "%s%s", path, tag);
	if (n + 7 > outlen)
		return -1;
	memset(out + n, 'X', 6); /* mkstemp's template */
	out[n + 6] = '\0';
	return mkstemp(out);
}
