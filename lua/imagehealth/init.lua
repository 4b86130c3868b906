-- imagehealth: check and repair the health of Windows images (WIM, ESD,
-- split WIM), the way DISM's CheckImageHealth and RestoreImageHealth do.
--
--   local ih = require "imagehealth"
--   local s <close> = assert(ih.open("install.wim", {index = 1}))
--   print(s:info())
--   local state, report = s:check_health{scan = true, progress = function(ev)
--     io.stderr:write(tostring(ev), "\n")
--   end}
--   if not state then error(report) end        -- report is the error here
--   for path, damage in report:files() do print(path, damage.reason) end
--   if state == "repairable" then
--     state, report = s:restore_health{sources = {"wim:/mnt/good/install.wim:1"}}
--     print(report)       -- what was repaired from where, what is left
--   end
--
-- Expected failures return nil, err (err.code, err.hresult, err.message;
-- tostring(err) reads well); misuse raises, and so does using a closed
-- object ("attempt to use a closed imagehealth.Session").
--
--   ih.open(path [, {index=, state_dir=, threads=}]) -> Session | nil, err
--   ih.open_job(path [, {..., progress=, cancel=, poll=}]) -> Job (its
--     result: the Session), for hosts that must not block
--   ih.cancel_token() -> CancelToken (:cancel(), :cancelled(), :close())
--   ih.HEALTHY, ih.REPAIRABLE, ih.NONREPAIRABLE (0, 1, 2), ih.states
--   ih.errors (list and map of {code, hresult}), ih.error(code, msg),
--   ih.is_error(v), ih.version, ih.format_bytes(n)
--
--   s:info() -> Info | nil, err           s:path(), s:closed(), s:close()
--   s:info_job{progress=, cancel=, poll=} -> Job (its result: the Info)
--   s:check_health{scan=, progress=, cancel=, threads=, no_record=, poll=}
--     -> state, Report | nil, err
--   s:check_health_job{...} -> Job | nil, err
--   s:restore_health{sources=, limit_access=, path_map=, no_policy=,
--                    rebuild=, use_record=, threads=, progress=, cancel=, poll=,
--                    http=, default_sources_file=}
--     -> state, Report | nil, err
--   s:restore_health_job{...} -> Job | nil, err
--   s:restore_plan{...}, s:restore_plan_job{...}: a dry run (nothing written)
--   Scripted restores: sources may hold {name=, lookup=function(blob)} tables;
--   order=function(blob, sources), accept=function(blob), on_unrepairable=
--   function(blob), on_repaired=function(blob, source); see restore_health.
--   Unknown option keys raise, naming the known ones (ih.OPTIONS).
--
--   Job (see job.lua): wait, result, progress, drain, cancel, done, pollfd,
--   events, timeout, close.  ih.help() at the REPL.  Report (see report.lua): state,
--   health, damaged, problems, ..., :summary(), :files(), :lines().
--   Closing a session stops and closes its jobs.

local core = require "imagehealth.core"
local report = require "imagehealth.report"
local job = require "imagehealth.job"

local M = {}

M.version = core.version
M._VERSION = "imagehealth " .. M.version

-- DismImageHealthState numbers, and the names the reports use.
M.HEALTHY = core.HEALTHY
M.REPAIRABLE = core.REPAIRABLE
M.NONREPAIRABLE = core.NONREPAIRABLE
M.states = {
  [M.HEALTHY] = "healthy", [M.REPAIRABLE] = "repairable", [M.NONREPAIRABLE] = "nonrepairable",
  healthy = M.HEALTHY, repairable = M.REPAIRABLE, nonrepairable = M.NONREPAIRABLE,
}

-- Error codes: ih.errors[i] = {code = "not_found", hresult = 0x80070002,
-- errcode = i}, in the C enum's order, and ih.errors.not_found = the same.
M.errors = core.errcodes()
for _, e in ipairs(M.errors) do
  M.errors[e.code] = e
end

-- ih.error("cancelled", "message") -> an Error value (not raised)
M.error = core.error
local error_mt = getmetatable(core.error("internal"))
M.Error = error_mt

