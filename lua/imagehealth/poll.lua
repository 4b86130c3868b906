-- imagehealth.poll: imagehealth jobs under a plain coroutine scheduler of
-- your own (neither cqueues nor luv).
--
--   local ihpoll = require "imagehealth.poll"
--   -- in a coroutine your scheduler runs:
--   local state, report = s:check_health{scan = true, poll = ihpoll.wait}
--
-- ihpoll.wait(job) (the `poll` option) yields ONE value to your scheduler, a
-- Wait: {fd = the job's fd, events = "r", timeout = seconds or nil}, the
-- job's pollfd()/events()/timeout() (cqueues' protocol) as plain fields.
-- Resume the coroutine (with no values) once fd is readable, or at once if
-- timeout is 0 or w.closed is true (the job was closed meanwhile: its fd is
-- gone, and the job's wait then returns what the job had).  It never spins:
-- the fd stays quiet until a worker posts an event.
--
-- ihpoll.ready(waits, timeout) -> the waits of the list that are ready,
-- waiting at most timeout seconds (nil: until one is) in one poll(2) over
-- all their fds; for a scheduler with nothing better to wait with.  Closed
-- waits and timeout-0 waits are ready at once.
--
--   ihpoll.is_wait(v)   whether a value yielded is a Wait
--   ihpoll.now()        seconds on a monotonic clock (for your timers)
--   ihpoll.fds(fds, timeout [, events]) -> ready fds: poll(2) itself
--
-- Outside any coroutine, ihpoll.wait blocks in C on the fd (up to
-- WAIT_MS_PLAIN, so that the job's wait loop sees Ctrl-C), never spinning.
-- See examples/coroutine_scheduler.lua for a whole scheduler.

local core = require "imagehealth.core"

local M = {}

M.WAIT_MS_PLAIN = 200

local Wait = {__name = "imagehealth.Wait"}
Wait.__index = Wait
function Wait.__tostring(w)
  return string.format("imagehealth.Wait: fd %d, events %s%s%s", w.fd, w.events,
    w.timeout and string.format(", timeout %g s", w.timeout) or "", w.closed and " (closed)" or "")
end
M.Wait = Wait

-- fd -> the Waits yielded on it and not yet resumed (weak: a coroutine
-- dropped by its scheduler must not pin them)
local waiting = {}

-- Before a job's fd is closed (job:close(), its collection, its session's
-- close): its waiters are marked, so that no scheduler polls a closed or
-- reused descriptor, and ready() hands them back at once.
core.on_fd_close(function(fd)
  local list = waiting[fd]
  if not list then return end
  waiting[fd] = nil
  for w in pairs(list) do
    w.closed = true
  end
end)

function M.is_wait(v)
  return getmetatable(v) == Wait
end

M.now = core.monotime
M.fds = core.poll

function M.wait(job)
  local _, main = coroutine.running()
  local fd = job:pollfd()
  if main then
    core.poll({fd}, M.WAIT_MS_PLAIN)
    return job
  end
  local timeout = job:timeout()
  local w = setmetatable({fd = fd, events = job:events(), timeout = timeout,
                          deadline = timeout and core.monotime() + timeout}, Wait)
  local list = waiting[fd]
  if not list then
    list = setmetatable({}, {__mode = "k"})
    waiting[fd] = list
  end
  list[w] = true
  coroutine.yield(w)
  list[w] = nil
  if not next(list) and waiting[fd] == list then
    waiting[fd] = nil
  end
  return job
end

-- Whether a wait is ready without looking at its fd: closed, or its
-- timeout passed.
local function due(w, now)
  return w.closed or (w.deadline and w.deadline <= now)
end

-- The timeout for poll(2) in ms: the caller's, capped by the waits' own.
local function poll_ms(waits, timeout, now)
  local t = timeout
  for _, w in ipairs(waits) do
    if w.deadline and (not t or w.deadline - now < t) then
      t = w.deadline - now
    end
  end
  if not t then return -1 end
  return math.max(0, math.ceil(t * 1000))
end

function M.ready(waits, timeout)
  local now = core.monotime()
  local out, fds, evs, seen = {}, {}, {}, {}
  for _, w in ipairs(waits) do
    if due(w, now) then
      out[#out + 1] = w
      seen[w] = true
    else
      fds[#fds + 1] = w.fd
      evs[#evs + 1] = w.events
    end
  end
  local ms = #out > 0 and 0 or poll_ms(waits, timeout, now)
  if #fds == 0 and ms < 0 then
    return out -- nothing to wait for, and no end to the wait
  end
  local set = {}
  for _, fd in ipairs(core.poll(fds, ms, evs)) do
    set[fd] = true
  end
  now = core.monotime()
  for _, w in ipairs(waits) do
    if not seen[w] and (set[w.fd] or due(w, now)) then
      out[#out + 1] = w
    end
  end
  return out
end

return M
