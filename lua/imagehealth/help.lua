-- imagehealth.help: what a person at the Lua REPL needs without the README:
-- ih.help([topic | object]), ih.formats, ih.versions, and one-line
-- summaries for the module's own tables (ih.errors and its entries,
-- ih.states) and for image info entries.  install(M) adds them to the
-- module table M of imagehealth.

local core = require "imagehealth.core"

local H = {}

local TOPICS = {}
local ORDER = {}
local function topic(name, text)
  TOPICS[name] = text
  ORDER[#ORDER + 1] = name
end

topic("overview", [[
imagehealth: check and repair Windows images (WIM, ESD, split WIM) like
DISM's CheckHealth/ScanHealth/RestoreHealth.  ih.help(TOPIC) for more:
topics: open, session, check_health, restore_health, job, report, errors,
event loops (ih.help("loops")), formats.

  s = ih.open(path [, {index=, state_dir=, threads=}])  -> Session | nil, err
  s:info()                              what the image holds
  s:check_health{scan = true}           -> state, report | nil, err
  s:restore_health{sources = {...}}     -> state, report | nil, err
  s:check_health_job{...}, s:restore_health_job{...} -> Job (job:wait{...})
  report:files()                        iterate path, damage, image
  ih.formats, ih.version, ih.versions, ih.errors, ih.states, ih.cancel_token()
Expected failures return nil, err (print(err), "failed: " .. err);
misuse raises.  Every object prints a one-line summary.]])

topic("open", [[
ih.open(path [, {index = N, state_dir = DIR, threads = N}]) -> Session | nil, err
  path: a .wim, .esd or the first .swm of a split set (see ih.formats).
  index: one image (1-based); default all.  state_dir: where full scans are
  remembered (default $XDG_STATE_HOME/imagehealth).  err.code "not_found",
  "not_wim", "bad_index", "busy", ...  Close with s:close() or `local s
  <close> = ...`; a session nobody can reach is collected.
  A directory is an applied image tree: reference = "wim:PATH:INDEX",
  "https://host/x.wim:INDEX" (with http = {ca_file =, client_cert =,
  proxy =, headers =}), "seal:FILE" or "seal"; case_insensitive = true.
ih.open_job(path [, {..., progress =, cancel =, poll =}]) -> Job: the same
  without blocking (an event loop); job:wait() / job:result() -> Session | nil, err.]])

topic("session", [[
Session methods: info(), info_job{...} (info without blocking: its job's
result is the info), check_health{...}, check_health_job{...},
restore_health{...}, restore_health_job{...}, path(), closed(), close().
Closing a session closes its jobs (their loops are told first).]])

topic("check_health", [[
s:check_health{scan =, progress =, cancel =, threads =, no_record =, poll =}
  -> state, report | nil, err
  scan = false: CheckHealth (what an earlier scan recorded, structure);
  scan = true: ScanHealth (reads and hashes everything).
  progress(ev): called from your coroutine, may yield.  cancel: a token from
  ih.cancel_token().  poll(job): wait with your event loop (cqueues.poll,
  require("imagehealth.luv").poll).
s:check_health_job{...} -> Job]])

topic("restore_health", [[
s:restore_health{sources =, limit_access =, path_map =, no_policy =, rebuild =,
                 use_record =, threads =, progress =, cancel =, poll =}
  -> state, report | nil, err
  sources: {"wim:/mnt/good/install.wim:1", "/mnt/extracted", ...}, tried in
  order, then the image's policy (LocalSourcePath; Windows paths mapped by
  path_map = {["C:\\Src"] = "/mnt/src"}).  A cancelled restore leaves the
  image exactly as it was.  report.repaired says from where, report.unrepaired
  what is left and why.
s:restore_health_job{...} -> Job]])

