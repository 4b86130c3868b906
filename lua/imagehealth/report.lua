-- imagehealth.report: the Report object a health check returns, and the
-- formatting helpers shared with the CLI.
--
--   report.state            "healthy" | "repairable" | "nonrepairable"
--   report.health           the same as DISM's number (0, 1, 2)
--   report.scanned          a full scan ran now
--   report.from_record      damage recalled from an earlier scan
--   report.recorded_at      unix time of that scan (or nil)
--   report.image, .index    image path, selected index (0: all)
--   report.blobs_checked, .bytes_checked, .seconds
--   report.damaged          list of {sha1, size, reason, detail, is_metadata,
--                           solid, part, offset, stored_size, images = {..},
--                           paths = {..}, refs = {{image=, path=}, ..}}
--   report.problems         list of {kind, severity, message}
--
--   report:summary()        one paragraph for a person
--   report:files()          iterator: path, damage, image over the damaged
--                           files, sorted by image then path
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

function M.new(t)
  return setmetatable(t, Report)
end

function M.is_report(v)
  return getmetatable(v) == Report
end

-- All (image, path, damage) triples, sorted by image then path.
local function file_list(self)
  local list = {}
  for _, d in ipairs(self.damaged or {}) do
    for _, r in ipairs(d.refs or {}) do
      if r.path and r.path ~= "" then
        list[#list + 1] = {image = r.image, path = r.path, damage = d}
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
    return a.damage.sha1 < b.damage.sha1
  end)
  return list
end

-- for path, damage, image in report:files() do ... end
function Report:files()
  local list, i = file_list(self), 0
  return function()
    i = i + 1
    local e = list[i]
    if e then
      return e.path, e.damage, e.image
    end
  end
end

-- Number of damaged files per image: {[image] = n}, and the sorted images.
function Report:files_by_image()
  local per, images = {}, {}
  for _, e in ipairs(file_list(self)) do
    if not per[e.image] then
      per[e.image] = {}
      images[#images + 1] = e.image
    end
    table.insert(per[e.image], e.path)
  end
  return per, images
end

local function what_checked(self)
  if self.scanned then
    return string.format("full scan of %s (%s) in %s", plural(self.blobs_checked or 0, "blob"),
      M.format_bytes(self.bytes_checked), M.format_seconds(self.seconds))
  end
  if self.from_record and self.recorded_at then
    return string.format("quick check (structure and recorded damage; last full scan %s)",
      os.date("%Y-%m-%d %H:%M:%S", math.floor(self.recorded_at)))
  end
  return "quick check (structure and recorded damage; no full scan on record)"
end
M.what_checked = what_checked

function Report:summary()
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

-- The detailed text, as a list of lines (without a hint of what to do).
function Report:lines()
  local out = {}
  local function add(fmt, ...)
    out[#out + 1] = string.format(fmt, ...)
  end
  add("Image:    %s%s", self.image or "?", (self.index and self.index ~= 0)
    and string.format(" (image %d)", self.index) or " (all images)")
  add("State:    %s (DISM %d)", self.state, self.health or -1)
  add("Checked:  %s", what_checked(self))
  local damaged = self.damaged or {}
  if #damaged > 0 then
    add("Damaged blobs (%d):", #damaged)
    for _, d in ipairs(damaged) do
      local where = d.part and d.part > 0
        and string.format("part %d at offset %d, %s stored%s", d.part, d.offset or 0,
          M.format_bytes(d.stored_size), d.solid and ", solid" or "")
        or "not in the blob table"
      add("  %s  %s  %s%s", d.sha1, M.format_bytes(d.size), d.reason,
        d.is_metadata and ("  [metadata" .. (d.images and d.images[1]
          and (" of image " .. d.images[1]) or "") .. "]") or "")
      add("      %s%s", where, (d.detail and d.detail ~= "") and ("; " .. d.detail) or "")
    end
    local per, images = self:files_by_image()
    if #images > 0 then
      local n = 0
      for _, img in ipairs(images) do
        n = n + #per[img]
      end
      add("Damaged files (%d):", n)
      for _, img in ipairs(images) do
        add("  image %d:", img)
        for _, p in ipairs(per[img]) do
          add("    %s", p)
        end
      end
    end
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
