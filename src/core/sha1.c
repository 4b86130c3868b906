/* sha1.c - SHA-1 wrappers.  The digest is fetched once: implicit fetches in
 * every EVP_DigestInit_ex are slow for many small blobs. */
#include <openssl/evp.h>
#include <pthread.h>
#include "sha1.h"

static EVP_MD *sha1_md;
static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;

static void fetch_sha1(void)
{
	sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL);
}

ih_sha1_ctx *ih_sha1_new(void)
{
	pthread_once(&sha1_once, fetch_sha1);
	return EVP_MD_CTX_new();
}

void ih_sha1_free(ih_sha1_ctx *c)
{
	EVP_MD_CTX_free(c);
}

void ih_sha1_init(ih_sha1_ctx *c)
{
	EVP_DigestInit_ex(c, sha1_md ? sha1_md : EVP_sha1(), NULL);
}

void ih_sha1_update(ih_sha1_ctx *c, const void *data, size_t len)
{
	EVP_DigestUpdate(c, data, len);
}

void ih_sha1_final(ih_sha1_ctx *c, uint8_t out[20])
{
	EVP_DigestFinal_ex(c, out, NULL);
}

void ih_sha1(const void *data, size_t len, uint8_t out[20])
{
	ih_sha1_ctx *c = ih_sha1_new();
	ih_sha1_init(c);
	ih_sha1_update(c, data, len);
	ih_sha1_final(c, out);
	ih_sha1_free(c);
}
