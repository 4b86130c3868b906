-- imagehealth.tree_report: the text of reports on an applied image tree
-- (report.tree == true).  A tree report has, besides a check's fields:
--   report.reference        the reference as used ("wim:PATH:INDEX", "seal:FILE")
--   report.files_checked    files compared
--   report.damaged          one entry per path: path, reason ("modified",
--                           "missing", "wrong_type", "suspect" (quick check:
--                           mtime differs, not read)), want_type, found_type
--                           ("file", "directory", "link", "special file",
--                           "none"), sha1 and size the reference wants, detail
--   report.extra            paths the reference does not have (never touched)
--   report.extra_omitted    further extra paths not listed
--   report.named_streams_skipped, report.links_unverified
-- A restore's report.repaired entries carry path and action ("rewritten",
-- "created", "replaced a directory (and what it held)", ...).

local M = {}

local function plural(n, word, words)
  return string.format("%d %s", n, n == 1 and word or (words or word .. "s"))
end

local function format_bytes(n)
  return require("imagehealth.report").format_bytes(n)
end

local function counts(list)
  local by, order = {}, {}
  for _, d in ipairs(list or {}) do
    local k = (d.reason or "?"):gsub("_", " ")
    if not by[k] then
      by[k] = 0
      order[#order + 1] = k
    end
    by[k] = by[k] + 1
  end
  local parts = {}
  for _, k in ipairs(order) do
    parts[#parts + 1] = string.format("%d %s", by[k], k)
  end
  return table.concat(parts, ", ")
end

local function what_checked(r)
  local rep = require("imagehealth.report")
  if r.scanned then
    return string.format("full scan of %s (%s) in %s", plural(r.files_checked or 0, "file"),
      format_bytes(r.bytes_checked or 0), rep.format_seconds(r.seconds or 0))
  end
  return string.format("quick check of %s (types, sizes and modified times; a different time "
    .. "alone makes a suspect, not read)", plural(r.files_checked or 0, "file"))
end

local function extra_part(r)
  local n = #(r.extra or {}) + (r.extra_omitted or 0)
  if n == 0 then
    return nil
  end
  return plural(n, "extra path") .. " the reference does not have (listed, never touched)"
end

function M.summary(r)
  local parts = {}
  if r.restored then
    local before = r.before or {}
    local nfix, nleft = #(r.repaired or {}), #(r.unrepaired or {})
    if nfix + nleft == 0 then
      parts[1] = "nothing to restore"
    else
      parts[1] = string.format("%d of %s restored", nfix, plural(nfix + nleft, "path"))
      if nleft > 0 then
        parts[#parts + 1] = string.format("%d left (%s)", nleft, counts(r.unrepaired))
      end
    end
    parts[#parts + 1] = extra_part(before)
    return string.format("%s: %s; %s.", r.state, table.concat(parts, "; "),
      what_checked(before))
  end
  local damaged = r.damaged or {}
  if #damaged > 0 then
    parts[1] = string.format("%s differ%s from the reference (%s)", plural(#damaged, "path"),
      #damaged == 1 and "s" or "", counts(damaged))
  end
  for _, p in ipairs(r.problems or {}) do
    parts[#parts + 1] = p.message
  end
  parts[#parts + 1] = extra_part(r)
  if #parts == 0 then
    parts[1] = r.scanned and "every file matches the reference" or "nothing differs at a glance"
  end
  return string.format("%s: %s; %s.", r.state, table.concat(parts, "; "), what_checked(r))
end

local function finding_line(add, d)
  add("  %-10s %s", (d.reason or "?"):gsub("_", " "), d.path or (d.paths and d.paths[1]) or "?")
  local extra = d.detail ~= "" and d.detail or nil
  if d.code then
    extra = (extra and extra .. " " or "") .. "[" .. d.code .. "]"
  end
  if extra then
    add("             %s", extra)
  end
end

local function common(r, add, c)
  add("Tree:      %s", r.image or "?")
  add("Reference: %s", c.reference or "?")
  add("State:     %s (DISM %d)", r.state, r.health or -1)
  add("Checked:   %s", what_checked(c))
  if (c.named_streams_skipped or 0) > 0 then
    add("Note:      %s not checked: a POSIX tree has no place for them",
      plural(c.named_streams_skipped, "named data stream"))
  end
  if (c.links_unverified or 0) > 0 then
    add("Note:      %s (reparse points) checked as links only",
      plural(c.links_unverified, "link"))
  end
end

local function extras(add, c)
  local ex = c.extra or {}
  if #ex > 0 then
    add("Extra (%d, never touched):", #ex + (c.extra_omitted or 0))
    for _, p in ipairs(ex) do
      add("  %s", p)
    end
    if (c.extra_omitted or 0) > 0 then
      add("  ... and %d more", c.extra_omitted)
    end
  end
end

function M.lines(r)
  local out = {}
  local function add(fmt, ...)
    out[#out + 1] = string.format(fmt, ...)
  end
  local c = r.restored and (r.before or {}) or r
  common(r, add, c)
  if r.restored then
    local rep = r.repaired or {}
    if #rep > 0 then
      add("Restored (%d):", #rep)
      for _, rp in ipairs(rep) do
        local from = rp.source and string.format(" from [%d] %s", rp.source, rp.source_spec or "?") or ""
        add("  %s: %s%s", rp.path or (rp.paths and rp.paths[1]) or "?", rp.action or "restored", from)
      end
    end
    local left = r.unrepaired or {}
    if #left > 0 then
      add("Not restored (%d):", #left)
      for _, d in ipairs(left) do
        finding_line(add, d)
      end
    end
    -- The sources and the policy are said as for images (the reference
    -- first, then the caller's, the tree's policy, the repair server).
    local R = require "imagehealth.report"
    if #(r.sources or {}) > 0 then
      add("Sources (%d, in the order tried):", #r.sources)
      for i, s in ipairs(r.sources) do
        add("%s", R.source_line(i, s))
      end
    end
    add("Policy:   %s", R.policy_text(r))
    if r.limit_access then
      add("Limit access: yes (no remote default source)")
    end
  else
    local dm = r.damaged or {}
    if #dm > 0 then
      add("Findings (%d):", #dm)
      for _, d in ipairs(dm) do
        finding_line(add, d)
      end
    end
    for _, p in ipairs(r.problems or {}) do
      add("Problem:   [%s] %s", p.severity, p.message)
    end
  end
  extras(add, c)
  return out
end

return M
