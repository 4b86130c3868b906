#!/usr/bin/env lua5.4
-- coroutine_scheduler.lua - a plain coroutine scheduler (no cqueues, no luv)
-- running several full scans and a restore at once, with a 10 ms timer.
--
--   lua5.4 examples/coroutine_scheduler.lua IMAGE DAMAGED SOURCE [SCANS]
--
-- Jobs wait with poll = ihpoll.wait: it yields a Wait {fd, events, timeout}
-- to the scheduler, which waits for all of them and its timers in one
-- poll(2) (ihpoll.ready) and never spins.  Prints one line per job, the
-- timer's worst lateness, and the CPU time of the scheduler's own thread
-- against the wall time.  Exit status 0 when every job gave its state.
local ih = require "imagehealth"
local ihpoll = require "imagehealth.poll"
-- the jobs' threads yield the CPU to this thread on a busy machine
ih.worker_nice(10)

local image, damaged, source, scans = arg[1], arg[2], arg[3], tonumber(arg[4] or 6)
if not source then
  io.stderr:write("usage: coroutine_scheduler.lua IMAGE DAMAGED SOURCE [SCANS]\n")
  os.exit(2)
end

-- The scheduler: runnable coroutines, sleepers (a number yielded: the
-- time to wake) and waiters (a Wait yielded).
local runnable, sleepers, waiters, wakeups = {}, {}, {}, 0

local function spawn(fn) runnable[#runnable + 1] = coroutine.create(fn) end
local function sleep(s) coroutine.yield(ihpoll.now() + s) end

local function step(co)
  local ok, what = coroutine.resume(co)
  if not ok then error(debug.traceback(co, tostring(what)), 0) end
  if coroutine.status(co) == "dead" then return end
  if ihpoll.is_wait(what) then waiters[what] = co
  elseif type(what) == "number" then sleepers[co] = what
  else runnable[#runnable + 1] = co end
end

local function run()
  while true do
    local batch = runnable
    runnable = {}
    for _, co in ipairs(batch) do step(co) end
    if #runnable == 0 and not next(sleepers) and not next(waiters) then return end
    local now, first = ihpoll.now(), nil
    for _, at in pairs(sleepers) do first = math.min(first or at, at) end
    local timeout = #runnable > 0 and 0 or first and math.max(0, first - now) or nil
    local waits = {}
    for w in pairs(waiters) do waits[#waits + 1] = w end
    wakeups = wakeups + 1
    for _, w in ipairs(ihpoll.ready(waits, timeout)) do
      runnable[#runnable + 1] = waiters[w]
      waiters[w] = nil
    end
    now = ihpoll.now()
    for co, at in pairs(sleepers) do
      if at <= now then sleepers[co] = nil; runnable[#runnable + 1] = co end
    end
  end
end

-- The program: the jobs, and a timer proving the loop stays live.
local running, failures, ticks, worst = 0, 0, 0, 0
local function job(name, path, want, fn)
  running = running + 1
  spawn(function()
    local s <close> = assert(ih.open(path))
    local state, report = fn(s)
    print(string.format("%-10s %-14s %s", name, tostring(state), state and report:summary():match("^[^\n]*")
      or tostring(report)))
    if state ~= want then failures = failures + 1 end
    running = running - 1
  end)
end
for i = 1, scans do
  job("scan " .. i, image, "healthy", function(s)
    return s:check_health{scan = true, deep = true, poll = ihpoll.wait}
  end)
end
job("restore 1", damaged, "healthy", function(s)
  return s:restore_health{sources = {source}, no_policy = true, poll = ihpoll.wait}
end)
spawn(function()
  local last = ihpoll.now()
  while running > 0 do
    sleep(0.010)
    local now = ihpoll.now()
    worst, last, ticks = math.max(worst, now - last - 0.010), now, ticks + 1
  end
end)

-- CPU time of this (the scheduler's) thread, not of the job's workers
local function thread_cpu()
  local f = assert(io.open("/proc/thread-self/stat"))
  local st = f:read("a"):gsub("^.*%) ", "")
  f:close()
  local fields = {}
  for x in st:gmatch("%S+") do fields[#fields + 1] = x end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100 -- utime + stime, in ticks of 10 ms
end

local t0, c0 = ihpoll.now(), thread_cpu()
run()
print(string.format("timer: %d ticks, worst lateness %.1f ms", ticks, worst * 1000))
print(string.format("scheduler thread: %.2f s CPU in %.2f s wall, %d wake-ups", thread_cpu() - c0,
  ihpoll.now() - t0, wakeups))
os.exit(failures == 0 and 0 or 1)
