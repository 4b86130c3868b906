-- imagehealth.cli.render: what each command prints on stdout, as text or,
-- with --json, as one JSON object on one line.
--
--   render.info(info, o)
--   render.check(report, image, o)
--   render.restore(report, image, o)
--   render.seal(dir, where, o)

local json = require "imagehealth.json"
local report_json = require "imagehealth.cli.report_json"
local advice = require "imagehealth.cli.advice"

local render = {}

local function write_json(t)
  io.stdout:write(json.encode(t), "\n")
end

-- A report's summary line, a blank line, then its lines.
local function write_report(r)
  local out = io.stdout
  out:write(r:summary(), "\n\n")
  for _, line in ipairs(r:lines()) do
    out:write(line, "\n")
  end
end

function render.info(info, o)
  if o.json then
    return write_json(report_json.info(info))
  end
  io.stdout:write(tostring(info), "\n")
end

function render.check(r, image, o)
  if o.json then
    return write_json(report_json.check(r))
  end
  write_report(r)
  io.stdout:write("\n", r.tree and advice.tree(r, image, o) or advice.check(r, image, o), "\n")
end

function render.restore(r, image, o)
  if o.json then
    return write_json(report_json.restore(r))
  end
  write_report(r)
  if not r.tree then
    io.stdout:write("\n", advice.restore(r, image, o), "\n")
  elseif r.state ~= "healthy" then
    io.stdout:write("\nWhat is listed under \"Not restored\" was left as it was; each line says "
      .. "why.\n")
  end
end

function render.seal(dir, where, o)
  if o.json then
    return write_json(report_json.seal(dir, o.reference, where))
  end
  io.stdout:write(string.format("sealed %s against %s: %s\n", dir, o.reference or "?", where))
end

return render
