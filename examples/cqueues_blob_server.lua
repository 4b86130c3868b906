#!/usr/bin/env lua5.4
-- cqueues_blob_server.lua - a restore whose source is a Lua script that
-- fetches blobs by SHA-1 over a socket, all in one cqueues event loop.
--
--   lua5.4 examples/cqueues_blob_server.lua IMAGE TREE_DIR
--
-- The program builds a blob store (a directory of files named by the SHA-1
-- of their contents, made from TREE_DIR: the extracted image, say), serves
-- it from a coroutine on a loopback socket (a one-line protocol: the client
-- sends "GET <sha1>\n", the server answers "<size>\n" and the bytes, or
-- "-1\n"), and repairs IMAGE with a scripted source whose lookup asks that
-- server.  Every socket read yields to the cqueues controller, and so does
-- the restore's wait (poll = cqueues.poll): the server, the lookups and the
-- restore share the one thread and never block each other.
local cqueues = require "cqueues"
local socket = require "cqueues.socket"
local ih = require "imagehealth"

local image, tree = arg[1], arg[2]
if not image or not tree then
  io.stderr:write("usage: cqueues_blob_server.lua IMAGE TREE_DIR\n")
  os.exit(3)
end

local function q(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The blob store: every regular file of the tree, named by its SHA-1.
local store = os.tmpname()
os.remove(store)
assert(os.execute("mkdir -p " .. q(store)))
do
  local p = io.popen("cd " .. q(tree) .. " && find . -type f -print0 | xargs -0 -r sha1sum")
  for line in p:lines() do
    local sha1, path = line:match("^(%x+)  (.*)$")
    if sha1 then
      os.execute(string.format("cp %s %s", q(tree .. "/" .. path), q(store .. "/" .. sha1)))
    end
  end
  p:close()
end

local cq = cqueues.new()
local served = 0

-- The server: a coroutine accepting connections, one coroutine each.
local listener = socket.listen{host = "127.0.0.1", port = 0}
local _, host, port = listener:localname()
local serving = true
cq:wrap(function()
  while serving do
    local con = listener:accept(0.05)  -- yields; a timeout to see `serving`
    if con then cq:wrap(function()
      con:setmode("b", "b")
      for line in con:lines("*l") do
        local sha1 = line:match("^GET (%x+)$")
        local f = sha1 and #sha1 == 40 and io.open(store .. "/" .. sha1, "rb")
        if f then
          local data = f:read("a")
          f:close()
          con:write(#data, "\n", data)
          served = served + 1
        else
          con:write("-1\n")
        end
        con:flush()
      end
      con:close()
    end) end
  end
  listener:close()
end)

-- The scripted source: one connection, reused for every lookup.
local con
local blobserver = {name = "blobserver", lookup = function(blob)
  if not con then
    con = assert(socket.connect(host, port))
    con:setmode("b", "b")
  end
  con:write("GET ", blob.sha1, "\n")
  con:flush()
  local size = tonumber(con:read("*l"))  -- yields until the line is there
  if not size or size < 0 then
    return nil, "the blob server has no " .. blob.sha1
  end
  local got = 0
  return function()                      -- a reader: pieces, each read yielding
    if got >= size then
      return nil
    end
    local piece = con:read(math.min(65536, size - got))
    if not piece then
      error("the blob server closed the connection")
    end
    got = got + #piece
    return piece
  end
end}

local status = 3
cq:wrap(function()
  local s <close> = assert(ih.open(image))
  local state, report = s:restore_health{
    sources = {blobserver},
    poll = cqueues.poll,               -- wait for the job inside the loop
    on_repaired = function(blob, source)
      print(string.format("repaired %s (%s) from %s", blob.paths[1] or blob.sha1,
        ih.format_bytes(blob.size), source.name))
    end,
  }
  if not state then
    io.stderr:write(tostring(report), "\n")
  else
    print(report:summary())
    print(string.format("the blob server served %d blob%s", served, served == 1 and "" or "s"))
    status = ih.states[state]
  end
  if con then
    con:close()
  end
  serving = false
end)

local ok, err = cq:loop()
os.execute("rm -rf " .. q(store))
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(3)
end
os.exit(status)
