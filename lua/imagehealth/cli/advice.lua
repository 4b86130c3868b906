-- imagehealth.cli.advice: the last paragraph of the CLI's text output, what
-- to do next, as a command the user can paste.  Built from the reports'
-- typed fields (state, scanned, codes, sources' status).
--
--   advice.check(report, image, o)     an image's check
--   advice.tree(report, dir, o)        an applied tree's check
--   advice.restore(report, image, o)   an image's restore

local report = require "imagehealth.report"

local advice = {}

local UNREADABLE = "The image's structure is unreadable, so it cannot be repaired in place: "
  .. "replace it with a known-good copy."

local function shell_quote(s)
  if s:match("^[%w%./_%-+=:,@]+$") then
    return s
  end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- "IMAGE --index N" as the user gave them, quoted for a shell.
local function image_args(image, o)
  return shell_quote(image) .. (o.index and (" --index " .. o.index) or "")
end

local function recalled(r, args)
  return string.format(" This result was recalled from an earlier scan (%s); run "
    .. "`imagehealth check %s --scan` to check again.",
    r.recorded_at and ("the full scan of " .. report.format_recorded(r.recorded_at))
      or "time unknown", args)
end

function advice.check(r, image, o)
  local args = image_args(image, o)
  if r.state == "healthy" then
    if not r.scanned then
      return string.format("No damage is recorded. A quick check does not read the data: run "
        .. "`imagehealth check %s --scan` to verify every blob.", args)
    end
    return "Nothing to do."
  elseif r.state == "repairable" then
    return "The damaged blobs can be restored from a good copy of the same image (any WIM or "
      .. "ESD holding the same files, or a directory holding the extracted image): run e.g. "
      .. string.format("`imagehealth restore %s --source GOOD.wim`.", args)
      .. (r.from_record and recalled(r, args) or "")
  end
  return UNREADABLE
end

function advice.tree(r, image, o)
  local args = shell_quote(image)
    .. (o.reference and (" --reference " .. shell_quote(o.reference)) or "")
  if r.state == "healthy" then
    if not r.scanned then
      return string.format("Nothing differs at a glance. Run `imagehealth check %s --scan` to "
        .. "hash every file.", args)
    end
    return "Nothing to do."
  elseif r.state == "repairable" then
    return string.format("Run `imagehealth restore %s` to put the listed files back from the "
      .. "reference (add --source S for other places that have them).", args)
  end
  return "The reference cannot be read: give another one (--reference wim:PATH:INDEX)."
end

-- What the unrepaired blobs' codes say beyond "no source had it".
local function code_lines(r, lines)
  local codes = {}
  for _, d in ipairs(r.unrepaired or {}) do
    codes[d.code or ""] = true
  end
  if codes.download_failed then
    lines[#lines + 1] = "Some could not be downloaded from a remote source (0x800F0906 download "
      .. "failed): the server's answers are listed under Sources; run the restore again later."
  end
  if codes.policy_disallowed and r.default_barred then
    lines[#lines + 1] = "The default repair server was not asked (0x800F0907): "
      .. (r.default_barred == "policy" and "the image's policy sets UseWindowsUpdate to 2."
        or "--limit-access was given; run without it to use the repair server.")
  end
end

-- The sources that could not be used, and a hint when a policy path was
-- left unmapped.
local function source_lines(r, lines)
  local unmapped, unusable = false, {}
  for i, src in ipairs(r.sources or {}) do
    if not src.usable and src.status ~= "not_contacted" then
      unmapped = unmapped or src.status == "unmapped"
      unusable[#unusable + 1] = string.format("[%d] %s", i, src.spec)
    end
  end
  if #unusable > 0 then
    lines[#lines + 1] = "Some sources could not be used: " .. table.concat(unusable, ", ") .. "."
  end
  if unmapped then
    lines[#lines + 1] = "The image's policy names Windows paths: map them to local ones with "
      .. "--path-map 'C:\\Sources=/mnt/sources'."
  end
end

local function damage_left(r, args)
  local lines = {"No source had the files listed under \"Files not repaired\" (0x800F081F "
    .. "source missing). Add a --source that has these files (a WIM or ESD of the same build, "
    .. "e.g. --source wim:GOOD.wim:1, or a directory holding the extracted image) and run "
    .. string.format("`imagehealth restore %s --source ...` again; what was repaired is kept.",
      args)}
  code_lines(r, lines)
  source_lines(r, lines)
  return table.concat(lines, " ")
end

function advice.restore(r, image, o)
  local args = image_args(image, o)
  local repaired = #(r.repaired or {})
  if r.dry_run and repaired > 0 then
    return "A dry run: nothing was written. Run the same command without --dry-run to repair."
  elseif r.state == "healthy" then
    if repaired == 0 then
      return "Nothing to do: no damage is known. To read and verify every blob again, run "
        .. string.format("`imagehealth check %s --scan`.", args)
    end
    return "Nothing left to do: every damaged blob was repaired and verified."
  elseif r.state == "nonrepairable" then
    return UNREADABLE
  end
  return damage_left(r, args)
end

return advice
