/* fingerprint.c - fingerprints of raw bytes and hashes of raw structures
 * (see fingerprint.h). */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "fingerprint.h"
#include "util.h"

uint32_t ih_test_fp_chunk;
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

EVP_MD_CTX *fp_md_new(void)
{
	pthread_once(&sha256_once, fetch_sha256);
	return EVP_MD_CTX_new();
}

void fp_md_free(EVP_MD_CTX *md)
{
	EVP_MD_CTX_free(md);
}

static void md_init(EVP_MD_CTX *md)
{
	EVP_DigestInit_ex(md, sha256_md ? sha256_md : EVP_sha256(), NULL);
}

uint64_t fp_nchunks(uint64_t size, uint32_t chunk)
{
	return size / chunk + (size % chunk != 0);
}

int fp_set_alloc(struct fp_set *f, const struct wim *w, uint32_t chunk)
{
	uint64_t n = 0;
	memset(f, 0, sizeof *f);
	f->chunk = chunk;
	f->nparts = w->nparts;
	f->first = malloc((w->nparts + 1u) * sizeof *f->first);
	if (!f->first)
		return -1;
	for (unsigned k = 0; k < w->nparts; k++) {
		f->first[k] = n;
		n += fp_nchunks(w->parts[k].size, chunk);
	}
	f->first[w->nparts] = n;
	f->fp = calloc(n + 1, FP_LEN);
	if (!f->fp) {
		fp_set_free(f);
		return -1;
	}
	return 0;
}

void fp_set_free(struct fp_set *f)
{
	free(f->first);
	free(f->fp);
	memset(f, 0, sizeof *f);
}

void fp_layout_hash(const struct wim *w, uint8_t out[FP_LEN])
{
	EVP_MD_CTX *md = fp_md_new();
	uint8_t n[8];
	if (!md) {
		memset(out, 0, FP_LEN); /* matches no record (a record never holds zeros) */
		return;
	}
	md_init(md);
	put_le64(n, w->nparts);
	EVP_DigestUpdate(md, n, sizeof n);
	for (unsigned k = 0; k < w->nparts; k++) {
		const struct wim_part *p = &w->parts[k];
		uint64_t len = p->blob_table ? p->hdr.blob_table.stored_size : 0;
		EVP_DigestUpdate(md, p->raw_header, WIM_HEADER_SIZE);
		put_le64(n, len); /* lengths: no two layouts hash alike by shifting */
		EVP_DigestUpdate(md, n, sizeof n);
		if (len)
			EVP_DigestUpdate(md, p->blob_table, (size_t)len);
	}
	EVP_DigestFinal_ex(md, out, NULL);
	fp_md_free(md);
}

int fp_hash_range(const struct wim *w, uint16_t part, uint64_t off, uint64_t end,
		  uint8_t *buf, size_t buflen, EVP_MD_CTX *md, uint8_t out[FP_LEN])
{
	md_init(md);
	while (off < end) {
		size_t n = end - off < buflen ? (size_t)(end - off) : buflen;
		if (wim_pread(w, part, buf, n, off))
			return -1;
		EVP_DigestUpdate(md, buf, n);
		off += n;
	}
	EVP_DigestFinal_ex(md, out, NULL);
	return 0;
}

int fp_metadata_hash(const struct wim *w, uint32_t image, uint8_t out[FP_LEN])
{
	const struct wim_blob *b = wim_image_metadata(w, image);
	size_t buflen = 1u << 20;
	uint8_t *buf;
	EVP_MD_CTX *md;
	int rc;
	if (!b || b->bad || b->solid >= 0)
		return -1;
	buf = malloc(buflen);
	md = fp_md_new();
	rc = buf && md ? fp_hash_range(w, b->part, b->offset, b->offset + b->stored_size, buf,
				       buflen, md, out)
		       : -1;
	free(buf);
	fp_md_free(md);
	return rc;
}

struct raw_job {
	const struct wim *w;
	uint32_t first, n;
	uint8_t *layout, (*meta)[FP_LEN], *have;
	atomic_uint next;
};

static void *raw_worker(void *arg)
{
	struct raw_job *j = arg;
	for (uint32_t t; (t = atomic_fetch_add(&j->next, 1)) <= j->n;) {
		if (t == 0)
			fp_layout_hash(j->w, j->layout);
		else
			j->have[t - 1] = fp_metadata_hash(j->w, j->first + t - 1, j->meta[t - 1]) == 0;
	}
	return NULL;
}

void fp_raw_hashes(const struct wim *w, uint32_t first, uint32_t last, int threads,
		   uint8_t layout[FP_LEN], uint8_t (*meta)[FP_LEN], uint8_t *have)
{
	struct raw_job j = {.w = w, .first = first, .n = last >= first ? last - first + 1 : 0,
			    .layout = layout, .meta = meta, .have = have};
	pthread_t tid[8];
	int started = 0;
	atomic_init(&j.next, 0);
	for (int t = 1; t < threads && t < 8 && (uint32_t)t <= j.n; t++)
		started += pthread_create(&tid[started], NULL, raw_worker, &j) == 0;
	raw_worker(&j);
	for (int t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
}

void fp_record_free(struct fp_record *r)
{
	fp_set_free(&r->fps);
	free(r->dmg);
	free(r->bad);
	memset(r, 0, sizeof *r);
}
