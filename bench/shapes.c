/* bench/shapes.c - the hostile shapes of issue 8 at full size: builds one,
 * opens it, runs the quick check (or a scan) and prints time and peak RSS.
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Isrc/core -Itests bench/shapes.c \
 *      tests/wimgen.c build/libimagehealth.a -lwim -lcrypto -lhivex -lpthread -o build/shapes
 *   build/shapes nested|nested1|solid|norun|flood|overlap|meta|problems [scan]
 *
 * SHAPE_OUT=FILE keeps the image built (to run the CLI on it, e.g.
 * `/usr/bin/time -f %M bin/imagehealth check FILE --json`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "imagehealth.h"
#include "wimgen.h"

int main(int argc, char **argv)
{
	struct wimgen g;
	const char *shape = argc > 1 ? argv[1] : "";
	int scan = argc > 2 && !strcmp(argv[2], "scan");
	char path[] = "/tmp/ihshapeXXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return 2;
	close(fd);
	if (!strcmp(shape, "nested"))
		wimgen_nested(&g, 4000, 60, 0);
	else if (!strcmp(shape, "nested1"))
		wimgen_nested(&g, 4000, 60, 1);
	else if (!strcmp(shape, "solid"))
		wimgen_solid_shared(&g, 1000, 262144);
	else if (!strcmp(shape, "norun"))
		wimgen_solid_norun(&g, 80000);
	else if (!strcmp(shape, "flood"))
		wimgen_sha1_flood(&g, 200000);
	else if (!strcmp(shape, "overlap"))
		wimgen_overlap(&g, 3000, 8u << 20);
	else if (!strcmp(shape, "meta"))
		wimgen_meta_shared(&g, 300, 4u << 20);
	else if (!strcmp(shape, "problems"))
		wimgen_corrupt_entries(&g, 640000);
	else {
		fprintf(stderr, "usage: shapes nested|nested1|solid|norun|flood|overlap|meta|problems [scan]\n");
		return 2;
	}
	wimgen_write(&g, path);
	size_t flen = g.len;
	wimgen_free(&g);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ih_session *s;
	ih_error err = {0};
	ih_open_options o = {.threads = 2, .state_dir = "/nonexistent/ih-bench"};
	int rc = ih_session_open(path, &o, &s, &err);
	ih_report *r = NULL;
	if (rc == IH_OK) {
		const ih_wim_info *info;
		ih_session_info(s, &info, &err);
		rc = ih_check(s, &(ih_check_options){.scan = scan, .no_record = 1}, &r, &err);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	size_t paths = 0, omitted = 0;
	for (size_t i = 0; r && i < r->n_damage; i++) {
		paths += r->damage[i].n_refs;
#ifndef IH_BEFORE_BOUNDS /* for measuring a build from before the bounds */
		omitted += r->damage[i].n_refs_omitted;
#endif
	}
	printf("%s%s: file %.2f MB, rc %d%s%s, %.2f s, peak RSS %ld MB, damage %zu, problems %zu, "
	       "paths kept %zu, omitted %zu, bytes checked %llu\n",
	       shape, scan ? " (scan)" : "", flen / 1e6, rc, rc ? " " : "", rc ? err.message : "",
	       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, ru.ru_maxrss / 1024,
	       r ? r->n_damage : 0, r ? r->n_problems : 0, paths, omitted,
	       r ? (unsigned long long)r->bytes_checked : 0ULL);
	if (r && r->n_problems)
		printf("  last problem: %s\n", r->problems[r->n_problems - 1].message);
	ih_report_free(r);
	if (rc == IH_OK)
		ih_session_close(s);
	/* SHAPE_OUT=FILE keeps the image, e.g. to time the CLI on it */
	const char *keep = getenv("SHAPE_OUT");
	if (!keep || rename(path, keep))
		unlink(path);
	return 0;
}
