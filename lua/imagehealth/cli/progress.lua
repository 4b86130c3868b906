-- imagehealth.cli.progress: the progress bar the CLI draws on stderr (phase,
-- percent, MB/s, ETA), and whether to draw one.
--
--   progress.wanted(o) -> bool       --progress, --no-progress, else a terminal
--   progress.bar() -> callback, clear

local progress = {}

function progress.wanted(o)
  return not o.no_progress and (o.progress or require("imagehealth.core").isatty(2))
end

local function terminal_width()
  local cols = tonumber(os.getenv("COLUMNS") or "")
  return cols and cols >= 40 and cols or 80
end

local function format_eta(s)
  if not s or s ~= s or s == math.huge or s < 0 then
    return "--:--"
  end
  s = math.floor(s + 0.5)
  local h, m, sec = s // 3600, s % 3600 // 60, s % 60
  if h > 0 then
    return string.format("%d:%02d:%02d", h, m, sec)
  end
  return string.format("%d:%02d", m, sec)
end

-- One line of the bar: phase, [####....], percent, rate, ETA.
local function bar_line(ev, rate, width)
  local pct = ev.percent or 0
  local eta
  if rate > 0 and (ev.bytes_total or 0) > 0 then
    eta = (ev.bytes_total - ev.bytes_done) / rate
  end
  local tail = string.format(" %5.1f%%  %7.1f MB/s  ETA %s", pct, rate / 1e6, format_eta(eta))
  local head = string.format("%-9s", ev.phase or "")
  local barw = width - 1 - #head - #tail - 2
  if barw < 10 then
    return head .. tail
  end
  local fill = math.floor(barw * pct / 100 + 0.5)
  return head .. "[" .. string.rep("#", fill) .. string.rep(".", barw - fill) .. "]" .. tail
end

-- Returns a progress callback drawing a bar on stderr (at most 10 redraws a
-- second, by the job's clock) and a function that clears it.
function progress.bar()
  local last, drawn = -1, false
  local phase, phase_t0 = nil, 0
  local width = terminal_width()
  local function draw(ev, force)
    -- a new phase shows at once; within one, at most 10 redraws a second
    if not force and ev.phase == phase and ev.elapsed and ev.elapsed - last < 0.1 then
      return
    end
    last = ev.elapsed or 0
    if ev.phase ~= phase then -- counters restart with each phase
      phase, phase_t0 = ev.phase, ev.elapsed or 0
    end
    local dt = (ev.elapsed or 0) - phase_t0
    local rate = dt > 0 and (ev.bytes_done or 0) / dt or 0
    io.stderr:write("\r", bar_line(ev, rate, width))
    io.stderr:flush()
    drawn = true
  end
  local function clear()
    if drawn then
      io.stderr:write("\r", string.rep(" ", width - 1), "\r")
      io.stderr:flush()
      drawn = false
    end
  end
  return function(ev)
    if ev.type == "progress" or ev.type == "done" then
      draw(ev, ev.type == "done")
    elseif ev.type == "damage" or ev.type == "message" then
      -- print on its own line, then redraw the bar under it
      clear()
      if ev.text then
        io.stderr:write(ev.type == "damage" and "damaged: " or "", ev.text, "\n")
      end
      draw(ev, true)
    end
  end, clear
end

return progress
