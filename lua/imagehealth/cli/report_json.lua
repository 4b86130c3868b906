-- imagehealth.cli.report_json: the shapes of the CLI's --json output, built
-- from the typed fields of info tables and reports (never from their text).
--
--   report_json.info(info)       `info --json`
--   report_json.check(report)    `check --json`
--   report_json.restore(report)  `restore --json`: the check's plus what a
--                                restore adds
--   report_json.seal(dir, reference, where)
--
-- Lists are marked as arrays, so that an empty one is [] and not {}.

local json = require "imagehealth.json"

local M = {}

-- A JSON array of each(item) for the items of a list (or of the items
-- themselves).
local function list(t, each)
  local a = json.array()
  for i, v in ipairs(t or {}) do
    a[i] = each and each(v) or v
  end
  return a
end

-- The named fields of t, in a new table.
local function pick(t, names)
  local out = {}
  for _, k in ipairs(names) do
    out[k] = t[k]
  end
  return out
end

local IMAGE_FIELDS = {"index", "name", "description", "file_count", "dir_count", "blob_count",
                      "total_bytes", "metadata_ok"}
local INFO_FIELDS = {"guid", "version", "compression", "chunk_size", "solid", "parts",
                     "image_count", "boot_index", "blob_count", "file_size", "has_integrity",
                     "index"}

function M.info(info)
  local t = pick(info, INFO_FIELDS)
  t.image = info.path
  t.images = list(info.images, function(im) return pick(im, IMAGE_FIELDS) end)
  return t
end

local DAMAGE_FIELDS = {"sha1", "size", "reason", "detail", "is_metadata", "solid", "part",
                       "offset", "stored_size", "code", "hresult", "policy_reason",
                       "path", "want_type", "found_type"}

-- What one source said of a blob (a restore's `tried` lists).
local function try(tr)
  return pick(tr, {"source", "name", "spec", "status", "reason"})
end

local function damage(d)
  local t = pick(d, DAMAGE_FIELDS)
  t.tried = d.tried and list(d.tried, try) or nil
  t.images = list(d.images)
  t.paths = list(d.paths)
  t.refs = list(d.refs, function(ref) return {image = ref.image, path = ref.path} end)
  return t
end

local function problem(p)
  return {kind = p.kind, severity = p.severity, message = p.message}
end

local CHECK_FIELDS = {"image", "index", "state", "health", "scanned", "from_record",
                      "recorded_at", "record_note", "blobs_checked", "bytes_checked", "seconds",
                      "scan_kind", "bytes_deep_scanned", "bytes_fingerprinted", "scan_note",
                      -- an applied tree
                      "tree", "reference", "files_checked", "extra_omitted",
                      "named_streams_skipped", "links_unverified"}

function M.check(r)
  local t = pick(r, CHECK_FIELDS)
  t.damaged = list(r.damaged, damage)
  t.problems = list(r.problems, problem)
  t.extra = r.tree and list(r.extra) or nil
  return t
end

local REPAIRED_FIELDS = {"sha1", "size", "source", "source_spec", "source_name", "raw_copy",
                         "path", "action", "is_metadata"}

local function repaired(rp)
  local t = pick(rp, REPAIRED_FIELDS)
  t.tried = list(rp.tried, try)
  t.paths = list(rp.paths)
  t.images = list(rp.images)
  return t
end

local SOURCE_FIELDS = {"spec", "kind", "origin", "name", "path", "index", "usable", "error",
                       "bytes_read", "blobs_used", "blobs_rejected", "blobs_not_found",
                       "status", "error_code",
                       "requests", "bytes_fetched", "bytes_asked", "retries", "failures",
                       "round_trips"}

local function source(src)
  local t = pick(src, SOURCE_FIELDS)
  t.notes = src.notes and list(src.notes) or nil
  return t
end

local RESTORE_FIELDS = {"state_before", "health_before", "rebuilt", "dry_run", "bytes_planned",
                        "limit_access", "default_sources", "default_barred", "no_policy"}

function M.restore(r)
  local t = M.check(r)
  for k, v in pairs(pick(r, RESTORE_FIELDS)) do
    t[k] = v
  end
  t.restored = true
  t.bytes_written = r:committed() and r.bytes_written or 0
  t.repaired = list(r.repaired, repaired)
  t.unrepaired = list(r.unrepaired, damage)
  t.dropped = list(r.dropped, damage)
  t.sources = list(r.sources, source)
  t.policy = pick(r.policy or {}, {"local_source_path", "use_windows_update", "note"})
  return t
end

function M.seal(dir, reference, where)
  return {tree = dir, reference = reference, seal = where}
end

return M
