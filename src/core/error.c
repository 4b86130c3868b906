/* error.c - error codes, their HRESULTs and names. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "util.h"

static const struct {
	const char *name;
	uint32_t hresult;
} codes[IH_ERR__COUNT] = {
	[IH_OK] = {"ok", 0},
	[IH_ERR_NOMEM] = {"nomem", 0x8007000E},
	[IH_ERR_INVALID_ARG] = {"invalid_arg", 0x80070057},
	[IH_ERR_NOT_FOUND] = {"not_found", 0x80070002},
	[IH_ERR_ACCESS] = {"access_denied", 0x80070005},
	[IH_ERR_NOT_WIM] = {"not_wim", 0xC1420113},
	[IH_ERR_BAD_INDEX] = {"bad_index", 0xC0040005},
	[IH_ERR_BUSY] = {"busy", 0x800F0902},
	[IH_ERR_INVALID_SESSION] = {"invalid_session", 0xC0040004},
	[IH_ERR_CANCELLED] = {"cancelled", 0x800704C7},
	[IH_ERR_IO] = {"io", 0x8007001E},
	[IH_ERR_MISSING_PART] = {"missing_part", 0x80070002},
	[IH_ERR_NONREPAIRABLE] = {"nonrepairable", 0x80070570},
	[IH_ERR_SOURCE_MISSING] = {"source_missing", 0x800F081F},
	[IH_ERR_DOWNLOAD] = {"download_failed", 0x800F0906},
	[IH_ERR_POLICY] = {"policy_disallowed", 0x800F0907},
	[IH_ERR_DISK_FULL] = {"disk_full", 0x80070070},
	[IH_ERR_INTERNAL] = {"internal", 0x8000FFFF},
};

const char *ih_errcode_name(ih_errcode code)
{
	if ((unsigned)code >= IH_ERR__COUNT)
		return "unknown";
	return codes[code].name;
}

uint32_t ih_errcode_hresult(ih_errcode code)
{
	if ((unsigned)code >= IH_ERR__COUNT)
		return 0x8000FFFF;
	return codes[code].hresult;
}

const char *ih_health_name(ih_health h)
{
	switch (h) {
	case IH_HEALTHY: return "healthy";
	case IH_REPAIRABLE: return "repairable";
	case IH_NONREPAIRABLE: return "nonrepairable";
	}
	return "unknown";
}

const char *ih_reason_name(ih_reason r)
{
	switch (r) {
	case IH_REASON_HASH_MISMATCH: return "hash_mismatch";
	case IH_REASON_DECOMPRESS: return "decompression_failure";
	case IH_REASON_TRUNCATED: return "truncated";
	case IH_REASON_MISSING: return "missing";
	case IH_REASON_BAD_ENTRY: return "bad_entry";
	case IH_REASON_MODIFIED: return "modified";
	case IH_REASON_WRONG_TYPE: return "wrong_type";
	case IH_REASON_SUSPECT: return "suspect";
	}
	return "unknown";
}

const char *ih_try_status_name(ih_try_status s)
{
	switch (s) {
	case IH_TRY_NOT_FOUND: return "not_found";
	case IH_TRY_WRONG_BYTES: return "wrong_bytes";
	case IH_TRY_DOWNLOAD_FAILED: return "download_failed";
	case IH_TRY_UNUSABLE: return "unusable";
	case IH_TRY_ERROR: return "error";
	}
	return "unknown";
}

const char *ih_tree_type_name(ih_tree_type t)
{
	static const char *names[] = {"none", "file", "directory", "link", "special file"};
	return (unsigned)t < IH_ARRAY_LEN(names) ? names[t] : "unknown";
}

const char *ih_phase_name(ih_phase p)
{
	static const char *names[] = {"start", "quick", "scan", "integrity", "report",
				      "plan", "fetch", "write", "verify", "done"};
	if ((unsigned)p >= IH_ARRAY_LEN(names))
		return "unknown";
	return names[p];
}

int ih_fail(ih_error *err, ih_errcode code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		err->code = code;
		err->hresult = ih_errcode_hresult(code);
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof err->message, fmt, ap);
		va_end(ap);
	}
	return code;
}

ih_errcode ih_errno_code(int e)
{
	switch (e) {
	case ENOENT: case ENOTDIR: return IH_ERR_NOT_FOUND;
	case EACCES: case EPERM: return IH_ERR_ACCESS;
	case ENOMEM: return IH_ERR_NOMEM;
	case ENOSPC: case EDQUOT: case EFBIG: return IH_ERR_DISK_FULL;
	case EWOULDBLOCK: return IH_ERR_BUSY;
	default: return IH_ERR_IO;
	}
}
