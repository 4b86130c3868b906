/* test_xmlinfo.c - image names from WIM XML: a real two-image capture
 * checked against wimlib, hand-written documents for entities, CDATA and
 * odd structure, malformed documents, and random damage. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testutil.h"
#include "wimtest.h"
#include "util.h"
#include "xmlinfo.h"


/* n bytes of UTF-8 to UTF-16LE with a BOM; *len gets the size. */
static uint8_t *utf16_doc_n(const char *s, size_t n, size_t *len)
{
	uint8_t *b = malloc(4 * n + 2), *o = b;
	*o++ = 0xFF;
	*o++ = 0xFE;
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		uint32_t c;
		if (*p < 0x80)
			c = *p++;
		else if (*p < 0xE0)
			c = (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F), p += 2;
		else if (*p < 0xF0)
			c = (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F),
			p += 3;
		else
			c = (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 |
			    (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F),
			p += 4;
		if (c >= 0x10000) {
			c -= 0x10000;
			put_le16(o, (uint16_t)(0xD800 + (c >> 10)));
			put_le16(o + 2, (uint16_t)(0xDC00 + (c & 0x3FF)));
			o += 4;
		} else {
			put_le16(o, (uint16_t)c);
			o += 2;
		}
	}
	*len = (size_t)(o - b);
	return b;
}

static uint8_t *utf16_doc(const char *s, size_t *len)
{
	return utf16_doc_n(s, strlen(s), len);
}

#define MAXIMG 4
struct parsed {
	int r;
	char *names[MAXIMG], *descs[MAXIMG];
	uint64_t bytes[MAXIMG];
};

static void parsed_free(struct parsed *p)
{
	for (int i = 0; i < MAXIMG; i++) {
		free(p->names[i]);
		free(p->descs[i]);
	}
}

static struct parsed parse_text_n(const char *xml, size_t n, uint32_t count)
{
	struct parsed p;
	size_t len;
	uint8_t *doc = utf16_doc_n(xml, n, &len);
	memset(&p, 0, sizeof p);
	p.r = ih_xml_read_images(doc, len, count, p.names, p.descs, p.bytes);
	free(doc);
	return p;
}

static struct parsed parse_text(const char *xml, uint32_t count)
{
	return parse_text_n(xml, strlen(xml), count);
}

/* Parses n bytes of xml (one image); checks the result and image 1's name. */
static void expect_name_n(const char *xml, size_t n, int r, const char *name)
{
	struct parsed p = parse_text_n(xml, n, 1);
	CHECK_EQ_INT(p.r, r);
	CHECK_STR(p.names[0], name);
	CHECK_STR(p.descs[0], p.descs[0] ? p.descs[0] : "(null)");
	parsed_free(&p);
}

static void expect_name(const char *xml, int r, const char *name)
{
	expect_name_n(xml, strlen(xml), r, name);
}

#define EXPECT_NAME_LIT(lit, r, name) expect_name_n(lit, sizeof(lit) - 1, r, name)

