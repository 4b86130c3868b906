/* fuzz_source.c - a restore fed by a hostile source.  The target is a real
 * WIM (IH_FUZZ_TARGET, set by fuzz/run) with one blob damaged; the source
 * is the fuzzer's input.  Whatever the source holds, the restore must not
 * crash, and must never make the image worse: afterwards a full scan says
 * what the restore said, and a healthy verdict is real. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "imagehealth.h"
#include "wimfmt.h"

static uint8_t *damaged;
static size_t damaged_len;
static char dir[64], target[128], source[128], state_dir[128];

static int write_file(const char *path, const uint8_t *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	int ok = write(fd, data, len) == (ssize_t)len;
	close(fd);
	return ok ? 0 : -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *path = getenv("IH_FUZZ_TARGET");
	FILE *f = path ? fopen(path, "rb") : NULL;
	if (!f) {
		fprintf(stderr, "fuzz_source: set IH_FUZZ_TARGET to a WIM file\n");
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	damaged_len = (size_t)ftell(f);
	rewind(f);
	damaged = malloc(damaged_len);
	if (!damaged || fread(damaged, 1, damaged_len, f) != damaged_len)
		exit(2);
	fclose(f);
	/* damage the data of the first non-metadata blob */
	struct wim_header h;
	char why[128];
	if (wimfmt_parse_header(damaged, damaged_len, &h, why, sizeof why))
		exit(2);
	for (uint64_t i = 0; i < h.blob_table.orig_size / BLOB_ENTRY_SIZE; i++) {
		struct wim_blob_entry e;
		wimfmt_get_blob_entry(damaged + h.blob_table.offset + i * BLOB_ENTRY_SIZE, &e);
		if (!(e.res.flags & RESHDR_FLAG_METADATA) && e.res.stored_size > 4) {
			damaged[e.res.offset + e.res.stored_size / 2] ^= 0x5a;
			break;
		}
	}
	snprintf(dir, sizeof dir, "/tmp/ih-fuzz-source-XXXXXX");
	if (!mkdtemp(dir))
		exit(2);
	snprintf(target, sizeof target, "%s/target.wim", dir);
	snprintf(source, sizeof source, "%s/source.wim", dir);
	snprintf(state_dir, sizeof state_dir, "%s/state", dir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ih_session *s;
	ih_error err;
	ih_restore_report *r = NULL;
	ih_report *after = NULL;

	if (write_file(target, damaged, damaged_len) || write_file(source, data, size))
		return 0;
	if (ih_session_open(target, &(ih_open_options){.threads = 1, .state_dir = state_dir}, &s,
			    &err))
		abort(); /* the target itself is a WIM */
	const char *src[] = {source};
	ih_restore_options ro = {.sources = src, .n_sources = 1, .no_policy = 1, .threads = 1,
				 .rebuild = size > 0 && (data[size - 1] & 1)};
	if (ih_restore(s, &ro, &r, &err) == IH_OK) {
		/* the restore's verdict holds up under a full scan */
		if (ih_check(s, &(ih_check_options){.scan = 1, .threads = 1, .no_record = 1}, &after,
			     &err) != IH_OK)
			abort();
		if (after->state != r->state || after->state == IH_NONREPAIRABLE)
			abort();
		ih_report_free(after);
		ih_restore_report_free(r);
	}
	ih_session_close(s);
	return 0;
}
