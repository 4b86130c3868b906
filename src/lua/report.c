/*
 * report.c - a check's and a restore's report as plain Lua tables (the
 * fields lua/imagehealth/report.lua documents), from the core's typed
 * structs: no field is ever parsed out of message text.
 */
#include <string.h>

#include "binding.h"

static const char *problem_kind_name(ih_problem_kind k)
{
	switch (k) {
	case IH_PROBLEM_HEADER: return "header";
	case IH_PROBLEM_BLOB_TABLE: return "blob_table";
	case IH_PROBLEM_XML: return "xml";
	case IH_PROBLEM_INTEGRITY: return "integrity";
	case IH_PROBLEM_METADATA: return "metadata";
	case IH_PROBLEM_OTHER: return "other";
	}
	return "other";
}

static void push_damage(lua_State *L, const ih_damage *d)
{
	lua_createtable(L, 0, 14);
	push_hex(L, d->sha1, sizeof d->sha1);
	lua_setfield(L, -2, "sha1");
	setfield_u64(L, "size", d->size);
	setfield_str(L, "reason", ih_reason_name(d->reason));
	setfield_bool(L, "is_metadata", d->is_metadata);
	setfield_bool(L, "solid", d->solid);
	setfield_int(L, "part", d->part);
	setfield_u64(L, "offset", d->offset);
	setfield_u64(L, "stored_size", d->stored_size);
	size_t dlen = strnlen(d->detail, sizeof d->detail);
	lua_pushlstring(L, d->detail, dlen);
	lua_setfield(L, -2, "detail");

	/* refs = {{image=, path=}, ...} as the core gives them (sorted);
	 * paths = the paths alone; images = the images hit, as the core gives
	 * them (sorted, unique; for metadata damage, the image whose directory
	 * tree it is). */
	push_refs(L, d->refs, d->n_refs);
	setfield_u64(L, "refs_omitted", d->n_refs_omitted); /* paths beyond the core's cap */
	push_images(L, d->images, d->n_images);
	lua_setfield(L, -2, "images");
	if (d->want_type) { /* an applied tree: one entry per path */
		setfield_str(L, "want_type", ih_tree_type_name(d->want_type));
		setfield_str(L, "found_type", ih_tree_type_name(d->found_type));
		if (d->n_refs)
			setfield_str(L, "path", d->refs[0].path);
	}
}

static const char *source_kind_name(ih_source_kind k)
{
	return k == IH_SOURCE_DIR ? "dir" : k == IH_SOURCE_SCRIPT ? "script" : k == IH_SOURCE_HTTP ? "http" : "wim";
}

static const char *source_origin_name(ih_source_origin o)
{
	return o == IH_ORIGIN_POLICY ? "policy" : o == IH_ORIGIN_DEFAULT ? "default" : "caller";
}

static const char *source_status_name(ih_source_status st)
{
	return st == IH_SOURCE_USABLE ? "usable" : st == IH_SOURCE_UNMAPPED ? "unmapped"
	       : st == IH_SOURCE_NOT_CONTACTED ? "not_contacted" : "unusable";
}

static void push_problems(lua_State *L, const ih_problem *v, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		const ih_problem *p = &v[i];
		lua_createtable(L, 0, 3);
		setfield_str(L, "kind", problem_kind_name(p->kind));
		setfield_str(L, "severity", ih_health_name(p->severity));
		size_t mlen = strnlen(p->message, sizeof p->message);
		lua_pushlstring(L, p->message, mlen);
		lua_setfield(L, -2, "message");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

/* A source as a report entry names it: a scripted source by its name, any
 * other by its spec. */
static const char *source_name(const ih_source_report *sr)
{
	const char *spec = sr->spec ? sr->spec : "";
	if (sr->kind == IH_SOURCE_SCRIPT && strncmp(spec, "script:", 7) == 0)
		return spec + 7;
	return spec;
}

/* tried = {{source = i (1-based), name =, spec =, status = "not_found"|...,
 * reason =}, ...}: what each source asked for a blob said, in order. */
static void push_tries(lua_State *L, const ih_try *v, size_t n, const ih_restore_report *r)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		lua_createtable(L, 0, 5);
		setfield_str(L, "status", ih_try_status_name(v[i].status));
		setfield_optstr(L, "reason", v[i].reason);
		if (v[i].source >= 0 && (size_t)v[i].source < r->n_sources) {
			const ih_source_report *sr = &r->sources[v[i].source];
			setfield_int(L, "source", (lua_Integer)v[i].source + 1);
			setfield_str(L, "name", source_name(sr));
			setfield_str(L, "spec", sr->spec);
		}
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "tried");
}

