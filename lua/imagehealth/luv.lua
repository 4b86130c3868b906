-- imagehealth.luv: imagehealth jobs under a luv (libuv) event loop.
--
--   local uv = require "luv"
--   local ih = require "imagehealth"
--   local ihuv = require "imagehealth.luv"
--   ihuv.spawn(function()
--     local s <close> = assert(ih.open("install.wim"))
--     local state, report = s:check_health{scan = true, poll = ihuv.poll}
--     print(state, report)
--   end)
--   uv.run()
--
-- ihuv.poll(job) waits, inside a coroutine, until the job's fd is readable:
-- it starts a uv poll handle on the fd and yields; the loop resumes the
-- coroutine when the fd is readable.  The handle is stopped while nobody
-- waits, and stopped and closed before the job's fd is closed (the binding
-- calls the hook registered here from job:close(), from the job's
-- collection and from its session's close), so that libuv never watches a
-- closed or reused descriptor.  A coroutine waiting on a job that is closed
-- meanwhile is resumed (on the next loop iteration) and finds it closed.
--
--   ihuv.poll(job)        wait for the job (pass as the `poll` option)
--   ihuv.spawn(fn, ...)   run fn in a new coroutine now; errors propagate
--   ihuv.forget(fd)       what job:close() calls first (for other pollers)
--   ihuv.active()         how many poll handles are open (0 when idle)

local uv = require "luv"
local core = require "imagehealth.core"

local M = {}

-- fd -> {handle = uv poll, waiting = coroutine or nil}
local polls = {}

local function resume(co, ...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    error(debug.traceback(co, tostring(err)), 0)
  end
end

function M.forget(fd)
  local p = polls[fd]
  if not p then return end
  polls[fd] = nil
  if not p.handle:is_closing() then
    p.handle:stop()
    p.handle:close()
  end
  local co = p.waiting
  if co then
    -- resumed from the loop, not from inside job:close()
    local t = uv.new_timer()
    t:start(0, 0, function()
      t:close()
      if coroutine.status(co) == "suspended" then resume(co) end
    end)
  end
end
core.on_fd_close(M.forget)

function M.poll(job)
  local co, main = coroutine.running()
  if main then
    error("imagehealth.luv.poll: call it inside a coroutine (ihuv.spawn)", 2)
  end
  local fd = job:pollfd()
  local p = polls[fd]
  if not p then
    local h = assert(uv.new_poll(fd))
    p = {handle = h}
    polls[fd] = p
  end
  p.waiting = co
  p.handle:start("r", function()
    p.handle:stop()
    local w = p.waiting
    p.waiting = nil
    if w then resume(w) end
  end)
  coroutine.yield()
  p.waiting = nil
  return job
end

function M.spawn(fn, ...)
  local co = coroutine.create(fn)
  resume(co, ...)
  return co
end

function M.active()
  local n = 0
  for _ in pairs(polls) do n = n + 1 end
  return n
end

return M
