-- tests/leaks/sessions.lua - opens, checks, scans, restores and closes 100
-- sessions in a loop (issue 11), run by the C host (build/ih-host, and
-- build-asan/ih-host under LeakSanitizer: tests/leaks/run).  Some jobs and
-- sessions are dropped without closing, some jobs closed mid-scan.  After
-- the loop every thread the jobs started is gone, and the resident size
-- did not grow between iteration 20 and the last.
--
--   ih-host tests/leaks/sessions.lua HEALTHY DAMAGED SOURCE WORKDIR [N] [--no-rss]
--
-- HEALTHY: a healthy image; DAMAGED: an image with one damaged blob,
-- copied afresh for each restore; SOURCE: a healthy image to repair it
-- from.  Prints "ok"/"not ok" lines and "leaks: P passed, F failed".
local ih = require "imagehealth"
local core = require "imagehealth.core"

local healthy, damaged, source, work = arg[1], arg[2], arg[3], arg[4]
local n = tonumber(arg[5] or 100)
local check_rss = arg[6] ~= "--no-rss"
-- RSS may grow this much from iteration 20 to the last: allocator noise,
-- +-2 MiB with one malloc arena (tests/leaks/run sets MALLOC_ARENA_MAX=1:
-- with an arena per thread, fragmentation alone grew it 8 MiB in 200
-- iterations).  LeakSanitizer catches the small leaks this cannot see.
local RSS_SLACK_KB = 4 * 1024
-- the Lua heap (objects kept alive by a reference nobody drops: invisible
-- to LeakSanitizer, since lua_close frees them)
local LUA_SLACK_KB = 256

local passed, failed = 0, 0
local function ok(cond, what)
  if cond then passed = passed + 1 else failed = failed + 1 end
  print(string.format("%s - %s", cond and "ok" or "not ok", what))
end

local function status(field)
  local f = assert(io.open("/proc/self/status"))
  local st = f:read("a")
  f:close()
  return tonumber(st:match(field .. ":%s*(%d+)"))
end

local function copy(src, dst)
  local i = assert(io.open(src, "rb"))
  local data = i:read("a")
  i:close()
  local o = assert(io.open(dst, "wb"))
  o:write(data)
  o:close()
end

local function settle()
  collectgarbage()
  collectgarbage()
  core.wait_released(10000)
end

local state_dir = work .. "/state"
local threads0 = status("Threads")
local rss20, lua20
local bad = {}
local function expect(i, what, got, want)
  if got ~= want then
    bad[#bad + 1] = string.format("iteration %d: %s gave %s, expected %s", i, what, tostring(got), tostring(want))
  end
end

for i = 1, n do
  local img = string.format("%s/damaged-%d.wim", work, i % 2)
  copy(damaged, img)
  local s = assert(ih.open(img, {state_dir = state_dir}))
  expect(i, "quick check", s:check_health{} ~= nil, true)
  expect(i, "scan", (s:check_health{scan = true}), "repairable")
  local state, r = s:restore_health{sources = {source}, no_policy = true}
  expect(i, "restore", state, "healthy")
  if not state then bad[#bad + 1] = tostring(r) end
  -- a second session on a healthy image, with jobs left running: one
  -- dropped, one closed mid-scan, one read after its session's close
  local h = assert(ih.open(healthy, {state_dir = state_dir}))
  h:check_health_job{scan = true, deep = true}          -- dropped
  local j = h:check_health_job{scan = true, deep = true}
  if i % 3 == 0 then j:close() end
  local done = h:check_health_job{}
  expect(i, "job wait", (done:wait()), "healthy")
  if i % 2 == 0 then s:close() end                      -- else dropped
  if i % 4 ~= 1 then h:close() end                      -- else dropped
  s, h, j, done = nil, nil, nil, nil                    -- luacheck: ignore
  if i == 20 then
    settle()
    rss20, lua20 = status("VmRSS"), collectgarbage("count")
  end
end
settle()
ok(#bad == 0, string.format("%d iterations: every check, scan and restore gave its state%s", n,
  #bad > 0 and (": " .. table.concat(bad, "; ", 1, math.min(#bad, 5))) or ""))
local ok_verify = os.execute("wimlib-imagex verify '" .. work .. "/damaged-0.wim' >/dev/null 2>&1")
ok(ok_verify, "the last restored copy passes wimlib-imagex verify")
local threads = status("Threads")
ok(threads == threads0, string.format("threads back to %d after the loop (%d)", threads0, threads))
if check_rss and rss20 then
  local rss = status("VmRSS")
  ok(rss - rss20 < RSS_SLACK_KB, string.format("RSS at iteration 20 %d KiB, at %d %d KiB (growth under %d KiB)",
    rss20, n, rss, RSS_SLACK_KB))
end
if lua20 then
  local heap = collectgarbage("count")
  ok(heap - lua20 < LUA_SLACK_KB, string.format("Lua heap at iteration 20 %.0f KiB, at %d %.0f KiB (growth under %d KiB)",
    lua20, n, heap, LUA_SLACK_KB))
end
print(string.format("leaks: %d passed, %d failed", passed, failed))
