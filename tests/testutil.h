/* testutil.h - the C test harness: counting checks, naming failures. */
#ifndef IH_TESTUTIL_H
#define IH_TESTUTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

extern int t_pass, t_fail;

#define CHECK_MSG(cond, msg)                                                         \
	do {                                                                         \
		if (cond) {                                                          \
			t_pass++;                                                    \
		} else {                                                             \
			t_fail++;                                                    \
			fprintf(stderr, "FAIL %s:%d: %s (%s)\n", __FILE__, __LINE__, \
				#cond, (msg));                                       \
		}                                                                    \
	} while (0)
#define CHECK(cond) CHECK_MSG(cond, "")
#define CHECK_EQ_INT(a, b)                                                                 \
	do {                                                                               \
		long long a_ = (long long)(a), b_ = (long long)(b);                        \
		if (a_ == b_) {                                                            \
			t_pass++;                                                          \
		} else {                                                                   \
			t_fail++;                                                          \
			fprintf(stderr, "FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, \
				__LINE__, #a, #b, a_, b_);                                 \
		}                                                                          \
	} while (0)
#define CHECK_STR(a, b)                                                                    \
	do {                                                                               \
		const char *a_ = (a), *b_ = (b);                                           \
		if (a_ && b_ && !strcmp(a_, b_)) {                                         \
			t_pass++;                                                          \
		} else {                                                                   \
			t_fail++;                                                          \
			fprintf(stderr, "FAIL %s:%d: %s == %s (\"%s\" != \"%s\")\n", __FILE__, \
				__LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");  \
		}                                                                          \
	} while (0)

#endif
