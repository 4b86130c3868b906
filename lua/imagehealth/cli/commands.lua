-- imagehealth.cli.commands: the CLI's commands, on the imagehealth module.
-- Each takes the parsed options (imagehealth.cli.args) and returns the exit
-- status; an error ends the run through imagehealth.cli.exit.
--
--   commands.info(o)  commands.check(o)  commands.restore(o)  commands.seal(o)

local ih = require "imagehealth"
local exit = require "imagehealth.cli.exit"
local progress = require "imagehealth.cli.progress"
local render = require "imagehealth.cli.render"

local commands = {}

local function open_session(o)
  local s, err = ih.open(o.image, {index = o.index, state_dir = o.state_dir, threads = o.threads,
                                   reference = o.reference,
                                   case_insensitive = o.case_insensitive,
                                   -- an http(s) reference's CA, proxy, headers...
                                   http = o.reference and o.http or nil})
  if not s then
    exit.error(err)
  end
  return s
end

-- The progress callback and the function that clears the bar, or nothing.
local function progress_for(o)
  if progress.wanted(o) then
    return progress.bar()
  end
  return nil, function() end
end

local function exit_for(state)
  return exit.by_state[state] or exit.ERROR
end

function commands.info(o)
  local s <close> = open_session(o)
  local info, err = s:info()
  if not info then
    exit.error(err)
  end
  render.info(info, o)
  return 0
end

function commands.check(o)
  local s <close> = open_session(o)
  local show, clear = progress_for(o)
  local state, r = s:check_health{scan = o.scan or o.deep, deep = o.deep, threads = o.threads,
                                  progress = show}
  clear()
  if not state then
    exit.error(r)
  end
  render.check(r, o.image, o)
  return exit_for(state)
end

local function restore_options(o)
  return {sources = o.sources, limit_access = o.limit_access, path_map = o.path_map,
          no_policy = o.no_policy, rebuild = o.rebuild, threads = o.threads,
          use_record = o.use_record, no_reference_source = o.no_reference_source,
          http = o.http}
end

-- Waits for a restore job.  On SIGINT (the first; another one now kills the
-- process, which is safe too) the job was told to cancel: before the commit
-- point it ends cancelled with the image as it was; past it the restore
-- completes, and that is what to report.
local function wait_restore(j, show, clear)
  local ok, state, r = pcall(j.wait, j, {progress = show})
  if ok then
    clear()
    return state, r
  elseif not exit.is_interrupt(state) then
    error(state, 0)
  end
  state, r = j:wait()
  clear()
  if not state and r.code == "cancelled" then
    exit.with(exit.INTERRUPTED,
      "imagehealth: interrupted: the restore was cancelled; the image is as it was")
  elseif state then
    io.stderr:write("imagehealth: interrupted after the repair was committed: the restore "
      .. "completed\n")
  end
  return state, r
end

function commands.restore(o)
  local s <close> = open_session(o)
  local start = o.dry_run and s.restore_plan_job or s.restore_health_job
  local j, err = start(s, restore_options(o))
  if not j then
    exit.error(err)
  end
  local _ <close> = j
  local state, r = wait_restore(j, progress_for(o))
  if not state then
    exit.error(r)
  end
  render.restore(r, o.image, o)
  return exit_for(state)
end

function commands.seal(o)
  local s <close> = open_session(o)
  local where, err = s:seal(o.output)
  if not where then
    exit.error(err)
  end
  render.seal(o.image, where, o)
  return 0
end

return commands
