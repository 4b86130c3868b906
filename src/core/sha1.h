/* sha1.h - SHA-1 through OpenSSL's libcrypto (it uses the CPU's SHA
 * instructions where present). */
#ifndef IH_SHA1_H
#define IH_SHA1_H

#include <stddef.h>
#include <stdint.h>

typedef struct evp_md_ctx_st ih_sha1_ctx;

ih_sha1_ctx *ih_sha1_new(void);
void ih_sha1_free(ih_sha1_ctx *c);
void ih_sha1_init(ih_sha1_ctx *c);
void ih_sha1_update(ih_sha1_ctx *c, const void *data, size_t len);
void ih_sha1_final(ih_sha1_ctx *c, uint8_t out[20]);
void ih_sha1(const void *data, size_t len, uint8_t out[20]);

#endif