/* A list of damage entries; with the restore report r, each says why it is
 * left and what each source said of it. */
static void push_damage_list(lua_State *L, const ih_damage *v, size_t n,
			     const ih_restore_report *r)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		push_damage(L, &v[i]);
		if (r)
			push_tries(L, v[i].tries, v[i].n_tries, r);
		if (r && v[i].code != IH_OK) {
			setfield_str(L, "code", ih_errcode_name(v[i].code));
			setfield_int(L, "hresult", (lua_Integer)ih_errcode_hresult(v[i].code));
			if (v[i].policy_reason[0]) {
				size_t rl = strnlen(v[i].policy_reason, sizeof v[i].policy_reason);
				lua_pushlstring(L, v[i].policy_reason, rl);
				lua_setfield(L, -2, "policy_reason");
			}
		}
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

static void push_sources(lua_State *L, const ih_source_report *v, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		const ih_source_report *sr = &v[i];
		lua_createtable(L, 0, 12);
		setfield_str(L, "spec", sr->spec ? sr->spec : "");
		setfield_str(L, "kind", source_kind_name(sr->kind));
		setfield_str(L, "origin", source_origin_name(sr->origin));
		setfield_optstr(L, "path", sr->path);
		setfield_int(L, "index", sr->index);
		setfield_bool(L, "usable", sr->status == IH_SOURCE_USABLE);
		setfield_str(L, "status", source_status_name(sr->status));
		setfield_optstr(L, "error", sr->error);
		if (sr->error_code != IH_OK)
			setfield_str(L, "error_code", ih_errcode_name(sr->error_code));
		setfield_u64(L, "bytes_read", sr->bytes_read);
		setfield_u64(L, "blobs_used", sr->blobs_used);
		setfield_u64(L, "blobs_rejected", sr->blobs_rejected);
		setfield_u64(L, "blobs_not_found", sr->blobs_not_found);
		if (sr->kind == IH_SOURCE_SCRIPT)
			setfield_str(L, "name", source_name(sr));
		if (sr->kind == IH_SOURCE_HTTP) {
			setfield_u64(L, "requests", sr->requests);
			setfield_u64(L, "bytes_fetched", sr->bytes_fetched);
			setfield_u64(L, "bytes_asked", sr->bytes_total);
			setfield_u64(L, "retries", sr->retries);
			setfield_u64(L, "failures", sr->failures);
			setfield_u64(L, "round_trips", sr->round_trips);
			push_strings(L, sr->notes, sr->n_notes);
			lua_setfield(L, -2, "notes");
		}
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

static void push_repaired(lua_State *L, const ih_restore_report *r)
{
	lua_createtable(L, (int)r->n_repaired, 0);
	for (size_t i = 0; i < r->n_repaired; i++) {
		const ih_repair *rp = &r->repaired[i];
		lua_createtable(L, 0, 9);
		push_hex(L, rp->sha1, sizeof rp->sha1);
		lua_setfield(L, -2, "sha1");
		setfield_u64(L, "size", rp->size);
		if (rp->source >= 0 && (size_t)rp->source < r->n_sources) {
			setfield_int(L, "source", (lua_Integer)rp->source + 1);
			setfield_str(L, "source_spec", r->sources[rp->source].spec);
			setfield_str(L, "source_name", source_name(&r->sources[rp->source]));
		}
		push_tries(L, rp->tries, rp->n_tries, r);
		setfield_bool(L, "raw_copy", rp->raw_copy);
		push_refs(L, rp->refs, rp->n_refs);
		setfield_bool(L, "is_metadata", rp->is_metadata);
		setfield_optstr(L, "action", rp->action);
		if (rp->action && rp->n_refs)
			setfield_str(L, "path", rp->refs[0].path);
		push_images(L, rp->images, rp->n_images);
		lua_setfield(L, -2, "images");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

/* An applied tree's fields of a check report (into the table on top). */
static void push_tree_fields(lua_State *L, const ih_report *r)
{
	if (!r->tree)
		return;
	setfield_bool(L, "tree", 1);
	setfield_optstr(L, "reference", r->reference);
	setfield_u64(L, "files_checked", r->files_checked);
	push_strings(L, r->extra, r->n_extra);
	lua_setfield(L, -2, "extra");
	setfield_u64(L, "extra_omitted", r->n_extra_omitted);
	setfield_u64(L, "named_streams_skipped", r->named_streams_skipped);
	setfield_u64(L, "links_unverified", r->links_unverified);
}

/* How a check found what it found (into the table on top): a restore's
 * report repeats its check's. */
static void push_scan_fields(lua_State *L, const ih_report *r)
{
	setfield_bool(L, "scanned", r->scanned);
	setfield_bool(L, "from_record", r->from_record);
	if (r->recorded_at > 0)
		setfield_num(L, "recorded_at", r->recorded_at);
	if (r->record_note)
		setfield_str(L, "record_note", r->record_note);
	setfield_u64(L, "blobs_checked", r->blobs_checked);
	setfield_u64(L, "bytes_checked", r->bytes_checked);
	setfield_str(L, "scan_kind", ih_scan_kind_name(r->scan_kind));
	setfield_u64(L, "bytes_deep_scanned", r->bytes_deep_scanned);
	setfield_u64(L, "bytes_fingerprinted", r->bytes_fingerprinted);
	if (r->scan_note)
		setfield_str(L, "scan_note", r->scan_note);
}

/* What every report starts with (into the table on top): its state, how
 * its check found what it found (c), the image, index and time taken. */
static void push_head(lua_State *L, ih_health state, const ih_report *c, const char *image,
		      uint32_t index, double seconds)
{
	setfield_str(L, "state", ih_health_name(state));
	setfield_int(L, "health", state);
	push_scan_fields(L, c);
	setfield_str(L, "image", image);
	setfield_int(L, "index", index);
	setfield_num(L, "seconds", seconds);
}

/* A check's report (see lua/imagehealth/report.lua). */
void push_report(lua_State *L, const ih_report *r)
{
	lua_createtable(L, 0, 16);
	push_head(L, r->state, r, r->image_path, r->index, r->seconds);
	push_damage_list(L, r->damage, r->n_damage, NULL);
	lua_setfield(L, -2, "damaged");
	push_problems(L, r->problems, r->n_problems);
	lua_setfield(L, -2, "problems");
	push_tree_fields(L, r);
}

/* A restore's report: the state after, what was repaired and what is
 * left (damaged = unrepaired, each with its code), the sources, and the
 * check it started from as `before` (its scan figures repeated at the top
 * level, as a check report has them). */
void push_restore_report(lua_State *L, const ih_restore_report *r)
{
	const ih_report *c = r->check;
	lua_createtable(L, 0, 24);
	push_head(L, r->state, c, r->image_path, r->index, r->seconds);
	setfield_bool(L, "restored", 1);
	setfield_str(L, "state_before", ih_health_name(c->state));
	setfield_int(L, "health_before", c->state);
	setfield_u64(L, "bytes_written", r->bytes_written);
	setfield_bool(L, "rebuilt", r->rebuilt);
	setfield_bool(L, "dry_run", r->dry_run);
	if (r->dry_run)
		setfield_u64(L, "bytes_planned", r->bytes_planned);
	setfield_bool(L, "limit_access", r->limit_access);
	setfield_int(L, "default_sources", (lua_Integer)r->n_default_sources);
	if (r->default_barred)
		setfield_str(L, "default_barred", r->default_barred == 1 ? "limit_access" : "policy");
	setfield_bool(L, "no_policy", r->no_policy);
	push_tree_fields(L, c);
	push_report(L, c);
	lua_setfield(L, -2, "before");
	push_damage_list(L, r->unrepaired, r->n_unrepaired, r);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "damaged");
	lua_setfield(L, -2, "unrepaired");
	push_problems(L, r->problems, r->n_problems);
	lua_setfield(L, -2, "problems");
	push_sources(L, r->sources, r->n_sources);
	lua_setfield(L, -2, "sources");
	push_repaired(L, r);
	lua_setfield(L, -2, "repaired");
	push_damage_list(L, r->dropped, r->n_dropped, NULL);
	lua_setfield(L, -2, "dropped");
	lua_createtable(L, 0, 3);
	setfield_optstr(L, "local_source_path", r->policy_local_source_path);
	if (r->policy_use_windows_update != -1)
		setfield_int(L, "use_windows_update", r->policy_use_windows_update);
	setfield_optstr(L, "note", r->policy_note);
	lua_setfield(L, -2, "policy");
}
