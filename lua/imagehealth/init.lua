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
--   ih.cancel_token() -> CancelToken (:cancel(), :cancelled(), :close())
--   ih.HEALTHY, ih.REPAIRABLE, ih.NONREPAIRABLE (0, 1, 2), ih.states
--   ih.errors (list and map of {code, hresult}), ih.error(code, msg),
--   ih.is_error(v), ih.version, ih.format_bytes(n)
--
--   s:info() -> Info | nil, err           s:path(), s:closed(), s:close()
--   s:check_health{scan=, progress=, cancel=, threads=, no_record=, poll=}
--     -> state, Report | nil, err
--   s:check_health_job{...} -> Job | nil, err
--   s:restore_health{sources=, limit_access=, path_map=, no_policy=,
--                    rebuild=, use_record=, threads=, progress=, cancel=, poll=,
--                    http=, default_sources_file=}
--     -> state, Report | nil, err
--   s:restore_health_job{...} -> Job | nil, err
--
--   Job (see job.lua): wait, result, progress, drain, cancel, done, pollfd,
--   events, timeout, wait_raw, close.  Report (see report.lua): state,
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

-- ih.open(path [, {index=, state_dir=, threads=}]) -> Session | nil, err
function M.open(path, opts)
  if type(path) ~= "string" then
    error("bad argument #1 to 'open' (string expected, got " .. type(path) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'open' (table expected, got " .. type(opts) .. ")", 2)
  end
  return core.open(path, opts)
end

-- ih.cancel_token() -> CancelToken with :cancel(), :cancelled(), :close()
M.cancel_token = core.cancel_token

----------------------------------------------------------------- Session

local Info = {__name = "imagehealth.Info"}
M.Info = Info

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

local function check_opts(opts, fname)
  if opts == nil then
    return {}
  end
  if type(opts) ~= "table" then
    error(string.format("bad argument #1 to '%s' (table expected, got %s)", fname, type(opts)), 3)
  end
  job.check_callback(opts.progress, "progress")
  job.check_callback(opts.poll, "poll")
  job.check_callback(opts.poll_forget, "poll_forget")
  return opts
end

local function start(s, opts)
  -- the C side checks the option types
  return s:check_start{scan = opts.scan, deep = opts.deep, threads = opts.threads,
                       cancel = opts.cancel, no_record = opts.no_record}
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
    local j, err = starter(s, opts, name)
    if not j then
      return nil, err
    end
    local _ <close> = j
    return job.drive(j, opts.progress, opts.cancel, opts.poll, opts.poll_forget)
  end)
  local job_name = name .. "_job"
  core.interpose("imagehealth.Session", job_name, function(s, opts)
    check_open(s)
    opts = check_opts(opts, job_name)
    local j, err = starter(s, opts, job_name)
    if not j then
      return nil, err
    end
    return job.attach(j, opts)
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

local function sources_list(src, fname)
  if src == nil then
    return nil
  end
  if type(src) == "string" then
    return {src}
  end
  if type(src) ~= "table" then
    error(string.format("bad option 'sources' to '%s' (table expected, got %s)", fname, type(src)), 4)
  end
  local list = {}
  for i = 1, #src do
    if type(src[i]) ~= "string" then
      error(string.format("bad option 'sources' to '%s' (item %d: string expected, got %s)", fname,
        i, type(src[i])), 4)
    end
    list[i] = src[i]
  end
  return list
end

local function start_restore(s, opts, fname)
  -- the C side checks the other option types
  return s:restore_start{
    sources = sources_list(opts.sources, fname),
    path_map = path_map_list(opts.path_map, fname),
    limit_access = opts.limit_access, no_policy = opts.no_policy, rebuild = opts.rebuild,
    use_record = opts.use_record, threads = opts.threads, cancel = opts.cancel, policy_hive = opts.policy_hive,
    http = opts.http, default_sources_file = opts.default_sources_file,
  }
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

return M
