-- imagehealth.report: the Report object a health check or a restore
-- returns, and the formatting helpers shared with the CLI.
--
--   report.state            "healthy" | "repairable" | "nonrepairable"
--   report.health           the same as DISM's number (0, 1, 2)
--   report.scanned          a full scan ran now
--   report.from_record      damage recalled from an earlier scan
--   report.recorded_at      unix time of that scan (or nil)
--   report.record_note      why no state record was read or kept (or nil)
--   report.image, .index    image path, selected index (0: all)
--   report.blobs_checked, .bytes_checked, .seconds
--   report.scan_kind        how the check ran: "quick" (metadata decoded),
--                           "quick_record" (the record vouched for the blob
--                           table and metadata), "deep" (every blob
--                           decompressed), "fingerprint" or "integrity" (raw
--                           bytes hashed against the last full scan's
--                           fingerprints or the integrity table; only blobs
--                           in changed bytes decompressed)
--   report.bytes_deep_scanned, .bytes_fingerprinted
--   report.scan_note        why a full scan ran deep unasked (or nil)
--   report.damaged          list of {sha1, size, reason, detail, is_metadata,
--                           solid, part, offset, stored_size, images = {..},
--                           paths = {..}, refs = {{image=, path=}, ..}}
--   report.problems         list of {kind, severity, message}
--
-- A restore's report (report.restored == true) has, besides:
--   report.state_before     the state the restore found ("repairable", ...);
--                           report.state is the state after it
--   report.health_before    the same as DISM's number
--   report.repaired         list of {sha1, size, source (index into
--                           report.sources), source_spec, source_name (a
--                           scripted source's name, else its spec), raw_copy
--                           (the compressed bytes were copied as they were),
--                           paths, images, refs, tried (the sources asked
--                           before it, as in unrepaired entries)}
--   report.dropped          damaged blobs no image uses (e.g. an entry whose
--                           SHA-1 was damaged): their entries were removed
--   report.unrepaired       what is left: the same list as report.damaged,
--                           each entry with code "source_missing" and hresult
--                           0x800F081F (no source had it), "download_failed"
--                           0x800F0906 (a remote source could not deliver
--                           it), "policy_disallowed" 0x800F0907 (no source had
--                           it and the default repair server was barred), or
--                           code "nonrepairable" when the image cannot be
--                           repaired; and tried = list of {source (index
--                           into report.sources), name (a scripted source's
--                           name, else its spec), spec, status, reason}: each
--                           source asked for it, in the order asked, and
--                           what it said: status "not_found" (reason: a
--                           scripted lookup's `nil, reason`), "wrong_bytes"
--                           (its bytes did not match the SHA-1),
--                           "download_failed", "unusable" (its error is under
--                           report.sources) or "error" (its answer could not
--                           be kept)
--   report.sources          list of {spec, kind ("wim"|"dir"|"http"), origin
--                           ("caller"|"policy"|"default": the repair server),
--                           path, index, usable, status ("usable"|"unusable"|
--                           "unmapped": a policy path no path_map entry maps|
--                           "not_contacted": a remote source nothing was asked
--                           of), error, error_code, bytes_read, blobs_used,
--                           blobs_rejected (candidates whose bytes did not hash
--                           right), blobs_not_found (blobs it was asked for
--                           and did not have), name (a scripted source's);
--                           remote ones also requests, bytes_fetched,
--                           bytes_asked, retries, failures, round_trips and
--                           notes (what the server did, one line each)}, in
--                           the order they were tried; URLs are shown without
--                           user:password and query string
--   report.bytes_written    bytes committed to the image (0 when nothing
--                           was committed: see report:committed())
--   report.before           the check report the restore started from
--   report.rebuilt          repaired into a compacted copy renamed over it
--   report.policy           {local_source_path, use_windows_update (nil when
--                           not set), note (why it could not be read)}
--   report.limit_access, report.no_policy   the options, echoed
--   report.default_sources  URLs of the default repair server the host
--                           configures; report.default_barred "limit_access"
--                           or "policy" when they were not asked
--
--   report:committed()      whether a restore changed the image at all
--   report:summary()        one paragraph for a person
--   report:files()          iterator: path, damage, image over the damaged
--                           files (for a restore: those left unrepaired),
--                           sorted by image then path
--   report:repaired_files() iterator: path, repair, image, source over the
--                           repaired files, sorted by image then path
--   report:lines()          the detailed text, as a list of lines
--   tostring(report)        the detailed text

local M = {}

local Report = {}
Report.__index = Report
Report.__name = "imagehealth.Report"
M.Report = Report

-- 1536 -> "1.5 KiB"; 12 -> "12 bytes"
function M.format_bytes(n)
  n = n or 0
  if n < 1024 then
    return string.format("%d byte%s", n, n == 1 and "" or "s")
  end
  local units = {"KiB", "MiB", "GiB", "TiB", "PiB"}
  local v, u = n / 1024, 1
  while v >= 1024 and u < #units do
    v, u = v / 1024, u + 1
  end
  return string.format(v < 10 and "%.2f %s" or v < 100 and "%.1f %s" or "%.0f %s", v, units[u])
end

function M.format_seconds(s)
  s = s or 0
  if s < 10 then
    return string.format("%.2f s", s)
  elseif s < 120 then
    return string.format("%.1f s", s)
  end
  local h, m = math.floor(s / 3600), math.floor(s % 3600 / 60)
  local sec = math.floor(s % 60)
  if h > 0 then
    return string.format("%dh%02dm%02ds", h, m, sec)
  end
  return string.format("%dm%02ds", m, sec)
end

local function plural(n, word, words)
  return string.format("%d %s", n, n == 1 and word or (words or word .. "s"))
end
M.plural = plural

local function list_words(t)
  if #t <= 1 then
    return t[1] or ""
  end
  return table.concat(t, ", ", 1, #t - 1) .. " and " .. t[#t]
end

-- One-line summaries of what a report holds, for the REPL: entries
-- (imagehealth.Damage, .Repair, .Source, .Problem, .Ref, .Policy) and the
-- lists of them (imagehealth.List).
local Entry = {}
M.Entry = Entry

local function short(sha1)
  return (sha1 or "?"):sub(1, 12)
end

local function paths_text(e, max)
  local paths = e.paths or {}
  max = max or 2
  if #paths == 0 then
    return e.is_metadata and ("metadata of image " .. tostring((e.images or {})[1] or "?"))
      or "no file"
  end
  local t = {}
  for i = 1, math.min(max, #paths) do t[i] = paths[i] end
  local s = table.concat(t, ", ")
  if #paths > max then s = s .. string.format(" and %d more", #paths - max) end
  return s
end

local function entry_type(name, fn)
  local mt = {__name = "imagehealth." .. name}
  mt.__tostring = function(e) return mt.__name .. ": " .. fn(e) end
  Entry[name] = mt
  return mt
end

local Damage = entry_type("Damage", function(d)
  return string.format("%s %s %s: %s%s", short(d.sha1), M.format_bytes(d.size or 0),
    d.reason or "?", paths_text(d), d.code and d.code ~= "" and (" (" .. d.code .. ")") or "")
end)
local Repair = entry_type("Repair", function(r)
  return string.format("%s %s from %s: %s", short(r.sha1), M.format_bytes(r.size or 0),
    r.source_spec or ("source " .. tostring(r.source)), paths_text(r))
end)
-- What a source said when asked for a blob (a restore report's tried
-- lists), for a person.
local TRY_WORDS = {
  not_found = "not found", wrong_bytes = "wrong bytes (rejected)",
  download_failed = "download failed", unusable = "unusable (see its error under sources)",
  error = "its answer could not be kept",
}
local function try_text(t)
  local s = string.format("[%s] %s: %s", tostring(t.source or "?"), t.name or t.spec or "?",
    TRY_WORDS[t.status] or tostring(t.status))
  if t.reason then
    s = s .. string.format(" (%s)", t.reason)
  end
  return s
end
function M.tries_text(list)
  local t = {}
  for i, e in ipairs(list) do
    t[i] = try_text(e)
  end
  return table.concat(t, "; ")
end
local Try = entry_type("Try", try_text)
local Problem = entry_type("Problem", function(p)
  return string.format("[%s] %s: %s", p.severity or "?", p.kind or "?", p.message or "")
end)
local Ref = entry_type("Ref", function(r)
  return string.format("image %s %s", tostring(r.image), r.path or "?")
end)
local Policy = entry_type("Policy", function(p)
  local t = {}
  t[#t + 1] = "LocalSourcePath " .. (p.local_source_path and string.format("%q", p.local_source_path)
    or "not set")
  t[#t + 1] = "UseWindowsUpdate " .. (p.use_windows_update and tostring(p.use_windows_update) or "not set")
  if p.note then t[#t + 1] = p.note end
  return table.concat(t, ", ")
end)
-- Source: set below, once source_line is defined

local List = {__name = "imagehealth.List"}
Entry.List = List
List.__tostring = function(l)
  local mt = l[1] and getmetatable(l[1])
  local kind = mt and mt.__name and mt.__name:gsub("^imagehealth%.", "") or "entries"
  local t = {}
  for i = 1, math.min(3, #l) do
    local s = tostring(l[i]):gsub("^imagehealth%.%a+: ", "")
    t[i] = s
  end
  return string.format("imagehealth.List: %d %s%s%s", #l, kind, #l > 0 and "; " or "",
    table.concat(t, "; ") .. (#l > 3 and "; ..." or ""))
end

local function list_of(l, mt, each)
  if type(l) ~= "table" then return end
  for _, e in ipairs(l) do
    if type(e) == "table" and getmetatable(e) == nil then
      setmetatable(e, mt)
      if each then each(e) end
    end
  end
  if getmetatable(l) == nil then setmetatable(l, List) end
end

local function refs_of(e)
  list_of(e.refs, Ref)
  list_of(e.tried, Try)
end

local decorate
decorate = function(t)
  list_of(t.damaged, Damage, refs_of)
  list_of(t.unrepaired, Damage, refs_of)
  list_of(t.dropped, Damage, refs_of)
  list_of(t.repaired, Repair, refs_of)
  list_of(t.problems, Problem)
  list_of(t.sources, Entry.Source)
  if type(t.policy) == "table" and getmetatable(t.policy) == nil then
    setmetatable(t.policy, Policy)
  end
  if type(t.before) == "table" and getmetatable(t.before) == nil then
    decorate(t.before)
    setmetatable(t.before, Report)
  end
end

function M.new(t)
  decorate(t)
  return setmetatable(t, Report)
end

function M.is_report(v)
  return getmetatable(v) == Report
end

-- All uses of a list of blobs (damaged or repaired): {image, path, blob}
-- triples, sorted by image, path, then SHA-1.
local function uses_of(blobs)
  local list = {}
  for _, b in ipairs(blobs or {}) do
    for _, r in ipairs(b.refs or {}) do
      if r.path and r.path ~= "" then
        list[#list + 1] = {image = r.image, path = r.path, blob = b}
      end
    end
  end
  table.sort(list, function(a, b)
    if a.image ~= b.image then
      return a.image < b.image
    end
    if a.path ~= b.path then
      return a.path < b.path
    end
    return a.blob.sha1 < b.blob.sha1
  end)
  return list
end

-- for path, damage, image in report:files() do ... end
function Report:files()
  local list, i = uses_of(self.damaged), 0
  return function()
    i = i + 1
    local e = list[i]
    if e then
      return e.path, e.blob, e.image
    end
  end
end

-- Number of damaged files per image: {[image] = n}, and the sorted images.
function Report:files_by_image()
  local per, images = {}, {}
  for _, e in ipairs(uses_of(self.damaged)) do
    if not per[e.image] then
      per[e.image] = {}
      images[#images + 1] = e.image
    end
    table.insert(per[e.image], e.path)
  end
  return per, images
end

-- When a recorded scan ran, and how long ago: "2026-12-01 14:03 UTC, 3
-- hours ago".  A record is a cache: its age tells how much to trust it.
function M.format_recorded(t, now)
  local age = math.max(0, (now or os.time()) - t)
  local ago
  if age < 90 then
    ago = "just now"
  elseif age < 90 * 60 then
    ago = plural(math.floor(age / 60 + 0.5), "minute") .. " ago"
  elseif age < 36 * 3600 then
    ago = plural(math.floor(age / 3600 + 0.5), "hour") .. " ago"
  else
    ago = plural(math.floor(age / 86400 + 0.5), "day") .. " ago"
  end
  return os.date("!%Y-%m-%d %H:%M UTC", math.floor(t)) .. ", " .. ago
end

local function what_checked(self)
  if self.scanned then
    local how = ""
    if self.scan_kind == "fingerprint" or self.scan_kind == "integrity" then
      how = string.format("; %s of raw bytes hashed against %s, %s deep-scanned",
        M.format_bytes(self.bytes_fingerprinted or 0),
        self.scan_kind == "fingerprint" and "the last full scan's fingerprints"
          or "the image's integrity table",
        M.format_bytes(self.bytes_deep_scanned or 0))
    elseif self.scan_kind == "deep" then
      how = "; deep: every blob decompressed"
    end
    return string.format("full scan of %s (%s) in %s%s", plural(self.blobs_checked or 0, "blob"),
      M.format_bytes(self.bytes_checked), M.format_seconds(self.seconds), how)
  end
  if self.scan_kind == "quick_record" and self.recorded_at then
    return string.format("quick check (structure, and recorded damage from the full scan of "
      .. "%s; its record vouches for the blob table and metadata as they are, so nothing "
      .. "was decoded)", M.format_recorded(self.recorded_at))
  end
  if self.from_record and self.recorded_at then
    if self.restored then
      return string.format("damage taken from the record of the full scan of %s (use_record)",
        M.format_recorded(self.recorded_at))
    end
    return string.format("quick check (structure, and recorded damage from the full scan of %s)",
      M.format_recorded(self.recorded_at))
  end
  return "quick check (structure and recorded damage; no full scan on record)"
end
M.what_checked = what_checked

local restore_summary, restore_lines

function Report:summary()
  if self.tree or (self.before and self.before.tree) then -- an applied tree
    return require("imagehealth.tree_report").summary(self)
  end
  if self.restored then
    return restore_summary(self)
  end
  local parts = {}
  local damaged = self.damaged or {}
  if #damaged > 0 then
    local bytes, meta = 0, {}
    for _, d in ipairs(damaged) do
      bytes = bytes + (d.size or 0)
      if d.is_metadata then
        meta[#meta + 1] = d.images and d.images[1] and tostring(d.images[1]) or "?"
      end
    end
    local per, images = self:files_by_image()
    local nfiles = 0
    for _, img in ipairs(images) do
      nfiles = nfiles + #per[img]
    end
    local s = string.format("%s (%s)", plural(#damaged, "damaged blob"), M.format_bytes(bytes))
    if nfiles > 0 then
      if #images == 1 then
        s = s .. string.format(" hitting %s in image %d", plural(nfiles, "file"), images[1])
      else
        local l = {}
        for _, img in ipairs(images) do
          l[#l + 1] = string.format("%d in image %d", #per[img], img)
        end
        s = s .. string.format(" hitting %s (%s)", plural(nfiles, "file"), list_words(l))
      end
    end
    if #meta > 0 then
      if #meta == 1 and meta[1] == "?" then
        s = s .. "; a directory tree (metadata resource) is damaged"
      else
        s = s .. string.format("; the directory tree (metadata) of %s damaged",
          #meta == 1 and "image " .. meta[1] .. " is" or "images " .. list_words(meta) .. " are")
      end
    end
    parts[#parts + 1] = s
  end
  local problems = self.problems or {}
  if #problems > 0 then
    local msgs = {}
    for _, p in ipairs(problems) do
      msgs[#msgs + 1] = p.message
    end
    parts[#parts + 1] = plural(#problems, "problem") .. " (" .. table.concat(msgs, "; ") .. ")"
  end
  if #parts == 0 then
    parts[1] = self.scanned and "no damage found" or "no damage known"
  end
  return string.format("%s: %s; %s.", self.state, table.concat(parts, "; "), what_checked(self))
end

-- Lines for a list of damaged blobs (where each lies, why it is damaged),
-- then the files they hit, per image.
local function add_damage(self, add, list, title, files_title)
  add(title, #list)
  for _, d in ipairs(list) do
    local where = d.part and d.part > 0
      and string.format("part %d at offset %d, %s stored%s", d.part, d.offset or 0,
        M.format_bytes(d.stored_size), d.solid and ", solid" or "")
      or "not in the blob table"
    add("  %s  %s  %s%s", d.sha1, M.format_bytes(d.size), d.reason,
      d.is_metadata and ("  [metadata" .. (d.images and d.images[1]
        and (" of image " .. d.images[1]) or "") .. "]") or "")
    add("      %s%s", where, (d.detail and d.detail ~= "") and ("; " .. d.detail) or "")
    if d.tried and #d.tried > 0 then
      add("      tried: %s", M.tries_text(d.tried))
    end
  end
  local per, images = self:files_by_image()
  if #images > 0 then
    local n = 0
    for _, img in ipairs(images) do
      n = n + #per[img]
    end
    add(files_title, n)
    for _, img in ipairs(images) do
      add("  image %d:", img)
      for _, p in ipairs(per[img]) do
        add("    %s", p)
      end
    end
  end
end

-- The detailed text, as a list of lines (without a hint of what to do).
function Report:lines()
  if self.tree or (self.before and self.before.tree) then
    return require("imagehealth.tree_report").lines(self)
  end
  if self.restored then
    return restore_lines(self)
  end
  local out = {}
  local function add(fmt, ...)
    out[#out + 1] = string.format(fmt, ...)
  end
  add("Image:    %s%s", self.image or "?", (self.index and self.index ~= 0)
    and string.format(" (image %d)", self.index) or " (all images)")
  add("State:    %s (DISM %d)", self.state, self.health or -1)
  add("Checked:  %s", what_checked(self))
  if self.record_note then
    add("Record:   %s", self.record_note)
  end
  if self.scan_note then
    add("Scan:     %s", self.scan_note)
  end
  local damaged = self.damaged or {}
  if #damaged > 0 then
    add_damage(self, add, damaged, "Damaged blobs (%d):", "Damaged files (%d):")
  end
  local problems = self.problems or {}
  if #problems > 0 then
    add("Problems (%d):", #problems)
    for _, p in ipairs(problems) do
      add("  [%s] %s: %s", p.severity, p.kind, p.message)
    end
  end
  return out
end

----------------------------------------------------------------- restore

-- for path, repair, image, source in report:repaired_files() do ... end
function Report:repaired_files()
  local list, i = uses_of(self.repaired), 0
  return function()
    i = i + 1
    local e = list[i]
    if e then
      return e.path, e.blob, e.image, (self.sources or {})[e.blob.source]
    end
  end
end

-- A source's name for a person: its spec, and the local path it mapped to
-- when that differs (policy sources name Windows paths).
local function source_name(src)
  if not src then
    return "?"
  end
  local name = src.spec or src.path or "?"
  if src.path and src.path ~= "" and src.path ~= src.spec
     and not (src.spec or ""):find(src.path, 1, true) then
    name = name .. " (" .. src.path .. ")"
  end
  return name
end
M.source_name = source_name

-- Files of a list of damage or repair entries, for a sentence: at most max
-- paths, then "and N more".
local function some_paths(entries, max)
  local seen, paths = {}, {}
  for _, d in ipairs(entries) do
    for _, p in ipairs(d.paths or {}) do
      if not seen[p] then
        seen[p] = true
        paths[#paths + 1] = p
      end
    end
    if d.is_metadata and #(d.paths or {}) == 0 then
      local p = "(directory tree of image " .. tostring(d.images and d.images[1] or "?") .. ")"
      if not seen[p] then
        seen[p] = true
        paths[#paths + 1] = p
      end
    end
  end
  table.sort(paths)
  local n = #paths
  if n > max then
    local shown = table.concat(paths, ", ", 1, max)
    return shown .. string.format(" and %d more", n - max), n
  end
  return table.concat(paths, ", "), n
end

local function sum_sizes(list)
  local n = 0
  for _, d in ipairs(list or {}) do
    n = n + (d.size or 0)
  end
  return n
end

-- What the policy's UseWindowsUpdate value means.
local function windows_update_meaning(v)
  if v == nil then
    return "not set"
  elseif v == 2 then
    return "2: never use the remote default (Windows Update)"
  end
  return string.format("%d: the remote default may be used", v)
end
M.windows_update_meaning = windows_update_meaning

-- One line about the image's servicing policy.
local function policy_text(self)
  if self.no_policy then
    return "not read (no_policy)"
  end
  local p = self.policy or {}
  if not (p.local_source_path or p.use_windows_update or p.note) and self.state_before ~= "repairable" then
    return self.state == "nonrepairable" and "not consulted (the image cannot be repaired)"
      or "not consulted (nothing to repair)"
  end
  if p.local_source_path or p.use_windows_update then
    local t = {}
    if p.local_source_path then
      t[#t + 1] = string.format('LocalSourcePath "%s"', p.local_source_path)
    else
      t[#t + 1] = "no LocalSourcePath"
    end
    t[#t + 1] = "UseWindowsUpdate " .. windows_update_meaning(p.use_windows_update)
    return table.concat(t, "; ")
  end
  if p.note and p.note ~= "" then
    return "none (" .. p.note .. ")"
  end
  return "none found in the image"
end
M.policy_text = policy_text

-- Blobs repaired per source: "2 from wim:/x.wim:1 and 1 from /mnt/src".
local function per_source(self)
  local count, order = {}, {}
  for _, rp in ipairs(self.repaired or {}) do
    local i = rp.source or 0
    if not count[i] then
      count[i] = 0
      order[#order + 1] = i
    end
    count[i] = count[i] + 1
  end
  table.sort(order)
  local t = {}
  for _, i in ipairs(order) do
    t[#t + 1] = string.format("%d from %s", count[i], source_name((self.sources or {})[i]))
  end
  return list_words(t)
end

-- Why damage was left, by the codes the core gave each entry.
local WHY = {
  source_missing = "no source has %s (0x800F081F source missing)",
  download_failed = "a remote source could not deliver %s (0x800F0906 download failed)",
  policy_disallowed = "no source has %s, and the default repair server was not asked: remote "
    .. "access is barred by limit_access or the image's policy (0x800F0907)",
  skipped = "%s skipped by policy (0x800F0907)",
  nonrepairable = "the image cannot be repaired in place",
}
local function left_why(left, them)
  local seen, order = {}, {}
  for _, d in ipairs(left) do
    local c = d.code or "source_missing"
    if c == "policy_disallowed" and d.policy_reason then
      c = "skipped"
    end
    if not seen[c] then
      seen[c] = 0
      order[#order + 1] = c
    end
    seen[c] = seen[c] + 1
  end
  local t = {}
  for _, c in ipairs(order) do
    local fmt = WHY[c] or (c .. " (%s)")
    local what = (seen[c] == 1 and not them) and "it" or "them"
    if #order > 1 then
      what = seen[c] == 1 and "1 of them" or string.format("%d of them", seen[c])
    end
    t[#t + 1] = string.format(fmt, what)
  end
  return table.concat(t, "; ")
end

-- Whether a restore changed the image: the core counts bytes_written only
-- for what it committed (a rolled-back restore reports 0).
function Report:committed()
  return self.restored == true and (self.bytes_written or 0) > 0
end

-- bytes_written, counted only when something was committed
function M.bytes_written(self)
  return self:committed() and (self.bytes_written or 0) or 0
end

function restore_summary(self)
  local before, after = self.state_before or "?", self.state or "?"
  local head = after == before and after or string.format("%s (was %s)", after, before)
  local repaired, left = self.repaired or {}, self.unrepaired or self.damaged or {}
  local parts = {}
  if before == "healthy" and #repaired == 0 and #left == 0 then
    parts[1] = "nothing to repair (" .. (self.scanned and "no damage found" or "no damage known") .. ")"
    return string.format("%s: %s; %s.", head, table.concat(parts, "; "), what_checked(self))
  end
  if after == "nonrepairable" then
    local msgs = {}
    for _, p in ipairs(self.problems or {}) do
      msgs[#msgs + 1] = p.message
    end
    return string.format("%s: the image's structure cannot be read, so it cannot be repaired in "
      .. "place; nothing was written%s.", head,
      #msgs > 0 and (" (" .. table.concat(msgs, "; ") .. ")") or "")
  end
  local total = #repaired + #left
  local verb = self.dry_run and "would repair" or "repaired"
  -- blobs the caller's accept policy skipped are not "missing"
  local skipped, missing = {}, {}
  for _, d in ipairs(left) do
    if d.code == "policy_disallowed" and d.policy_reason then -- (else: the repair server barred)
      skipped[#skipped + 1] = d
    else
      missing[#missing + 1] = d
    end
  end
  if #repaired > 0 then
    local _, nfiles = some_paths(repaired, 0)
    parts[#parts + 1] = string.format(verb .. " %s%s (%s%s): %s",
      #left > 0 and string.format("%d of ", #repaired) or "",
      plural(#left > 0 and total or #repaired, "damaged blob"), M.format_bytes(sum_sizes(repaired)),
      nfiles > 0 and ", " .. plural(nfiles, "file") or "", per_source(self))
  elseif total > 0 then
    parts[#parts + 1] = verb .. " nothing"
  end
  if #skipped > 0 then
    local names = some_paths(skipped, 5)
    parts[#parts + 1] = string.format("%s skipped by policy (0x800F0907)%s",
      plural(#skipped, "blob"), names ~= "" and ": " .. names or "")
  end
  left = missing
  if #left > 0 then
    local names, nfiles = some_paths(left, 5)
    parts[#parts + 1] = string.format("%s (%s%s) left unrepaired: %s%s", plural(#left, "blob"),
      M.format_bytes(sum_sizes(left)), nfiles > 0 and ", " .. plural(nfiles, "file") or "",
      left_why(left), names ~= "" and ": " .. names or "")
  end
  local liars = {}
  for i, src in ipairs(self.sources or {}) do
    if (src.blobs_rejected or 0) > 0 then
      liars[#liars + 1] = string.format("[%d] %s", i, source_name(src))
    end
  end
  if #liars > 0 then
    parts[#parts + 1] = "rejected mismatched data from " .. list_words(liars)
  end
  if self:committed() then
    parts[#parts + 1] = string.format("wrote %s %s", M.format_bytes(self.bytes_written or 0),
      self.rebuilt and "into a rebuilt copy of the image" or "in place")
  elseif self.dry_run then
    parts[#parts + 1] = "nothing was written (a dry run)"
  else
    parts[#parts + 1] = "nothing was written"
  end
  local p = self.policy or {}
  if p.local_source_path then
    parts[#parts + 1] = string.format('the image\'s policy named "%s"', p.local_source_path)
  end
  return string.format("%s: %s.", head, table.concat(parts, "; "))
end

local function source_line(i, src)
  local what = {src.kind or "?", src.origin or "?"}
  if (src.index or 0) > 0 then
    what[#what + 1] = "image " .. src.index
  end
  local s = string.format("  [%d] %s (%s)", i, source_name(src), table.concat(what, ", "))
  if src.status == "not_contacted" then
    return s .. ": not contacted (every blob was found before its turn)"
  end
  if not src.usable then
    return s .. ": unusable: " .. (src.error or "cannot be opened")
  end
  s = s .. string.format(": %s used, %s read", plural(src.blobs_used or 0, "blob"),
    M.format_bytes(src.bytes_read or 0))
  if (src.blobs_not_found or 0) > 0 then
    s = s .. string.format(", %s not found", plural(src.blobs_not_found, "blob"))
  end
  if (src.blobs_rejected or 0) > 0 then
    s = s .. string.format("; MISMATCHED: %s with the right name or SHA-1 but the wrong bytes "
      .. "rejected (this source lies: a different version, or damaged)",
      plural(src.blobs_rejected, "candidate"))
  end
  return s
end

-- A remote source: what was asked of the server, and what it did.
local function remote_lines(src, add)
  if src.kind ~= "http" or (src.requests or 0) == 0 then
    return
  end
  add("      %s, %s fetched in %s (%s)%s%s", plural(src.requests, "request"),
    M.format_bytes(src.bytes_fetched or 0), plural(src.round_trips or 0, "round trip"),
    M.format_bytes(src.bytes_asked or 0) .. " asked",
    (src.retries or 0) > 0 and ", " .. plural(src.retries, "retry", "retries") or "",
    (src.failures or 0) > 0 and ", " .. plural(src.failures, "failed request") or "")
  for _, n in ipairs(src.notes or {}) do
    add("      server: %s", n)
  end
end
M.source_line = source_line

entry_type("Source", function(src)
  return (source_line(1, src):gsub("^%s*%[1%] ", ""))
end)

function restore_lines(self)
  local out = {}
  local function add(fmt, ...)
    out[#out + 1] = string.format(fmt, ...)
  end
  add("Image:    %s%s", self.image or "?", (self.index and self.index ~= 0)
    and string.format(" (image %d)", self.index) or " (all images)")
  add("State:    %s (DISM %d), was %s (DISM %d)", self.state, self.health or -1,
    self.state_before or "?", self.health_before or -1)
  if self.record_note then
    add("Record:   %s", self.record_note)
  end
  local repaired, left = self.repaired or {}, self.unrepaired or self.damaged or {}
  if #repaired + #left > 0 then
    add("Damage:   %s", self.scanned and "found by a full scan now"
      or self.recorded_at and string.format("recalled from the full scan of %s (use_record)",
        M.format_recorded(self.recorded_at))
      or "recalled from the last full scan of this file (state store)")
    add("Restore:  %d of %s %s; %s; %s", #repaired, plural(#repaired + #left, "damaged blob"),
      self.dry_run and "would be repaired (a dry run)" or "repaired",
      not self:committed() and "nothing written (the image is as it was)"
        or string.format("%s written %s", M.format_bytes(self.bytes_written or 0),
          self.rebuilt and "into a compacted copy renamed over the image" or "in place"),
      M.format_seconds(self.seconds))
  elseif self.state == "nonrepairable" then
    add("Restore:  not possible: the image's structure cannot be read; nothing was written")
  else
    add("Restore:  nothing to repair; %s", what_checked(self))
  end
  local sources = self.sources or {}
  if #repaired > 0 then
    local list = uses_of(self.repaired)
    if #list > 0 then
      add("Repaired files (%d):", #list)
      local img
      for _, e in ipairs(list) do
        if e.image ~= img then
          img = e.image
          add("  image %d:", img)
        end
        add("    %s  <- [%s] %s", e.path, tostring(e.blob.source or "?"),
          source_name(sources[e.blob.source]))
      end
    end
    add("Repaired blobs (%d):", #repaired)
    for _, rp in ipairs(repaired) do
      add("  %s  %s  from [%s] %s (%s%s)", rp.sha1, M.format_bytes(rp.size), tostring(rp.source or "?"),
        source_name(sources[rp.source]),
        rp.raw_copy and "compressed bytes copied as they were" or "written anew",
        #(rp.paths or {}) == 0 and "; no file path known: a directory tree, or a file of one that "
          .. "was damaged" or "")
    end
  end
  local dropped = self.dropped or {}
  if #dropped > 0 then
    add("Dropped (%d): damaged blobs no image uses; their entries were removed from the blob table",
      #dropped)
    for _, d in ipairs(dropped) do
      add("  %s  %s  %s", d.sha1, M.format_bytes(d.size), d.reason)
    end
  end
  if #left > 0 then
    local skipped_only = true
    for _, d in ipairs(left) do
      skipped_only = skipped_only and d.code == "policy_disallowed" and d.policy_reason ~= nil
    end
    local why = left[1].code == "nonrepairable" and "the image cannot be repaired in place"
      or skipped_only and "skipped by policy (0x800F0907)"
      or left_why(left, true)
    add_damage(self, add, left, "Not repaired (%d): " .. why:gsub("%%", "%%%%"),
      "Files not repaired (%d):")
  end
  if #sources > 0 then
    add("Sources (%d, in the order tried):", #sources)
    for i, src in ipairs(sources) do
      add("%s", source_line(i, src))
      remote_lines(src, add)
    end
  elseif #left > 0 then
    add("Sources:  none given%s", self.no_policy and "" or " and none in the image's policy")
  end
  add("Policy:   %s", policy_text(self))
  if self.limit_access then
    add("Limit access: yes (no remote default source)")
  end
  if (self.default_sources or 0) > 0 and self.default_barred then
    add("Repair server: %s configured, not asked (%s)", plural(self.default_sources, "URL"),
      self.default_barred == "policy" and "the image's policy sets UseWindowsUpdate 2"
        or "limit_access")
  end
  local problems = self.problems or {}
  if #problems > 0 then
    add("Problems (%d):", #problems)
    for _, p in ipairs(problems) do
      add("  [%s] %s: %s", p.severity, p.kind, p.message)
    end
  end
  return out
end

function Report:__tostring()
  return self:summary() .. "\n" .. table.concat(self:lines(), "\n")
end

return M