topic("job", [[
Job: job:wait{progress =, poll =} -> state, report | nil, err;
job:result(); job:progress(); job:drain(); job:cancel(); job:done();
job:pollfd(), job:events(), job:timeout() (cqueues' pollable protocol);
job:session(); job:close() (never blocks; a result computed before the close
can still be read).]])

topic("report", [[
report.state ("healthy" | "repairable" | "nonrepairable"), report.health (0-2),
report.damaged (list of Damage: sha1, size, reason, paths, images, refs),
report.problems; for a restore also repaired (Repair: source_spec, paths),
unrepaired, dropped, sources (Source: spec, usable, error, blobs_used),
before (the check it started from), policy.
report:files() iterates path, damage, image; report:repaired_files();
report:summary(); report:lines(); print(report) for the whole text.]])

topic("errors", [[
An error value: err.code ("busy", "not_found", ...), err.hresult (DISM's),
err.message.  print(err), "x: " .. err, io.write(err:string()).
ih.errors lists every code: ih.errors.busy.hresult == 0x800F0902.]])

topic("loops", [[
Event loops: cqueues: s:check_health{poll = cqueues.poll}, or poll the Job
itself (cqueues.poll(job)).  luv: local ihuv = require "imagehealth.luv";
ihuv.spawn(function() ... s:check_health{poll = ihuv.poll} ... end); uv.run().
Closing or collecting a job or its session tells cqueues (cqueues.cancel) and
imagehealth.luv (its poll handle is stopped) before the fd is closed, and
never blocks.  Other coroutine schedulers: local ihpoll = require
"imagehealth.poll"; poll = ihpoll.wait yields a Wait {fd, events, timeout}
to the scheduler, which resumes it when ready: ihpoll.ready(waits, timeout)
waits for many in one poll(2) (examples/coroutine_scheduler.lua).]])

topic("formats", [[
ih.formats: wim (XPRESS, LZX, LZMS or uncompressed), esd (solid LZMS), swm
(a split WIM: open its first part, the others are found beside it).]])

local ALIASES = {
  ["imagehealth.Session"] = "session", ["imagehealth.Job"] = "job",
  ["imagehealth.Report"] = "report", ["imagehealth.Error"] = "errors",
  check_health_job = "check_health", restore_health_job = "restore_health",
  cqueues = "loops", luv = "loops", sources = "restore_health", info = "session",
}

-- ih.help([topic | object]) -> text (the REPL prints it)
function H.help(what)
  if what == nil then
    local t = {TOPICS.overview}
    return table.concat(t, "\n")
  end
  local key = what
  if type(what) ~= "string" then
    local mt = getmetatable(what)
    key = type(mt) == "table" and mt.__name or type(what)
  end
  key = ALIASES[key] or key
  if TOPICS[key] then
    local text = TOPICS[key]
    if key == "session" then
      text = text .. "\n\n" .. TOPICS.check_health .. "\n\n" .. TOPICS.restore_health
    end
    return text
  end
  return string.format("no help on %s; topics: %s", tostring(what), table.concat(ORDER, ", "))
end

local function named(name, fn)
  return {__name = name, __tostring = fn}
end

function H.install(M)
  M.help = H.help
  -- ih.worker_nice(n): threads of jobs started from now on run n nicer
  M.worker_nice = core.worker_nice

  M.formats = setmetatable({
    {name = "wim", extensions = {".wim"}, description = "Windows Imaging Format: XPRESS, LZX, LZMS or none"},
    {name = "esd", extensions = {".esd"}, description = "solid LZMS (Electronic Software Download)"},
    {name = "swm", extensions = {".swm"}, description = "split WIM: open the first part"},
  }, named("imagehealth.formats", function(f)
    local t = {}
    for i, e in ipairs(f) do t[i] = e.name end
    return "imagehealth.formats: " .. table.concat(t, ", ") .. " (ih.help(\"formats\"))"
  end))
  for _, f in ipairs(M.formats) do
    M.formats[f.name] = f
    setmetatable(f, named("imagehealth.Format", function(e)
      return string.format("imagehealth.Format: %s (%s)", e.name, e.description)
    end))
  end

  M.versions = setmetatable({imagehealth = M.version, core = core.version, lua = _VERSION},
    named("imagehealth.versions", function(v)
      return string.format("imagehealth.versions: imagehealth %s, %s", v.imagehealth, v.lua)
    end))

  local code_mt = named("imagehealth.ErrorCode", function(e)
    return string.format("imagehealth.ErrorCode: %s 0x%08X", e.code, e.hresult)
  end)
  for _, e in ipairs(M.errors) do
    setmetatable(e, code_mt)
  end
  setmetatable(M.errors, named("imagehealth.errors", function(list)
    local t = {}
    for i, e in ipairs(list) do t[i] = e.code end
    return string.format("imagehealth.errors: %d codes: %s", #list, table.concat(t, ", "))
  end))

  setmetatable(M.states, named("imagehealth.states", function(s)
    return string.format("imagehealth.states: %s = 0, %s = 1, %s = 2", s[0], s[1], s[2])
  end))

  -- s:info().images entries
  local image_mt = named("imagehealth.ImageInfo", function(im)
    return string.format("imagehealth.ImageInfo: [%d] %q, %d files, %d directories%s", im.index or 0,
      im.name or "", im.file_count or 0, im.dir_count or 0,
      im.metadata_ok == false and ", METADATA DAMAGED" or "")
  end)
  local info = core.interpose("imagehealth.Session", "info", nil)
  core.interpose("imagehealth.Session", "info", function(s)
    local r, err = info(s)
    if r and type(r.images) == "table" then
      for _, im in ipairs(r.images) do
        if getmetatable(im) == nil then setmetatable(im, image_mt) end
      end
    end
    return r, err
  end)
  return M
end

return H