static void test_documents(void)
{
	/* Entities, numeric references, CDATA, whitespace kept. */
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>a&amp;b&lt;&gt;&quot;&apos;&#65;&#x42;&#x1F600;"
		    "</NAME></IMAGE></WIM>",
		    0, "a&b<>\"'AB\xf0\x9f\x98\x80");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>&foo; & &#; &#0; &#xD800; &#1114112; "
		    "&#123456789;</NAME></IMAGE></WIM>",
		    0, "&foo; & &#; \xef\xbf\xbd \xef\xbf\xbd \xef\xbf\xbd &#123456789;");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>x<![CDATA[<y>&amp;]]>z</NAME></IMAGE></WIM>", 0,
		    "x<y>&amp;z");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>  two words \n</NAME></IMAGE></WIM>", 0,
		    "  two words \n");
	/* The first text run of the first NAME counts, as in wimlib. */
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>first<b>x</b>second</NAME>"
		    "<NAME>other</NAME></IMAGE></WIM>",
		    0, "first");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME><b>x</b>after</NAME></IMAGE></WIM>", 0, "after");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME/><NAME>late</NAME></IMAGE></WIM>", 0, "");
	/* Prolog, comments, PIs, single quotes, spaces in tags, trailing NULs. */
	EXPECT_NAME_LIT("<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n<!-- c --><!DOCTYPE WIM>"
		    "<WIM ><IMAGE  INDEX = '1' ><?pi x?><!-- <NAME>no</NAME> -->"
		    "<NAME >ok</NAME ></IMAGE></WIM >\n<!-- end -->\n\0\0",
		    0, "ok");
	/* NAME elsewhere does not count; the wrong INDEX does not either. */
	expect_name("<WIM><NAME>root</NAME><IMAGE INDEX=\"1\"><WINDOWS><NAME>deep</NAME></WINDOWS>"
		    "</IMAGE></WIM>",
		    0, "");
	expect_name("<WIM><IMAGE INDEX=\"2\"><NAME>two</NAME></IMAGE><IMAGE><NAME>none</NAME></IMAGE>"
		    "<IMAGE INDEX=\"x1\"><NAME>bad</NAME></IMAGE><IMAGE INDEX=\"0\"><NAME>zero</NAME>"
		    "</IMAGE></WIM>",
		    0, "");
	expect_name("<WIM><IMAGE INDEX=\" 1 \"><NAME>spaced</NAME></IMAGE>"
		    "<IMAGE INDEX=\"1\"><NAME>again</NAME></IMAGE></WIM>",
		    0, "spaced");
	expect_name("<WIM/>", 0, "");

	/* Malformed: -1, with what was read before the damage. */
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>a</NAME></IMAGE>", -1, "a");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>a</NAME></IMAGE></WIM><WIM/>", -1, "a");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>a</NAME></WIM>", -1, "a");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>a</NAME></IMAGE></WIM>junk", -1, "a");
	expect_name("junk<WIM></WIM>", -1, "");
	expect_name("<IMAGES><IMAGE INDEX=\"1\"><NAME>a</NAME></IMAGE></IMAGES>", -1, "");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>a", -1, "");
	expect_name("<WIM><IMAGE INDEX=\"1", -1, "");
	expect_name("<WIM><IMAGE INDEX=1><NAME>a</NAME></IMAGE></WIM>", -1, "");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>a<!-- x </NAME></IMAGE></WIM>", -1, "");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME><![CDATA[a</NAME></IMAGE></WIM>", -1, "");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>a</NAME></IMAGE></WIM><?pi", -1, "a");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>a</NAME><!DOCTYPE x></IMAGE></WIM>", -1, "a");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>a</NAME><a/b></IMAGE></WIM>", -1, "a");
	expect_name("<WIM><IMAGE INDEX=\"1\"><NAME>a</NAME>< ></IMAGE></WIM>", -1, "a");
	expect_name("", -1, "");
	EXPECT_NAME_LIT("<WIM>\0</WIM>", -1, ""); /* a NUL inside the document */

	/* Nesting deeper than the limit. */
	size_t depth = IH_XML_MAX_DEPTH + 1, k = 0;
	char *deep = malloc(depth * 7 + 16);
	k += (size_t)sprintf(deep + k, "<WIM>");
	for (size_t i = 1; i < depth; i++)
		k += (size_t)sprintf(deep + k, "<a>");
	for (size_t i = 1; i < depth; i++)
		k += (size_t)sprintf(deep + k, "</a>");
	sprintf(deep + k, "</WIM>");
	expect_name(deep, -1, "");
	/* ... and just within it. */
	k = (size_t)sprintf(deep, "<WIM>");
	for (size_t i = 2; i < depth; i++)
		k += (size_t)sprintf(deep + k, "<a>");
	for (size_t i = 2; i < depth; i++)
		k += (size_t)sprintf(deep + k, "</a>");
	sprintf(deep + k, "</WIM>");
	expect_name(deep, 0, "");
	free(deep);

	/* No byte order mark: UTF-16LE all the same, as wimlib reads it (the
	 * image keeps its name and description).  Then a big-endian BOM, an
	 * empty buffer, an odd length. */
	uint8_t nobom[] = {'<', 0, 'W', 0, 'I', 0, 'M', 0, '/', 0, '>', 0};
	char *nm[1], *ds[1];
	CHECK_EQ_INT(ih_xml_image_names(nobom, sizeof nobom, 1, nm, ds), 0);
	CHECK_STR(nm[0], "");
	CHECK_STR(ds[0], "");
	free(nm[0]);
	free(ds[0]);
	size_t nblen;
	uint8_t *nb = utf16_doc("<WIM><IMAGE INDEX=\"1\"><NAME>Pro</NAME>"
				"<DESCRIPTION>Windows Pro</DESCRIPTION></IMAGE></WIM>", &nblen);
	CHECK_EQ_INT(ih_xml_image_names(nb + 2, nblen - 2, 1, nm, ds), 0);
	CHECK_STR(nm[0], "Pro");
	CHECK_STR(ds[0], "Windows Pro");
	free(nm[0]);
	free(ds[0]);
	free(nb);
	uint8_t bebom[] = {0xFE, 0xFF, 0, '<'};
	CHECK_EQ_INT(ih_xml_image_names(bebom, sizeof bebom, 0, NULL, NULL), -1);
	CHECK_EQ_INT(ih_xml_image_names(NULL, 0, 0, NULL, NULL), -1);
	size_t len;
	uint8_t *doc = utf16_doc("<WIM/>", &len);
	CHECK_EQ_INT(ih_xml_image_names(doc, len, 0, NULL, NULL), 0);
	CHECK_EQ_INT(ih_xml_image_names(doc, len - 1, 0, NULL, NULL), -1);
	free(doc);

	/* Several images, descriptions, TOTALBYTES (the WIM's own is not an
	 * image's). */
	struct parsed p = parse_text(
		"<WIM><TOTALBYTES>999</TOTALBYTES>"
		"<IMAGE INDEX=\"2\"><DESCRIPTION>d2</DESCRIPTION><NAME>n2</NAME>"
		"<TOTALBYTES> 18446744073709551615 </TOTALBYTES></IMAGE>"
		"<IMAGE INDEX=\"1\"><TOTALBYTES>12x</TOTALBYTES><NAME>n1</NAME></IMAGE>"
		"<IMAGE INDEX=\"3\"><TOTALBYTES>18446744073709551616</TOTALBYTES></IMAGE>"
		"<IMAGE INDEX=\"4\"><TOTALBYTES>4096</TOTALBYTES><DESCRIPTION/></IMAGE></WIM>",
		4);
	CHECK_EQ_INT(p.r, 0);
	CHECK_STR(p.names[0], "n1");
	CHECK_STR(p.names[1], "n2");
	CHECK_STR(p.names[2], "");
	CHECK_STR(p.descs[0], "");
	CHECK_STR(p.descs[1], "d2");
	CHECK(p.bytes[0] == 0 && p.bytes[1] == UINT64_MAX && p.bytes[2] == 0 && p.bytes[3] == 4096);
	parsed_free(&p);
}

