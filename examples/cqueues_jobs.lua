#!/usr/bin/env lua5.4
-- cqueues_jobs.lua - a cqueues program running ten full scans and two
-- restores at once, with a 10 ms timer that proves the loop stays live.
--
--   lua5.4 examples/cqueues_jobs.lua IMAGE DAMAGED1 DAMAGED2 SOURCE
--
-- scans IMAGE ten times and repairs DAMAGED1 and DAMAGED2 from SOURCE, all
-- at once; prints one line per job and the longest the timer waited beyond
-- its 10 ms.  Exit status 0 when every job gave its expected state.
local cqueues = require "cqueues"
local ih = require "imagehealth"
-- the jobs' threads yield the CPU to this loop's thread on a busy machine
ih.worker_nice(10)

local image, dmg1, dmg2, source = table.unpack(arg)
if not source then
  io.stderr:write("usage: cqueues_jobs.lua IMAGE DAMAGED1 DAMAGED2 SOURCE\n")
  os.exit(2)
end

local loop = cqueues.new()
local running, failures, ticks, worst = 0, 0, 0, 0

local function job(name, path, want, fn)
  running = running + 1
  loop:wrap(function()
    local s <close> = assert(ih.open(path))
    local state, report = fn(s)
    print(string.format("%-10s %-14s %s", name, tostring(state), state and report:summary():match("^[^\n]*")
      or tostring(report)))
    if state ~= want then failures = failures + 1 end
    running = running - 1
  end)
end

for i = 1, 10 do
  job("scan " .. i, image, "healthy", function(s)
    return s:check_health{scan = true, poll = cqueues.poll}
  end)
end
for i, d in ipairs{dmg1, dmg2} do
  job("restore " .. i, d, "healthy", function(s)
    return s:restore_health{sources = {source}, no_policy = true, poll = cqueues.poll}
  end)
end

loop:wrap(function()
  local last = cqueues.monotime()
  while running > 0 do
    cqueues.sleep(0.010)
    local now = cqueues.monotime()
    worst = math.max(worst, now - last - 0.010)
    last = now
    ticks = ticks + 1
  end
end)

assert(loop:loop())
print(string.format("timer: %d ticks, worst lateness %.1f ms", ticks, worst * 1000))
os.exit(failures == 0 and 0 or 1)
