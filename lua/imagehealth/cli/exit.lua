-- imagehealth.cli.exit: the CLI's exit statuses, and how a command ends the
-- run early (an error raised through the command, so that its sessions and
-- jobs are closed on the way out, then turned into a message and a status by
-- imagehealth.cli).
--
--   exit.by_state[state]       0 healthy, 1 repairable, 2 nonrepairable
--   exit.ERROR, exit.INTERRUPTED
--   exit.with(code, message)   raises; message goes to stderr as it is
--   exit.error(err)            raises an imagehealth error (its text already
--                              says "imagehealth: code (HRESULT): ...")
--   exit.planned(e) -> bool    e was raised by with/error
--   exit.is_interrupt(e)       e is lua5.4's error for SIGINT

local exit = {
  ERROR = 3,
  INTERRUPTED = 130,
  by_state = {healthy = 0, repairable = 1, nonrepairable = 2},
}

local Planned = {__name = "imagehealth.cli.exit"}

function exit.with(code, message)
  error(setmetatable({code = code, message = message}, Planned), 0)
end

function exit.error(err)
  exit.with(exit.ERROR, tostring(err))
end

function exit.planned(e)
  return getmetatable(e) == Planned
end

function exit.is_interrupt(e)
  return type(e) == "string" and e:match("interrupted!$") ~= nil
end

return exit