/* Random damage and every truncation: no crash, sane strings. */
static void test_damage(const uint8_t *xml, size_t len, uint32_t count)
{
	char **names = calloc(count, sizeof *names), **descs = calloc(count, sizeof *descs);
	uint64_t *bytes = calloc(count, sizeof *bytes);
	uint8_t *b = malloc(len);
	unsigned seed = 4242;
	int ok = 0, bad = 0, sane = 1;
	for (int iter = 0; iter < 5000; iter++) {
		memcpy(b, xml, len);
		int nflips = 1 + (int)(rand_r(&seed) % 4);
		for (int k = 0; k < nflips; k++) {
			size_t at = (size_t)rand_r(&seed) % len;
			if (rand_r(&seed) % 3 == 0)
				b[at] = (uint8_t)"<>/=\"'&;![]?-xX#0 "[rand_r(&seed) % 19];
			else
				b[at] ^= (uint8_t)(1u << (rand_r(&seed) % 8));
		}
		int r = ih_xml_read_images(b, len, count, names, descs, bytes);
		r == 0 ? ok++ : r == -1 ? bad++ : 0;
		for (uint32_t i = 0; i < count; i++) {
			sane &= names[i] != NULL && descs[i] != NULL;
			free(names[i]);
			free(descs[i]);
		}
	}
	CHECK_EQ_INT(ok + bad, 5000);
	CHECK(ok > 0 && bad > 0);
	CHECK(sane);
	int refused = 0;
	for (size_t l = 0; l < len; l++) {
		uint8_t *t = malloc(l ? l : 1); /* exact size, so ASan sees overreads */
		memcpy(t, xml, l);
		int r = ih_xml_read_images(t, l, count, names, descs, bytes);
		refused += r == -1;
		for (uint32_t i = 0; i < count; i++) {
			free(names[i]);
			free(descs[i]);
		}
		free(t);
	}
	/* Every cut before the end of </WIM> is refused; wimlib ends the
	 * document with a newline, which may go. */
	CHECK_EQ_INT(refused, len - (len >= 2 && xml[len - 2] == '\n'));
	free(b);
	free(names);
	free(descs);
	free(bytes);
}

