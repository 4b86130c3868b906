/* fuzz_xml.c - the WIM XML reader on arbitrary bytes: no crash, hang or
 * leak, and every string it returns is valid UTF-8. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "xmlinfo.h"

#define IMAGES 3

static int valid_utf8(const unsigned char *p)
{
	while (*p) {
		unsigned n = *p < 0x80 ? 0 : *p >= 0xC2 && *p < 0xE0 ? 1 : *p >= 0xE0 && *p < 0xF0 ? 2
			   : *p >= 0xF0 && *p < 0xF5 ? 3 : 9;
		if (n == 9)
			return 0;
		for (unsigned i = 1; i <= n; i++)
			if ((p[i] & 0xC0) != 0x80)
				return 0;
		if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0) ||
		    (p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] >= 0x90))
			return 0; /* overlong, surrogate, or past U+10FFFF */
		p += n + 1;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *names[IMAGES], *descs[IMAGES];
	uint64_t bytes[IMAGES];
	int r = ih_xml_read_images(data, size, IMAGES, names, descs, bytes);
	if (r != 0 && r != -1 && r != -2)
		abort();
	for (int i = 0; i < IMAGES; i++) {
		if (r == -2) {
			if (names[i] || descs[i])
				abort();
			continue;
		}
		if (!names[i] || !descs[i] || !valid_utf8((const unsigned char *)names[i]) ||
		    !valid_utf8((const unsigned char *)descs[i]))
			abort();
		free(names[i]);
		free(descs[i]);
	}
	return 0;
}
