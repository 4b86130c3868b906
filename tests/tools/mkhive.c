/* mkhive - writes a registry hive holding the servicing policy, for tests.
 * hivex edits hives but cannot create one, so this lays out the smallest
 * valid hive by hand (a base block, one hbin page with the root key and its
 * security record), then adds the keys and values with hivex.
 * usage: mkhive OUT [LocalSourcePath [UseWindowsUpdate]] */
#include <hivex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static int write_empty_hive(const char *path)
{
	static uint8_t h[8192];
	uint8_t *bin = h + 4096, *nk = bin + 0x20, *sk = bin + 0x78;
	uint32_t sum = 0;

	memcpy(h, "regf", 4);
	le32(h + 0x04, 1);      /* sequence numbers, equal: the hive is clean */
	le32(h + 0x08, 1);
	le32(h + 0x14, 1);      /* version 1.3 */
	le32(h + 0x18, 3);
	le32(h + 0x1C, 0);      /* primary file */
	le32(h + 0x20, 1);      /* direct memory load format */
	le32(h + 0x24, 0x20);   /* root key, relative to the first hbin */
	le32(h + 0x28, 4096);   /* size of the hbins */
	le32(h + 0x2C, 1);
	for (int i = 0; i < 0x1FC; i += 4)
		sum ^= (uint32_t)h[i] | (uint32_t)h[i + 1] << 8 | (uint32_t)h[i + 2] << 16 |
		       (uint32_t)h[i + 3] << 24;
	le32(h + 0x1FC, sum);

	memcpy(bin, "hbin", 4);
	le32(bin + 4, 0);       /* offset of this page */
	le32(bin + 8, 4096);    /* its size */

	le32(nk, (uint32_t)-88); /* allocated cell of 88 bytes */
	memcpy(nk + 4, "nk", 2);
	le16(nk + 6, 0x2C);     /* root (hive entry), no delete, ASCII name */
	le32(nk + 28, 0xFFFFFFFF); /* no subkeys */
	le32(nk + 32, 0xFFFFFFFF);
	le32(nk + 44, 0xFFFFFFFF); /* no values */
	le32(nk + 48, 0x78);    /* security record */
	le32(nk + 52, 0xFFFFFFFF); /* no class name */
	le16(nk + 76, 4);
	memcpy(nk + 80, "ROOT", 4);

	le32(sk, (uint32_t)-48);
	memcpy(sk + 4, "sk", 2);
	le32(sk + 8, 0x78);     /* a list of one */
	le32(sk + 12, 0x78);
	le32(sk + 16, 1);       /* reference count */
	le32(sk + 20, 20);      /* an empty self-relative security descriptor */
	sk[24] = 1;
	le16(sk + 26, 0x8000);

	le32(bin + 0xA8, 4096 - 0xA8); /* the rest is one free cell */

	FILE *f = fopen(path, "wb");
	if (!f || fwrite(h, 1, sizeof h, f) != sizeof h || fclose(f))
		return -1;
	return 0;
}

static hive_node_h child(hive_h *h, hive_node_h parent, const char *name)
{
	hive_node_h n = hivex_node_get_child(h, parent, name);
	return n ? n : hivex_node_add_child(h, parent, name);
}

/* UTF-16LE with a terminating NUL, as REG_SZ data is stored. */
static char *utf16(const char *s, size_t *len)
{
	size_t n = strlen(s);
	char *o = calloc(2 * n + 2, 1);
	for (size_t i = 0; o && i < n; i++)
		o[2 * i] = s[i];
	*len = 2 * n + 2;
	return o;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s OUT [LocalSourcePath [UseWindowsUpdate]]\n", argv[0]);
		return 2;
	}
	if (write_empty_hive(argv[1])) {
		perror(argv[1]);
		return 1;
	}
	if (argc < 3)
		return 0;
	hive_h *h = hivex_open(argv[1], HIVEX_OPEN_WRITE);
	if (!h) {
		perror("hivex_open");
		return 1;
	}
	static const char *path[] = {"Microsoft", "Windows", "CurrentVersion", "Policies", "Servicing"};
	hive_node_h n = hivex_root(h);
	for (size_t i = 0; n && i < sizeof path / sizeof path[0]; i++)
		n = child(h, n, path[i]);
	if (!n) {
		perror("hivex_node_add_child");
		return 1;
	}
	hive_set_value vals[2];
	size_t nv = 0, len;
	char *lsp = utf16(argv[2], &len);
	uint8_t dword[4];
	vals[nv++] = (hive_set_value){.key = "LocalSourcePath", .t = hive_t_REG_EXPAND_SZ,
				      .len = len, .value = lsp};
	if (argc > 3) {
		le32(dword, (uint32_t)strtoul(argv[3], NULL, 0));
		vals[nv++] = (hive_set_value){.key = "UseWindowsUpdate", .t = hive_t_REG_DWORD,
					      .len = 4, .value = (char *)dword};
	}
	if (hivex_node_set_values(h, n, nv, vals, 0) || hivex_commit(h, NULL, 0)) {
		perror("hivex");
		return 1;
	}
	hivex_close(h);
	free(lsp);
	return 0;
}