static char *info_field(const char *wim, int image, const char *key)
{
	char cmd[1024], *line = NULL, *v = NULL;
	size_t cap = 0;
	ssize_t n;
	snprintf(cmd, sizeof cmd, "wimlib-imagex info '%s' %d 2>/dev/null", wim, image);
	FILE *p = popen(cmd, "r");
	while (p && (n = getline(&line, &cap, p)) >= 0) {
		if (strncmp(line, key, strlen(key)))
			continue;
		if (n && line[n - 1] == '\n')
			line[--n] = '\0';
		const char *s = line + strlen(key);
		while (*s == ' ')
			s++;
		free(v);
		v = strdup(s);
	}
	free(line);
	if (p)
		pclose(p);
	return v ? v : strdup("(missing)");
}

static void test_real_wim(void)
{
	char dir[] = "/tmp/ih-test-xmlinfo-XXXXXX", wim[256];
	if (!mkdtemp(dir)) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(wim, sizeof wim, "%s/two.wim", dir);
	CHECK_EQ_INT(tsh("mkdir -p %s/t && echo hi > %s/t/f && "
			"wimlib-imagex capture %s/t %s 'My <Image> & \"Co\"' "
			"'d\xc3\xa9scription \xf0\x9f\x98\x80' --compress=none >/dev/null 2>&1 && "
			"echo more > %s/t/g && "
			"wimlib-imagex append %s/t %s second >/dev/null 2>&1",
			dir, dir, dir, wim, dir, dir, wim),
		     0);
	FILE *f = fopen(wim, "rb");
	uint8_t hdr[208];
	CHECK(f && fread(hdr, 1, sizeof hdr, f) == sizeof hdr);
	uint64_t size = get_le64(hdr + 0x48) & 0x00FFFFFFFFFFFFFFULL, off = get_le64(hdr + 0x50);
	uint32_t count = get_le32(hdr + 0x2C);
	CHECK_EQ_INT(count, 2);
	uint8_t *xml = malloc(size ? size : 1);
	CHECK(f && fseek(f, (long)off, SEEK_SET) == 0 && fread(xml, 1, size, f) == size);
	if (f)
		fclose(f);

	char *names[2], *descs[2];
	uint64_t bytes[2];
	CHECK_EQ_INT(ih_xml_read_images(xml, size, 2, names, descs, bytes), 0);
	CHECK_STR(names[0], "My <Image> & \"Co\"");
	CHECK_STR(descs[0], "d\xc3\xa9scription \xf0\x9f\x98\x80");
	CHECK_STR(names[1], "second");
	CHECK_STR(descs[1], "");
	for (int i = 0; i < 2; i++) {
		char *n = info_field(wim, i + 1, "Name:"), *t = info_field(wim, i + 1, "Total Bytes:");
		CHECK_STR(names[i], n);
		CHECK_EQ_INT(bytes[i], strtoull(t, NULL, 10));
		free(n);
		free(t);
		free(names[i]);
		free(descs[i]);
	}
	CHECK(bytes[0] == 3 && bytes[1] == 8);
	/* Asking for fewer images than the document has is fine. */
	CHECK_EQ_INT(ih_xml_image_names(xml, size, 1, names, descs), 0);
	CHECK_STR(names[0], "My <Image> & \"Co\"");
	free(names[0]);
	free(descs[0]);

	test_damage(xml, size, count);
	free(xml);
	tsh("rm -rf '%s'", dir);
}

void test_xmlinfo(void)
{
	test_documents();
	test_real_wim();
}