function M.is_error(v)
  return type(v) == "table" and getmetatable(v) == error_mt
end

M.format_bytes = report.format_bytes
M.Report = report.Report

-- ih.open(path [, {index=, state_dir=, threads=, reference=, case_insensitive=,
--   http= (an http(s) reference: ca_file, client_cert, proxy, headers...)}])
--   -> Session | nil, err
-- With a directory, the session is on an applied image tree, checked file
-- by file against reference ("wim:PATH:INDEX", "seal:FILE", or "seal" or
-- nil for the tree's seal in the state store); s:seal([file]) records the
-- reference's manifest so that later checks need no image.
function M.open(path, opts)
  if type(path) ~= "string" then
    error("bad argument #1 to 'open' (string expected, got " .. type(path) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'open' (table expected, got " .. type(opts) .. ")", 2)
  end
  if opts ~= nil then
    job.check_keys(opts, "open", M.OPTIONS.open, 2)
  end
  local ok, s, err = pcall(core.open, path, opts)
  if not ok then
    -- a bad option: at the caller's line, named as the caller knows it
    error((tostring(s):gsub("'imagehealth%.core%.open'", "'open'")), 2)
  end
  return s, err
end

-- The Job a *_start call gave (pcall's results), driven with the caller's
-- progress, cancel and poll; a misuse error raised at the caller's line
-- under the name the caller used (fname), not the internal one (cname, a
-- pattern); nil, err as the core gave it.
-- A job's progress, poll and poll_forget must be callable: raised at the
-- line that called fname, before anything starts.
local function check_callbacks(opts, fname)
  for _, k in ipairs{"progress", "poll", "poll_forget"} do
    local f = opts[k]
    local mt = getmetatable(f)
    if f ~= nil and type(f) ~= "function" and not (mt and mt.__call) then
      error(string.format("bad option '%s' to '%s' (function expected, got %s)", k, fname, type(f)), 3)
    end
  end
end

local function started(fname, cname, opts, ok, j, err)
  if not ok then
    error((tostring(j):gsub(cname, "'" .. fname .. "'")), 3)
  end
  if not j then
    return nil, err
  end
  return job.attach(j, {progress = opts.progress, cancel = opts.cancel, poll = opts.poll,
                        poll_forget = opts.poll_forget})
end

-- ih.open_job(path [, {index=, state_dir=, threads=, reference=,
--   case_insensitive=, http=, progress=, cancel=, poll=, poll_forget=}]) -> Job | nil, err
-- ih.open as a job, for a host that must not block while a large image
-- (or a split set's parts) is opened: driven like a check's job
-- (job:wait{poll = cqueues.poll}, or polled), job:result() -> Session | nil,
-- err (err as ih.open gives it: not_found, not_wim, ...).  Closing the job
-- before it ended closes what it opened.
function M.open_job(path, opts)
  if type(path) ~= "string" then
    error("bad argument #1 to 'open_job' (string expected, got " .. type(path) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'open_job' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  job.check_keys(opts, "open_job", M.OPTIONS.open_job, 2)
  check_callbacks(opts, "open_job")
  local j, err = started("open_job", "'imagehealth%.core%.open_start'", opts,
                         pcall(core.open_start, path, opts))
  return j, err -- (not a tail call: started raises at level 3)
end

-- ih.cancel_token() -> CancelToken with :cancel(), :cancelled(), :close()
M.cancel_token = core.cancel_token

----------------------------------------------------------------- Session

local Info = {__name = "imagehealth.Info"}
M.Info = Info
job.Info = Info -- (an info job's result)

local function version_string(v)
  return string.format("0x%x", v or 0)
end

function Info.__tostring(info)
  local out = {}
  local function add(fmt, ...)
    out[#out + 1] = string.format(fmt, ...)
  end
  add("%s", info.path)
  add("  WIM version %s, %s%s, %s chunks, %s, GUID %s", version_string(info.version),
    info.compression, info.solid and " (solid)" or "", report.format_bytes(info.chunk_size),
    report.plural(info.parts or 1, "part"), info.guid)
  add("  %s (boot index %d), %s, %s on disk, integrity table: %s",
    report.plural(info.image_count or 0, "image"), info.boot_index or 0,
    report.plural(info.blob_count or 0, "blob"), report.format_bytes(info.file_size),
    info.has_integrity and "yes" or "no")
  for _, im in ipairs(info.images or {}) do
    add("  [%d] %q%s: %s, %s, %s, %s%s", im.index, im.name or "",
      (im.description and im.description ~= "") and (" (" .. im.description .. ")") or "",
      report.plural(im.file_count or 0, "file"), report.plural(im.dir_count or 0, "directory", "directories"),
      report.plural(im.blob_count or 0, "blob"), report.format_bytes(im.total_bytes),
      im.metadata_ok and "" or ", METADATA DAMAGED")
  end
  return table.concat(out, "\n")
end

-- Raises at the caller of a Lua-level method when the object was closed
-- (the C methods raise the same message themselves).
local function check_open(obj)
  if obj:closed() then
    error("attempt to use a closed " .. getmetatable(obj).__name, 3)
  end
end
M._check_open = check_open

local c_info = core.interpose("imagehealth.Session", "info", nil)

-- s:info() -> table (prints readably) | nil, err
core.interpose("imagehealth.Session", "info", function(s)
  check_open(s)
  local info, err = c_info(s)
  if not info then
    return nil, err
  end
  return setmetatable(info, Info)
end)

-- s:info_job{progress=, cancel=, poll=, poll_forget=} -> Job | nil, err
-- s:info() as a job (it reads and decodes every selected image's metadata):
-- driven like a check's job; job:result() -> the same table s:info() gives
-- | nil, err.  It runs beside checks; during a restore it is refused (busy).
core.interpose("imagehealth.Session", "info_job", function(s, opts)
  check_open(s)
  opts = opts == nil and {} or opts
  if type(opts) ~= "table" then
    error("bad argument #1 to 'info_job' (table expected, got " .. type(opts) .. ")", 2)
  end
  job.check_keys(opts, "info_job", M.OPTIONS.info_job, 2)
  check_callbacks(opts, "info_job")
  local j, err = started("info_job", "'info_start'", opts,
                         pcall(job.private.info_start, s, {cancel = opts.cancel}))
  return j, err -- (not a tail call: started raises at level 3)
end)

-- The options each call knows; any other key is refused (a misspelt
-- option must not be silently ignored).
local CHECK_KEYS = {"scan", "deep", "progress", "cancel", "threads", "no_record", "poll",
  "poll_forget"}
local RESTORE_KEYS = {"sources", "limit_access", "path_map", "no_policy", "rebuild", "use_record",
  "threads", "progress", "cancel", "poll", "poll_forget", "policy_hive", "order", "accept",
  "on_unrepairable", "on_repaired", "no_reference_source", "http", "default_sources_file"}
local PLAN_KEYS = {"sources", "limit_access", "path_map", "no_policy", "use_record", "threads",
  "progress", "cancel", "poll", "poll_forget", "policy_hive", "order", "accept", "on_unrepairable",
  "no_reference_source", "http", "default_sources_file"}
local JOB_KEYS = {"progress", "cancel", "poll", "poll_forget"}
M.OPTIONS = {
  open = {"index", "state_dir", "threads", "reference", "case_insensitive", "http"},
  open_job = {"index", "state_dir", "threads", "reference", "case_insensitive", "http",
              table.unpack(JOB_KEYS)},
  info_job = JOB_KEYS,
  check_health = CHECK_KEYS, check_health_job = CHECK_KEYS,
  restore_health = RESTORE_KEYS, restore_health_job = RESTORE_KEYS,
  restore_plan = PLAN_KEYS, restore_plan_job = PLAN_KEYS,
  wait = job.WAIT_KEYS,
}

local function check_opts(opts, fname)
  if opts == nil then
    return {}
  end
  if type(opts) ~= "table" then
    error(string.format("bad argument #1 to '%s' (table expected, got %s)", fname, type(opts)), 3)
  end
  job.check_keys(opts, fname, M.OPTIONS[fname], 3)
  job.check_callback(opts.progress, "progress")
  job.check_callback(opts.poll, "poll")
  job.check_callback(opts.poll_forget, "poll_forget")
  return opts
end

-- Calls a C starter; its misuse errors are raised at the caller of the
-- operation (level 4: here, the operation's wrapper, the caller).
local function c_start(f, ...)
  local ok, j, err = pcall(f, ...)
  if not ok then
    error(j, 4)
  end
  return j, err
end

local function start(s, opts)
  -- the C side checks the option types
  local j, err = c_start(job.private.check_start, s, {scan = opts.scan, deep = opts.deep,
                                                     threads = opts.threads, cancel = opts.cancel,
                                                     no_record = opts.no_record})
  return j, err -- (not a tail call: c_start counts this frame)
end

-- Each long operation is two methods: NAME{...} drives the job to its end
-- and returns state, report (or nil, err); NAME_job{...} returns the Job
-- itself, to drive with job:wait(), or to poll (job:pollfd(),
-- job:events(), job:timeout()) and then call job:result().  progress(ev) is
-- called from the caller's coroutine and may yield.  poll(job), if given,
-- waits for the job instead of a short blocking wait in C (e.g.
-- cqueues.poll, so that a cqueues loop keeps running); poll_forget(fd) is
-- called before the job's fd is closed (cqueues.cancel for cqueues.poll, by
-- default).
local function define_operation(name, starter)
  core.interpose("imagehealth.Session", name, function(s, opts)
    check_open(s)
    opts = check_opts(opts, name)
    local j, err, hooks = starter(s, opts, name)
    if not j then
      return nil, err
    end
    local _ <close> = j
    return job.drive(j, opts.progress, opts.cancel, opts.poll, opts.poll_forget, hooks)
  end)
  local job_name = name .. "_job"
  core.interpose("imagehealth.Session", job_name, function(s, opts)
    check_open(s)
    opts = check_opts(opts, job_name)
    local j, err, hooks = starter(s, opts, job_name)
    if not j then
      return nil, err
    end
    return job.attach(j, {progress = opts.progress, cancel = opts.cancel, poll = opts.poll,
                          poll_forget = opts.poll_forget}, hooks)
  end)
end

-- s:check_health{scan=, deep=, progress=, cancel=, threads=, no_record=, poll=}
--   -> state, report | nil, err   (err.code == "cancelled" when cancelled)
--   deep = true (with scan): decompress every blob, never take unchanged
--   bytes from fingerprints; report.scan_kind says how the check ran
-- s:check_health_job{...} -> Job | nil, err
define_operation("check_health", start)

----------------------------------------------------------------- restore

-- path_map: {["C:\\Src"] = "/mnt/src", ...} or a list of pairs
-- {{"C:\\Src", "/mnt/src"}, ...}.  Returns the list of pairs the C side
-- takes: a list keeps its order; a map is sorted by key (so that which
-- prefix is tried first does not depend on hashing).
local function path_map_list(pm, fname)
  if pm == nil then
    return nil
  end
  if type(pm) ~= "table" then
    error(string.format("bad option 'path_map' to '%s' (table expected, got %s)", fname, type(pm)), 4)
  end
  local list = {}
  if #pm > 0 then
    for i, pair in ipairs(pm) do
      if type(pair) ~= "table" or type(pair[1]) ~= "string" or type(pair[2]) ~= "string" then
        error(string.format("bad option 'path_map' to '%s' (item %d: {windows_prefix, local_dir} "
          .. "expected)", fname, i), 4)
      end
      list[i] = {pair[1], pair[2]}
    end
  else
    for k, v in pairs(pm) do
      if type(k) ~= "string" or type(v) ~= "string" then
        error(string.format("bad option 'path_map' to '%s' (string keys and values expected, got "
          .. "%s = %s)", fname, type(k), type(v)), 4)
      end
      list[#list + 1] = {k, v}
    end
    table.sort(list, function(a, b) return a[1] < b[1] end)
  end
  return list
end

-- A scripted source: {name = "mirror", lookup = function(blob) ... end}
-- (other fields are the script's own: a URL, a connection, ...).
local function check_script(src, i, fname)
  local f = src.lookup
  local mt = getmetatable(f)
  if type(f) ~= "function" and not (mt and mt.__call) then
    error(string.format("bad option 'sources' to '%s' (item %d: a scripted source needs a lookup "
      .. "function, got %s)", fname, i, type(f)), 5)
  end
  if src.name ~= nil and (type(src.name) ~= "string" or src.name:find("\0", 1, true)) then
    error(string.format("bad option 'sources' to '%s' (item %d: name must be a string)", fname, i), 5)
  end
end

-- The sources as given (strings, and tables for scripted sources) and the
-- specs the C side takes ("script:NAME" for a scripted one).
local function sources_list(src, fname)
  if src == nil then
    return nil, {}
  end
  if type(src) == "string" or (type(src) == "table" and src.lookup ~= nil) then
    src = {src}
  end
  if type(src) ~= "table" then
    error(string.format("bad option 'sources' to '%s' (table expected, got %s)", fname, type(src)), 4)
  end
  local list, given = {}, {}
  for i = 1, #src do
    local v = src[i]
    if type(v) == "table" then
      check_script(v, i, fname)
      list[i] = "script:" .. (v.name or ("source " .. i))
    elseif type(v) == "string" then
      list[i] = v
    else
      error(string.format("bad option 'sources' to '%s' (item %d: string or scripted source "
        .. "{name =, lookup =} expected, got %s)", fname, i, type(v)), 4)
    end
    given[i] = v
  end
  return list, given
end

-- What a scripted function is given for a blob.
local function blob_view(t)
  return {sha1 = t.sha1, size = t.size, paths = t.paths or {}, refs = t.refs or {},
          images = t.images or {}, reason = t.reason, is_metadata = t.is_metadata,
          code = t.code, source = t.source, tried = t.tried}
end

local SLICE = 1 << 20

-- A scripted function raised: its message and the traceback of its own
-- coroutine (job.lua's drive loop reports both).
local Raised = {}
Raised.__index = Raised
function Raised.__tostring(e)
  return e.traceback
end
job.Raised = Raised

local CANCELLED = {}

-- Calls f(...) in a coroutine of its own: its yields are passed on to the
-- caller's scheduler (and the scheduler's answers back), and at each one
-- the job is looked at, so that a scripted function that never returns but
-- yields is bounded by the cancel: once the job is cancelled or over, it is
-- abandoned (CANCELLED is returned).
local function bounded(j, token, f, ...)
  local co = coroutine.create(f)
  local res = table.pack(coroutine.resume(co, ...))
  while true do
    if not res[1] then
      local tb = debug.traceback(co, tostring(res[2]))
      coroutine.close(co)
      error(setmetatable({message = res[2], traceback = tb}, Raised), 0)
    end
    if coroutine.status(co) == "dead" then
      return table.unpack(res, 2, res.n)
    end
    if j:closed() or j:done() or (token and not token:closed() and token:cancelled()) then
      coroutine.close(co)
      return CANCELLED
    end
    res = table.pack(coroutine.resume(co, coroutine.yield(table.unpack(res, 2, res.n))))
  end
end

-- Sends bytes as the answer to request id, waiting for room when the job
-- says busy.  false when the worker no longer wants it.
local function send(j, id, data, wait_room)
  local n, off = #data, 1
  while off <= n do
    local piece = n <= SLICE and data or data:sub(off, off + SLICE - 1)
    local ok, code = j:reply_data(id, piece)
    if ok then
      off = off + #piece
    elseif code == "busy" then
      wait_room()
    elseif code == "cancelled" then
      return false
    else
      error("imagehealth: replying to a request failed: " .. tostring(code))
    end
  end
  return true
end

-- The restore's scripted functions, answering the job's requests (called
-- from the drive loop in job.lua, so each may yield) and the hooks run on
-- the finished report.
local function restore_hooks(opts, given, fname)
  for _, k in ipairs{"order", "accept", "on_unrepairable", "on_repaired"} do
    local f = opts[k]
    local mt = getmetatable(f)
    if f ~= nil and type(f) ~= "function" and not (mt and mt.__call) then
      error(string.format("bad option '%s' to '%s' (function expected, got %s)", k, fname,
        type(f)), 4)
    end
  end
  local hooks = {}
  local function source_name(i)
    local v = given[i]
    return type(v) == "table" and (v.name or ("source " .. i)) or tostring(v)
  end
  local token = opts.cancel
  function hooks.answer(j, req, wait_room)
    local blob = blob_view(req)
    if req.kind == "blob" then
      local src = given[req.source]
      if type(src) ~= "table" then
        return j:reply_end(req.id, false, "not a scripted source")
      end
      hooks.describe = string.format("the lookup of scripted source '%s'", source_name(req.source))
      local data, why = bounded(j, token, src.lookup, blob)
      if data == CANCELLED then
        j:reply_end(req.id, false, "cancelled")
      elseif type(data) == "string" then
        if send(j, req.id, data, wait_room) then
          j:reply_end(req.id, true)
        end
      elseif type(data) == "function" then
        local live = true
        while live do
          local piece = bounded(j, token, data)
          if piece == CANCELLED then
            j:reply_end(req.id, false, "cancelled")
            live = false
            break
          end
          if piece == nil then
            break
          end
          if type(piece) ~= "string" then
            error(string.format("the reader returned %s (a string or nil expected)", type(piece)))
          end
          live = send(j, req.id, piece, wait_room)
        end
        if live then
          j:reply_end(req.id, true)
        end
      else
        if data ~= nil and data ~= false then
          error(string.format("lookup returned %s (a string, a reader function, or nil and a "
            .. "reason expected)", type(data)))
        end
        j:reply_end(req.id, false, why ~= nil and tostring(why) or nil)
      end
    elseif req.kind == "accept" then
      hooks.describe = "the accept policy"
      local ok, why = bounded(j, token, opts.accept, blob)
      if ok == CANCELLED then
        ok, why = false, "cancelled"
      end
      j:reply_end(req.id, ok and true or false, (not ok and why ~= nil) and tostring(why) or nil)
    elseif req.kind == "order" then
      hooks.describe = "the order policy"
      local list = {}
      for i = 1, #given do
        list[i] = given[i]
      end
      local chosen = bounded(j, token, opts.order, blob, list)
      if chosen == nil or chosen == CANCELLED then
        return j:reply_end(req.id, false) -- the restore's own order
      end
      if type(chosen) ~= "table" then
        error(string.format("order returned %s (a list of sources expected)", type(chosen)))
      end
      local idx = {}
      for k, v in ipairs(chosen) do
        local found = math.type(v) == "integer" and given[v] ~= nil and v or nil
        for i = 1, #given do
          if found then
            break
          end
          if given[i] == v then
            found = i
          end
        end
        if not found then
          error(string.format("order returned an item (#%d, %s) that is not one of the sources "
            .. "given", k, tostring(v)))
        end
        idx[#idx + 1] = found
      end
      j:reply_order(req.id, idx)
    else
      j:reply_end(req.id, false)
    end
    hooks.describe = nil
  end
  local after_unrep, after_rep = opts.on_unrepairable, opts.on_repaired
  if after_unrep or after_rep then
    function hooks.finish(state, r)
      local ok, e = xpcall(function()
        if after_rep and not r.dry_run then
          for _, rp in ipairs(r.repaired or {}) do
            local src = rp.source and (given[rp.source] or (r.sources[rp.source] or {}).spec)
            hooks.describe = "on_repaired"
            after_rep(blob_view(rp), src)
          end
        end
        if after_unrep then
          for _, d in ipairs(r.unrepaired or {}) do
            hooks.describe = "on_unrepairable"
            after_unrep(blob_view(d))
          end
        end
      end, debug.traceback)
      if not ok then
        local msg = tostring(e)
        local err = M.error("internal", string.format("%s raised an error after the restore "
          .. "(%s): %s", hooks.describe or "a hook", r:committed() and "its repairs were written"
          or "nothing was written", msg:match("^[^\n]*")))
        err.traceback = msg
        err.raised = true
        err.report = r
        return nil, err
      end
      return state, r
    end
  end
  return hooks
end

local function start_restore(s, opts, fname)
  local dry_run = fname:find("^restore_plan") ~= nil
  local list, given = sources_list(opts.sources, fname)
  local hooks = restore_hooks(opts, given, fname)
  -- the C side checks the other option types
  local j, err = c_start(job.private.restore_start, s, {
    sources = list,
    path_map = path_map_list(opts.path_map, fname),
    limit_access = opts.limit_access, no_policy = opts.no_policy, rebuild = opts.rebuild,
    use_record = opts.use_record, threads = opts.threads, cancel = opts.cancel, policy_hive = opts.policy_hive,
    no_reference_source = opts.no_reference_source,
    dry_run = dry_run or nil, ask_order = opts.order ~= nil or nil, ask_accept = opts.accept ~= nil or nil,
    http = opts.http, default_sources_file = opts.default_sources_file,
  })
  return j, err, hooks
end

-- s:restore_health{sources = {...}, limit_access =, path_map =, no_policy =,
--                  rebuild =, use_record =, threads =, progress =, cancel =, poll =,
--                  http = {...}, default_sources_file =}
--   -> state, report | nil, err
-- Scans the image (as DISM's RestoreHealth does; with use_record = true it
-- trusts the damage the last full scan of this very file recorded instead,
-- for a script that has just scanned) and repairs what it found from the
-- sources, in order: the caller's ("wim:PATH[:INDEX]",
-- "esd:PATH[:INDEX]", a .wim/.esd/.swm path, a directory holding the
-- extracted image, or an http:// or https:// URL[:INDEX] of a WIM, ESD or
-- first .swm, of which only the damaged bytes are downloaded), then those
-- of the image's own servicing policy (LocalSourcePath, with Windows paths
-- mapped by path_map; not with no_policy), then the host's default repair
-- server ($IMAGEHEALTH_REPAIR_SOURCES, else
-- $XDG_CONFIG_HOME/imagehealth/repair-sources, else
-- /etc/imagehealth/repair-sources; default_sources_file replaces them) unless
-- limit_access or the policy's UseWindowsUpdate = 2.  http = {ca_file=,
-- client_cert=, client_key=, proxy=, netrc= (true or a file), headers=
-- ({"Name: value", ...} or a map; never reported), connect_timeout=,
-- stall_timeout=, retries=, retry_wait_max=, whole_file_max=,
-- max_redirects=, parallel=} tunes remote sources.  Every byte is verified
-- by SHA-1 before it is written.  The
-- report (see report.lua) tells what was repaired from where and what is
-- left.  Errors: busy (0x800F0902: another session or restore holds the
-- image), disk_full (0x80070070), cancelled (0x800704C7; the image is then
-- exactly as it was).  A nonrepairable image gives a report, not an error.
-- s:restore_health_job{...} -> Job | nil, err (driven like a check's job)
define_operation("restore_health", start_restore)

-- s:restore_plan{sources =, order =, accept =, ...} -> state, report | nil, err
-- A dry run: the plan and the source lookups (every candidate's bytes
-- verified by SHA-1) without writing; the image is never opened for
-- writing.  report.dry_run is true; report.repaired lists what would come
-- from which source (bytes_planned in all), report.unrepaired what no
-- source has or the accept policy skips.  report.state is the image's as
-- found.
-- s:restore_plan_job{...} -> Job | nil, err
define_operation("restore_plan", start_restore)
-- ih.help(), ih.formats, ih.versions, one-line summaries (help.lua)
require("imagehealth.help").install(M)

return M
