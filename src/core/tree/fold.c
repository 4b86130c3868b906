/* fold.c - the keys names are compared by in a case-insensitive tree.
 * NTFS compares names by upcasing each UTF-16 code unit through its
 * $UpCase table: a simple (one to one) uppercase mapping of the Basic
 * Multilingual Plane, leaving characters outside it alone.  We do the same
 * with the C library's simple uppercase mapping in the C.UTF-8 locale
 * (towupper_l: deterministic for a given C library, and independent of the
 * caller's locale), with NTFS's exceptions: a code unit is only mapped
 * within the BMP and never from outside ASCII into it (U+0131 dotless i
 * and U+017F long s keep their own names, as on NTFS).  Bytes that are not
 * well-formed UTF-8 (a name holding an unpaired surrogate) are kept as
 * they are.  Without a C.UTF-8 locale only ASCII letters fold. */
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>
#include "tree.h"

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void utf8_init(void)
{
	utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static uint32_t upcase(uint32_t c)
{
	if (c < 0x80)
		return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
	if (!utf8_locale || c > 0xFFFF)
		return c;
	uint32_t u = (uint32_t)towupper_l((wint_t)c, utf8_locale);
	return u < 0x80 || u > 0xFFFF || (u >= 0xD800 && u <= 0xDFFF) ? c : u;
}

/* The code point at s (n bytes long), its length in *len; or -1 when s
 * does not start with a well-formed sequence. */
static int32_t decode(const unsigned char *s, size_t n, size_t *len)
{
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
	size_t k = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3
		 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
	if (!k || k > n)
		return -1;
	uint32_t c = k == 1 ? s[0] : s[0] & (0x7F >> k);
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return -1;
		c = c << 6 | (s[i] & 0x3F);
	}
	if (c < min[k] || c > 0x10FFFF)
		return -1;
	*len = k;
	return (int32_t)c;
}

static size_t encode(uint32_t c, char *out)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xC0 | c >> 6);
		out[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	}
	out[0] = (char)(0xE0 | c >> 12); /* upcase keeps code points in the BMP */
	out[1] = (char)(0x80 | (c >> 6 & 0x3F));
	out[2] = (char)(0x80 | (c & 0x3F));
	return 3;
}

char *manifest_key(const char *path, int ci)
{
	size_t n = strlen(path);
	/* An upcased character takes at most 1.5 times its bytes (2 -> 3). */
	char *out = malloc(ci ? n + n / 2 + 1 : n + 1), *o = out;
	if (!out || !ci) {
		if (out)
			memcpy(out, path, n + 1);
		return out;
	}
	pthread_once(&utf8_once, utf8_init);
	const unsigned char *s = (const unsigned char *)path;
	for (size_t i = 0, len; i < n; i += len) {
		int32_t c = decode(s + i, n - i, &len);
		if (c < 0 || c > 0xFFFF) {
			len = c < 0 ? 1 : len;
			memcpy(o, s + i, len);
			o += len;
			continue;
		}
		o += encode(upcase((uint32_t)c), o);
	}
	*o = '\0';
	return out;
}
