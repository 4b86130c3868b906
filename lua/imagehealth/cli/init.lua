-- imagehealth.cli: the `imagehealth` command line tool (bin/imagehealth is
-- its entry point).
--
--   require("imagehealth.cli").main(argv) -> exit status
--
-- Parses argv (imagehealth.cli.args, on lua-argparse), loads the module and
-- runs the command (imagehealth.cli.commands); turns usage errors, errors and
-- interrupts into a message on stderr and an exit status: 0 healthy,
-- 1 repairable, 2 nonrepairable, 3 error or usage error, 130 interrupted.

local exit = require "imagehealth.cli.exit"

local cli = {}

-- Requires a module the CLI needs, or ends the run saying how to get it.
local function need(name, how)
  local ok, m = pcall(require, name)
  if not ok then
    exit.with(exit.ERROR, string.format("imagehealth: cannot load %s (%s):\n%s", name, how,
      tostring(m)))
  end
  return m
end

local function print_version()
  local ih = need("imagehealth", "did you run make?")
  io.stdout:write("imagehealth ", ih.version, "\n")
end

local function usage_error(msg, command)
  exit.with(exit.ERROR, string.format("imagehealth: %s%s\nTry 'imagehealth %s--help' for more "
    .. "information.", command and (command .. ": ") or "", msg,
    command and (command .. " ") or ""))
end

local function run(argv)
  local args = need("imagehealth.cli.args", "install the Debian package lua-argparse: "
    .. "tools/install-deps")
  local o, msg, command = args.parse(argv, print_version)
  if not o then
    usage_error(msg, command)
  end
  need("imagehealth", "did you run make?")
  need("imagehealth.json", "install the Debian package lua-dkjson: tools/install-deps")
  return require("imagehealth.cli.commands")[o.command](o)
end

-- The message for an error that ended the run, and its exit status.
local function ending(e)
  if exit.planned(e) then
    return e.message, e.code
  elseif exit.is_interrupt(e) then
    return "imagehealth: interrupted", exit.INTERRUPTED
  end
  return "imagehealth: " .. debug.traceback(tostring(e), 3), exit.ERROR
end

function cli.main(argv)
  local msg, code
  local ok, rc = xpcall(run, function(e)
    msg, code = ending(e)
  end, argv)
  if ok then
    return rc
  end
  io.stderr:write(msg, "\n")
  return code
end

return cli
