/* fuzz_image.c - a whole image file from arbitrary bytes, through opening
 * (header, blob table, solid resources, XML, integrity table), the quick
 * check and a full scan: the paths a damaged file takes. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#include "imagehealth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int fd = memfd_create("fuzz.wim", 0);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	ih_session *s;
	ih_error err;
	ih_open_options o = {.threads = 1, .state_dir = "/nonexistent/imagehealth-fuzz"};
	if (ih_session_open(path, &o, &s, &err) == IH_OK) {
		const ih_wim_info *info;
		ih_report *r = NULL;
		ih_session_info(s, &info, &err);
		if (ih_check(s, &(ih_check_options){.scan = 1, .threads = 1, .no_record = 1}, &r,
			     &err) == IH_OK)
			ih_report_free(r);
		ih_session_close(s);
	}
	close(fd);
	return 0;
}
