/*
 * poll.c - core.poll(fds, timeout_ms [, events]): poll(2) on a set of
 * descriptors, for plain coroutine schedulers that run imagehealth jobs
 * (lua/imagehealth/poll.lua).  Blocks the Lua state at most timeout_ms.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include "binding.h"

/* poll(2) takes an int: a day is more than any scheduler waits at once */
#define POLL_MAX_MS (24 * 3600 * 1000)
#define POLL_MAX_FDS 65536

static short events_of(lua_State *L, int t, lua_Integer i)
{
	if (lua_isnil(L, t))
		return POLLIN;
	lua_rawgeti(L, t, i);
	const char *e = lua_tostring(L, -1);
	short ev = 0;
	if (e && strchr(e, 'r'))
		ev |= POLLIN;
	if (e && strchr(e, 'w'))
		ev |= POLLOUT;
	lua_pop(L, 1);
	if (!ev)
		luaL_error(L, "bad argument #3 to 'poll' (events[%d]: \"r\", \"w\" or \"rw\" expected)",
			   (int)i);
	return ev;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* poll(2), retried on EINTR with what is left of the timeout. */
static int poll_for(struct pollfd *p, size_t n, int ms)
{
	double end = now_ms() + ms;
	for (;;) {
		int rc = poll(p, (nfds_t)n, ms);
		if (rc >= 0 || errno != EINTR)
			return rc;
		if (ms >= 0) {
			double left = end - now_ms();
			ms = left > 0 ? (int)left : 0;
		}
	}
}

/* core.poll({fd...}, timeout_ms [, {events...}]) -> {ready fd...}
 * timeout_ms nil or negative waits until one is ready.  A descriptor that
 * is closed or in error counts as ready (whoever waits on it must look). */
int l_poll(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 3); /* the buffer pushed below must not pass for events */
	lua_Integer ms = luaL_optinteger(L, 2, -1);
	if (!lua_isnoneornil(L, 3))
		luaL_checktype(L, 3, LUA_TTABLE);
	lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
	luaL_argcheck(L, n <= POLL_MAX_FDS, 1, "too many descriptors");
	if (ms > POLL_MAX_MS)
		ms = POLL_MAX_MS;
	if (ms < 0)
		ms = -1;
	/* a userdata, not malloc: nothing to free if an argument raises */
	struct pollfd *p = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *p, 0);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, 1, i);
		int isnum;
		lua_Integer fd = lua_tointegerx(L, -1, &isnum);
		lua_pop(L, 1);
		if (!isnum || fd < 0 || fd > INT32_MAX)
			return luaL_error(L, "bad argument #1 to 'poll' (fds[%d]: a descriptor expected)",
					  (int)i);
		p[i - 1].fd = (int)fd;
		p[i - 1].events = events_of(L, 3, i);
		p[i - 1].revents = 0;
	}
	int rc = poll_for(p, (size_t)n, (int)ms);
	if (rc < 0)
		return luaL_error(L, "poll: %s", strerror(errno));
	lua_createtable(L, rc, 0);
	lua_Integer k = 0;
	for (lua_Integer i = 0; i < n && k < rc; i++) {
		if (p[i].revents) {
			lua_pushinteger(L, p[i].fd);
			lua_rawseti(L, -2, ++k);
		}
	}
	return 1;
}

/* core.monotime() -> seconds on a monotonic clock, for schedulers' timers
 * (Lua's os.clock is CPU time, os.time whole seconds). */
int l_monotime(lua_State *L)
{
	lua_pushnumber(L, now_ms() / 1e3);
	return 1;
}
