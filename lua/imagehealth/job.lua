-- imagehealth.job: the Lua half of imagehealth.Job.
--
-- The C core runs a job on worker threads; it never calls Lua.  This module
-- drives a job from the calling coroutine: wait a short while in C for the
-- job's fd, drain the queued events, hand each to the progress callback from
-- Lua (so the callback may coroutine.yield(), e.g. to a scheduler), check
-- the cancel token, and repeat until the job is done.
--
-- Methods added to imagehealth.Job (the C type) here:
--   job:wait([{progress=fn, poll=fn, poll_forget=fn}])
--                              drive to the end; -> state, report | nil, err
--                              (ih.open_job's: Session | nil, err; s:info_job's:
--                              info | nil, err)
--   job:result()               after done: the same
--   job:drain([max])           queued events, each with a readable tostring
--   job:progress()             progress snapshot {phase, percent, ...}
-- and from C: pollfd(), events() ("r"), timeout(), done(), cancel(),
-- session(), kind(), close(), closed().  (wait_raw, check_start and restore_start
-- are private: M.private.)

local core = require "imagehealth.core"
local report = require "imagehealth.report"

local M = {}

-- Per-job Lua data (progress callback and cancel token given at start).
local jobdata = setmetatable({}, {__mode = "k"})

-- How long one wait in C may block the Lua state, in milliseconds.  With a
-- callback, short, so that the callback (and whatever it yields to) runs
-- often; without one, longer, but still short enough for lua.c's Ctrl-C hook.
M.WAIT_MS_CALLBACK = 50
M.WAIT_MS_PLAIN = 200

local Event = {__name = "imagehealth.Event"}
M.Event = Event

local function progress_string(ev)
  local pct = ev.percent and string.format(" %.1f%%", ev.percent) or ""
  local bytes = ""
  if ev.bytes_total and ev.bytes_total > 0 then
    bytes = string.format(" (%s of %s)", report.format_bytes(ev.bytes_done),
      report.format_bytes(ev.bytes_total))
  end
  return string.format("%s%s%s", ev.phase or "?", pct, bytes)
end
M.progress_string = progress_string

function Event.__tostring(ev)
  local s = string.format("imagehealth.Event: %s, %s", ev.type or "progress", progress_string(ev))
  if ev.text and ev.text ~= ev.phase then
    s = s .. ": " .. ev.text
  end
  return s
end

local Progress = {__name = "imagehealth.Progress"}
function Progress.__tostring(p)
  return string.format("imagehealth.Progress: %s, %.1f s", progress_string(p), p.elapsed or 0)
end

-- The C methods only this layer uses, taken out of the types' method
-- tables (a user at the REPL sees the public methods alone); the specs reach
-- them here.
M.private = {
  wait_raw = core.interpose("imagehealth.Job", "wait_raw", nil),
  check_start = core.interpose("imagehealth.Session", "check_start", nil),
  restore_start = core.interpose("imagehealth.Session", "restore_start", nil),
  info_start = core.interpose("imagehealth.Session", "info_start", nil),
}
core.interpose("imagehealth.Job", "result_raw", nil)
local c_wait_raw = M.private.wait_raw

local c_drain = core.interpose("imagehealth.Job", "drain", nil)
local c_progress = core.interpose("imagehealth.Job", "progress", nil)
local c_result = core.interpose("imagehealth.Job", "result", nil)

local function check_open(job)
  if job:closed() then
    error("attempt to use a closed imagehealth.Job", 3)
  end
end

local function drain(job, max)
  local evs = c_drain(job, max)
  for i = 1, #evs do
    setmetatable(evs[i], Event)
  end
  return evs
