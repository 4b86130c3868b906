/* xmlinfo.h - per-image NAME, DESCRIPTION and TOTALBYTES from a WIM's XML
 * data (UTF-16LE, a byte order mark optional as in wimlib, root element <WIM>, one
 * <IMAGE INDEX="n"> per image).
 *
 * A small tolerant parser, safe on hostile input (fuzzed): no recursion,
 * nesting limited to IH_XML_MAX_DEPTH, linear time.  Tolerant means: unknown
 * entities are kept as written, numeric references are decoded, whitespace is
 * kept, comments, processing instructions, DOCTYPE and CDATA are understood,
 * and an IMAGE with a missing, out-of-range or repeated INDEX is skipped (the
 * first one wins).  Like wimlib, an element's text is its first run of
 * character data (text and CDATA up to its first child element), and the
 * first NAME (DESCRIPTION, TOTALBYTES) child of an IMAGE counts. */
#ifndef IH_XMLINFO_H
#define IH_XMLINFO_H

#include <stddef.h>
#include <stdint.h>

#define IH_XML_MAX_DEPTH 256

/* Reads the XML data in buf.  names, descs and total_bytes (each may be
 * NULL) have image_count entries; entry i is image i+1.  Every names/descs
 * entry is set to a malloc'd UTF-8 string ("" when absent), every
 * total_bytes entry to the number (0 when absent or not a number).
 *
 * Returns 0 when the document is well-formed, -1 when it is not (a
 * big-endian byte order mark, no <WIM> root, unbalanced or unterminated markup, text outside
 * the root); the entries then hold what was read before the damage.  Returns
 * -2 when out of memory, with every entry NULL (0). */
int ih_xml_read_images(const uint8_t *buf, size_t len, uint32_t image_count, char **names,
		       char **descs, uint64_t *total_bytes);

/* The same without TOTALBYTES. */
int ih_xml_image_names(const uint8_t *buf, size_t len, uint32_t image_count, char **names,
		       char **descs);

#endif
