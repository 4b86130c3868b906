#!/usr/bin/env lua5.4
-- event_loop.lua - embedding imagehealth in a cqueues event loop: the scans
-- run on C threads, the loop stays free (a ticker keeps running), and each
-- job is waited on by polling its eventfd, never by blocking.
--
--   lua5.4 examples/event_loop.lua IMAGE [IMAGE...]
local cqueues = require "cqueues"
local ih = require "imagehealth"

local loop = cqueues.new()
local pending = #arg

for _, path in ipairs(arg) do
  loop:wrap(function()
    local s = assert(ih.open(path))
    -- poll = cqueues.poll: the driving loop yields to cqueues while waiting
    local state, report = s:check_health{scan = true, poll = cqueues.poll,
      progress = function(ev)
        if ev.type == "progress" and ev.phase == "scan" then
          io.write(("%s: %5.1f%%\n"):format(path, ev.percent or 0))
        end
      end}
    print(path, state and report:summary() or tostring(report))
    s:close()
    pending = pending - 1
  end)
end

loop:wrap(function()
  while pending > 0 do
    io.write("  (event loop still responsive)\n")
    cqueues.sleep(0.05)
  end
end)

assert(loop:loop())