end
-- Answers one request event with the job's hooks (a restore's scripted
-- functions, see M.drive), or "not found" when there are none.  If a
-- scripted function raises, the job is cancelled and hooks.script_err set
-- (the operation's error, with the traceback).
local function answer_one(job, ev, hooks, wait_room)
  local answer = hooks and hooks.answer
  if not answer or hooks.script_err then
    job:reply_end(ev.id, false, answer and "cancelled" or "nothing answers requests")
    return
  end
  local ok, e = xpcall(answer, debug.traceback, job, ev, wait_room)
  if ok then
    return
  end
  local what = hooks.describe or "a scripted function"
  hooks.describe = nil
  -- cancel first: the worker waiting for this answer must see the cancel,
  -- not a "not found" it would go on from (to the commit)
  job:cancel()
  job:reply_end(ev.id, false, "raised an error")
  local msg, first = tostring(e), nil
  if getmetatable(e) == M.Raised then
    first = tostring(e.message)
  else
    first = msg:match("^[^\n]*")
  end
  local err = core.error("cancelled", string.format("%s raised an error: %s; the restore was "
    .. "cancelled before anything was written: the image is as it was", what, first))
  err.traceback = msg
  err.raised = true
  hooks.script_err = err
end

-- job:drain([max]): the queued events but requests, which are answered
-- here with the scripted functions the job was started with (so a caller
-- polling the job's fd and draining it needs nothing more; they may yield).
core.interpose("imagehealth.Job", "drain", function(job, max)
  check_open(job)
  local evs = drain(job, max)
  local out, reqs = {}, {}
  local function sort(list)
    for i = 1, #list do
      local ev = list[i]
      if ev.type == "request" then
        reqs[#reqs + 1] = ev
      else
        out[#out + 1] = ev
      end
    end
  end
  sort(evs)
  if #reqs == 0 then
    return evs
  end
  local data = jobdata[job] or {}
  local function wait_room()
    if data.poll then
      data.poll(job)
    else
      job:wait_raw(M.WAIT_MS_CALLBACK)
    end
    sort(drain(job))
  end
  local i = 1
  while i <= #reqs do
    answer_one(job, reqs[i], data.hooks, wait_room)
    i = i + 1
  end
  return out
end)

core.interpose("imagehealth.Job", "progress", function(job)
  check_open(job)
  return setmetatable(c_progress(job), Progress)
end)

-- The Lua type an info job's table gets (set by init.lua: imagehealth.Info).
M.Info = nil

-- job:result() -> state, report | nil, err; an open job's: Session | nil,
-- err; an info job's: info | nil, err
local function result(job)
  local data = jobdata[job]
  if data and data.hooks and data.hooks.script_err then
    return nil, data.hooks.script_err
  end
  local r, err = c_result(job)
  if not r then
    return nil, err
  end
  local kind = job:kind()
  if kind == "open" then
    return r
  elseif kind == "info" then
    if M.Info and getmetatable(r) == nil then
      setmetatable(r, M.Info)
    end
    return r
  end
  if not report.is_report(r) then
    report.new(r)
  end
  return r.state, r
end
core.interpose("imagehealth.Job", "result", result)

-- Remembers the callback and token a job was started with.
function M.attach(job, opts, hooks)
  jobdata[job] = {progress = opts.progress, cancel = opts.cancel, poll = opts.poll,
                  poll_forget = opts.poll_forget, hooks = hooks}
  return job
end

local function check_callback(f, name)
  if f ~= nil and type(f) ~= "function" then
    local mt = getmetatable(f)
    if not (mt and mt.__call) then
      error(string.format("bad option '%s' (function expected, got %s)", name, type(f)), 3)
    end
  end
end
M.check_callback = check_callback

M.WAIT_KEYS = {"progress", "poll", "poll_forget"}

-- Refuses keys of opts not in the list known (misspelt options must not be
-- ignored): the error names the key and the known ones, at `level`.
function M.check_keys(opts, fname, known, level)
  local set = {}
  for _, k in ipairs(known) do
    set[k] = true
  end
  for k in pairs(opts) do
    if not set[k] then
      local names = {}
      for _, n in ipairs(known) do
        names[#names + 1] = n
      end
      table.sort(names)
      error(string.format("bad argument #1 to '%s' (unknown option %s; known: %s)", fname,
        type(k) == "string" and ("'" .. k .. "'") or ("[" .. tostring(k) .. "]"),
        table.concat(names, ", ")), level + 1)
    end
  end
end

-- Drives job to its end; see the header.  Returns state, report | nil, err.
-- If the callback raises, the job is cancelled and the error propagates.
-- poll, if given, is called as poll(job) to wait for the job's fd instead of
-- blocking in C: with cqueues, `poll = cqueues.poll` yields to the
-- controller, so an event loop never blocks; imagehealth.luv's poll and
-- imagehealth.poll's wait (plain coroutine schedulers) do the same.
-- Before the job (and so its fd) is closed, an event loop that polled the fd
-- must forget it: cqueues, for one, fails later with EBADF otherwise.
-- poll_forget(fd) does that; for cqueues.poll it is found by itself.
local function forgetter(poll, poll_forget)
  if poll_forget or not poll then
    return poll_forget
  end
  local cq = package.loaded.cqueues
  if type(cq) == "table" and poll == cq.poll then
    return cq.cancel
  end
end

-- hooks (a restore's scripted functions, see init.lua), optional:
--   hooks.answer(job, ev, wait_room) answers a request event (ev.type ==
--     "request"); called here, in the caller's coroutine, so it may yield;
--     wait_room() waits until a reply refused as "busy" may be retried.
--   hooks.finish(state, report) -> state, report | nil, err: after the job.
--   hooks.describe: set by answer to what it is calling, for the error.
-- Request events never reach the progress callback.  If answer raises, the
-- job is cancelled (before any commit, so the image is as it was), driven
-- to its end, and the operation's error carries the Lua traceback.
function M.drive(job, progress, token, poll, poll_forget, hooks)
  local wait_ms = progress and M.WAIT_MS_CALLBACK or M.WAIT_MS_PLAIN
  local forget = forgetter(poll, poll_forget)
  local _ <close> = setmetatable({}, {__close = function(_, err)
    if not job:closed() then
      if err ~= nil then
        job:cancel()
      end
      if forget then
        forget(job:pollfd())
      end
    end
  end})
  local pending, head, tail = {}, 1, 0
  local function pump()
    local evs = drain(job)
    for i = 1, #evs do
      tail = tail + 1
      pending[tail] = evs[i]
    end
  end
  -- a reply was refused for lack of room: wait for the job to make some
  local function wait_room()
    if poll then
      poll(job)
    else
      job:wait_raw(M.WAIT_MS_CALLBACK)
    end
    pump()
  end
  local function handle(ev)
    if ev.type ~= "request" then
      if progress then
        progress(ev) -- may yield: we are in Lua, in the caller's coroutine
      end
      return
    end
    answer_one(job, ev, hooks, wait_room)
  end
  while true do
    -- closed meanwhile (by another coroutine, or its session's close):
    -- the outcome if it was known, else cancelled
    if job:closed() then
      return result(job)
    end
    local done
    if poll then
      if not job:done() then
        poll(job)
        if job:closed() then
          return result(job)
        end
      end
      done = job:done()
    else
      done = c_wait_raw(job, wait_ms)
    end
    pump()
    local had = head <= tail
    while head <= tail do
      local ev = pending[head]
      pending[head] = nil
      head = head + 1
      handle(ev)
    end
    -- (the core watches the token too; this only makes it prompt)
    if token and not token:closed() and token:cancelled() and not job:done() then
      job:cancel()
    end
    if done and not had then
      break
    end
  end
  local script_err = hooks and hooks.script_err
  if script_err then
    local r = c_result(job)
    if r then -- (cannot happen: requests come before the commit)
      script_err.message = script_err.message:gsub("; the restore was cancelled.*$",
        "; the restore had completed already")
      if not report.is_report(r) then
        report.new(r)
      end
      script_err.report = r
    end
    return nil, script_err
  end
  if hooks and hooks.finish then
    local state, r = result(job)
    if not state then
      return nil, r
    end
    return hooks.finish(state, r)
  end
  return result(job)
end

-- job:wait([{progress = fn, poll = fn}]) -> state, report | nil, err
core.interpose("imagehealth.Job", "wait", function(job, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'wait' (table expected, got " .. type(opts) .. ")", 2)
  end
  if opts ~= nil then
    M.check_keys(opts, "wait", M.WAIT_KEYS, 2)
  end
  local data = jobdata[job] or {}
  local progress = opts and opts.progress or data.progress
  local poll = opts and opts.poll or data.poll
  local forget = opts and opts.poll_forget or data.poll_forget
  check_callback(progress, "progress")
  check_callback(poll, "poll")
  check_callback(forget, "poll_forget")
  if job:closed() then
    -- a closed job can still give the result it collected
    return result(job)
  end
  return M.drive(job, progress, data.cancel, poll, forget, data.hooks)
end)

return M
