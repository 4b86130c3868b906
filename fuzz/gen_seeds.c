/* gen_seeds.c - writes the hostile shapes of issue 8 (tests/wimgen.c), at
 * sizes under the fuzzers' max_len, into a seed directory: the fuzzer
 * starts from the shapes that once cost minutes or gigabytes, so that the
 * next such shape is found by it rather than by a user.
 *
 *   gen_seeds DIR */
#include <stdio.h>
#include "wimgen.h"

int main(int argc, char **argv)
{
	struct wimgen g;
	char path[4096];
	int rc = 0;
	if (argc != 2) {
		fprintf(stderr, "usage: gen_seeds DIR\n");
		return 2;
	}
#define SEED(name, call)                                                    \
	do {                                                                \
		call;                                                       \
		snprintf(path, sizeof path, "%s/%s", argv[1], name);        \
		rc |= wimgen_write(&g, path);                               \
		wimgen_free(&g);                                            \
	} while (0)
	SEED("gen-nested.wim", wimgen_nested(&g, 150, 60, 0));
	SEED("gen-nested-one-blob.wim", wimgen_nested(&g, 150, 60, 1));
	SEED("gen-solid-shared.wim", wimgen_solid_shared(&g, 60, 4096));
	SEED("gen-solid-norun.wim", wimgen_solid_norun(&g, 1000));
	SEED("gen-sha1-flood.wim", wimgen_sha1_flood(&g, 1000));
	SEED("gen-overlap.wim", wimgen_overlap(&g, 100, 8192));
	SEED("gen-meta-shared.wim", wimgen_meta_shared(&g, 40, 8192));
	SEED("gen-corrupt-entries.wim", wimgen_corrupt_entries(&g, 1000));
	return rc ? 1 : 0;
}
