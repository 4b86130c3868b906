/* main.c - runs the C test suites; `ctest NAME...` runs only those. */
#include <stdio.h>
#include <string.h>
#include "testutil.h"

int t_pass, t_fail;

void test_check(void);
void test_metadata(void);
void test_xmlinfo(void);
void test_wimfmt(void);
void test_restore(void);
void test_pipeline(void);
void test_job(void);
void test_state(void);
void test_bounds(void);
void test_fingerprint(void);
void test_tree(void);
void test_scripted(void);
void test_dismapi(void);
void test_http(void);
void test_session_job(void);

static const struct {
	const char *name;
	void (*fn)(void);
} suites[] = {
	{"wimfmt", test_wimfmt},
	{"metadata", test_metadata},
	{"xmlinfo", test_xmlinfo},
	{"check", test_check},
	{"restore", test_restore},
	{"pipeline", test_pipeline},
	{"job", test_job},
	{"state", test_state},
	{"bounds", test_bounds},
	{"fingerprint", test_fingerprint},
	{"tree", test_tree},
	{"scripted", test_scripted},
	{"dismapi", test_dismapi},
	{"http", test_http},
	{"session_job", test_session_job},
};

int main(int argc, char **argv)
{
	for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
		int run = argc < 2;
		for (int a = 1; a < argc; a++)
			run |= !strcmp(argv[a], suites[i].name);
		if (!run)
			continue;
		int before = t_fail;
		suites[i].fn();
		fprintf(stderr, "ctest: %-10s %s\n", suites[i].name, t_fail == before ? "ok" : "FAILED");
	}
	printf("ctest: %d passed, %d failed\n", t_pass, t_fail);
	return t_fail != 0;
}
