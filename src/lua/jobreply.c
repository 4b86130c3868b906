/*
 * jobreply.c - the request/reply channel of a job as Lua sees it: a
 * worker's request becomes an event table (job:drain), and the Lua drive
 * loop (lua/imagehealth/job.lua) answers with reply_data / reply_end /
 * reply_order.  Replies never block: "busy" means try again once the job's
 * fd is readable.
 */
#include <stdint.h>

#include "binding.h"

static const char *request_kind_name(ih_request_kind k)
{
	switch (k) {
	case IH_REQUEST_BLOB: return "blob";
	case IH_REQUEST_ORDER: return "order";
	case IH_REQUEST_ACCEPT: return "accept";
	}
	return "unknown";
}

/* A request event: {type = "request", id =, kind = "blob"|"order"|"accept",
 * source = (blob: 1-based index in the restore's sources), sha1 =, size =,
 * reason =, is_metadata =, paths =, refs =, images =, n_sources =}.  0 (and
 * nothing pushed) when the worker no longer wants it: it is ended. */
int push_request(lua_State *L, ih_job *j, uint64_t id)
{
	ih_request rq;
	if (ih_job_request(j, id, &rq) != IH_OK) {
		ih_job_reply_end(j, id, 0, NULL);
		return 0;
	}
	lua_createtable(L, 0, 14);
	setfield_str(L, "type", "request");
	setfield_u64(L, "id", rq.id);
	setfield_str(L, "kind", request_kind_name(rq.kind));
	if (rq.source >= 0)
		setfield_int(L, "source", (lua_Integer)rq.source + 1);
	push_hex(L, rq.sha1, sizeof rq.sha1);
	lua_setfield(L, -2, "sha1");
	setfield_u64(L, "size", rq.size);
	setfield_str(L, "reason", ih_reason_name((ih_reason)rq.reason));
	setfield_bool(L, "is_metadata", rq.is_metadata);
	setfield_u64(L, "n_sources", rq.n_sources);
	push_refs(L, rq.refs, rq.n_refs);
	lua_createtable(L, (int)rq.n_images, 0);
	for (uint32_t i = 0; i < rq.n_images; i++) {
		lua_pushinteger(L, rq.images[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "images");
	return 1;
}

static uint64_t check_request_id(lua_State *L, int idx)
{
	lua_Integer id = luaL_checkinteger(L, idx);
	luaL_argcheck(L, id > 0, idx, "request id expected");
	return (uint64_t)id;
}

/* true, or false and the code's name ("busy": retry once the job's fd is
 * readable; "cancelled": the worker no longer wants it). */
static int push_reply_rc(lua_State *L, int rc)
{
	if (rc == IH_OK) {
		lua_pushboolean(L, 1);
		return 1;
	}
	lua_pushboolean(L, 0);
	lua_pushstring(L, ih_errcode_name((ih_errcode)rc));
	return 2;
}

/* job:reply_data(id, bytes) -> true | false, "busy"|"cancelled"|... */
int lb_job_reply_data(lua_State *L)
{
	ljob *lj = check_job(L, 1);
	uint64_t id = check_request_id(L, 2);
	size_t len;
	const char *data = luaL_checklstring(L, 3, &len);
	return push_reply_rc(L, ih_job_reply_data(lj->j, id, data, len));
}

/* job:reply_end(id, found [, reason]) -> true | false, code */
int lb_job_reply_end(lua_State *L)
{
	ljob *lj = check_job(L, 1);
	uint64_t id = check_request_id(L, 2);
	int found = lua_toboolean(L, 3);
	const char *reason = luaL_optstring(L, 4, NULL);
	return push_reply_rc(L, ih_job_reply_end(lj->j, id, found, reason));
}

/* job:reply_order(id, {i, ...}) -> true | false, code: an ORDER request's
 * answer, the 1-based indexes of the sources to try, in order. */
int lb_job_reply_order(lua_State *L)
{
	ljob *lj = check_job(L, 1);
	uint64_t id = check_request_id(L, 2);
	luaL_checktype(L, 3, LUA_TTABLE);
	lua_Integer n = luaL_len(L, 3);
	luaL_argcheck(L, n >= 0 && n <= 65536, 3, "too many sources");
	uint32_t *v = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *v, 0);
	for (lua_Integer i = 0; i < n; i++) {
		int ok;
		lua_Integer x = (lua_rawgeti(L, 3, i + 1), lua_tointegerx(L, -1, &ok));
		lua_pop(L, 1);
		luaL_argcheck(L, ok && x >= 1 && x <= UINT32_MAX, 3, "source indexes (integers >= 1) expected");
		v[i] = (uint32_t)(x - 1);
	}
	int rc = n ? ih_job_reply_data(lj->j, id, v, (size_t)n * sizeof *v) : IH_OK;
	if (rc == IH_OK)
		rc = ih_job_reply_end(lj->j, id, 1, NULL);
	return push_reply_rc(L, rc);
}

