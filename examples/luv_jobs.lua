#!/usr/bin/env lua5.4
-- luv_jobs.lua - a luv (libuv) program running ten full scans and two
-- restores at once, with a 10 ms timer that proves the loop stays live.
--
--   lua5.4 examples/luv_jobs.lua IMAGE DAMAGED1 DAMAGED2 SOURCE
--
-- Each job runs in a coroutine (ihuv.spawn) and waits with poll = ihuv.poll:
-- a uv poll handle on the job's fd resumes it.  Exit status 0 when every job
-- gave its expected state.
local uv = require "luv"
local ih = require "imagehealth"
-- the jobs' threads yield the CPU to this loop's thread on a busy machine
ih.worker_nice(10)
local ihuv = require "imagehealth.luv"

local image, dmg1, dmg2, source = table.unpack(arg)
if not source then
  io.stderr:write("usage: luv_jobs.lua IMAGE DAMAGED1 DAMAGED2 SOURCE\n")
  os.exit(2)
end

local running, failures, ticks, worst = 0, 0, 0, 0
local timer = uv.new_timer()

local function job(name, path, want, fn)
  running = running + 1
  ihuv.spawn(function()
    local s <close> = assert(ih.open(path))
    local state, report = fn(s)
    print(string.format("%-10s %-14s %s", name, tostring(state), state and report:summary():match("^[^\n]*")
      or tostring(report)))
    if state ~= want then failures = failures + 1 end
    running = running - 1
    if running == 0 then
      timer:stop()
      timer:close()
    end
  end)
end

local last = uv.hrtime()
timer:start(10, 10, function()
  local now = uv.hrtime()
  worst = math.max(worst, (now - last) / 1e9 - 0.010)
  last = now
  ticks = ticks + 1
end)

for i = 1, 10 do
  job("scan " .. i, image, "healthy", function(s)
    return s:check_health{scan = true, poll = ihuv.poll}
  end)
end
for i, d in ipairs{dmg1, dmg2} do
  job("restore " .. i, d, "healthy", function(s)
    return s:restore_health{sources = {source}, no_policy = true, poll = ihuv.poll}
  end)
end

uv.run()
print(string.format("timer: %d ticks, worst lateness %.1f ms", ticks, worst * 1000))
os.exit(failures == 0 and 0 or 1)
