-- imagehealth.json: the CLI's --json output, encoded by dkjson (Debian
-- package lua-dkjson).  The core module never requires this file.
--
--   json.encode(value [, {indent = true}]) -> string
--   json.array(t)   marks t as an array (so that an empty table encodes as [])
--   json.null       a value that encodes as null
--
-- dkjson does the escaping and the number formatting; this adapter adds what
-- stable, valid output needs on top, in one copy of the value:
--   - object keys sorted (dkjson's keyorder, given every key of the value);
--   - an empty table is {} unless marked with json.array (dkjson would say []);
--   - bytes that are not valid UTF-8 become U+FFFD (JSON text must be UTF-8,
--     and a path on Linux may be any bytes); dkjson passes them through.
-- NaN and infinities become null (dkjson).  lua-cjson was not used: the
-- Debian build (2.1.0) can neither sort keys nor encode an empty array as [].

local dkjson = require "dkjson"

local json = {}

json.null = dkjson.null

-- dkjson's own marks: an array even when empty; an object even when empty.
local array_mt = {__jsontype = "array"}
local object_mt = {__jsontype = "object"}

function json.array(t)
  return setmetatable(t or {}, array_mt)
end

-- Replaces invalid UTF-8 sequences by U+FFFD, keeping valid ones.
local function valid_utf8(s)
  if utf8.len(s) then
    return s
  end
  local out, i = {}, 1
  while i <= #s do
    local ok, bad = utf8.len(s, i)
    if ok then
      out[#out + 1] = s:sub(i)
      break
    end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = "\u{FFFD}"
    i = bad + 1
  end
  return table.concat(out)
end

local function is_array(t)
  if getmetatable(t) == array_mt then
    return true
  end
  local n = #t
  if n == 0 then
    return false
  end
  local count = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      return false
    end
    count = count + 1
  end
  return count == n
end

local copy_value

-- An object's copy: string keys (dkjson would take an object of integer keys
-- for an array), functions left out.
local function copy_object(t, keys, seen)
  local c, n = {}, 0
  for k, v in pairs(t) do
    local tk = type(k)
    if tk ~= "string" and tk ~= "number" then
      error("json.encode: object key of type " .. tk, 0)
    end
    if type(v) ~= "function" then
      k = valid_utf8(tostring(k))
      keys[k] = true
      c[k] = copy_value(v, keys, seen)
      n = n + 1
    end
  end
  if n == 1 and type(c.n) == "number" then
    -- dkjson takes {n = N} for an array of N elements
    local v = c.n
    return setmetatable({}, {__tojson = function()
      return '{"n":' .. dkjson.encode(v) .. "}"
    end})
  end
  return setmetatable(c, object_mt)
end

function copy_value(v, keys, seen)
  local tv = type(v)
  if tv == "string" then
    return valid_utf8(v)
  elseif tv ~= "table" or v == json.null then
    return v
  end
  if seen[v] then
    error("json.encode: cycle in the value", 0)
  end
  seen[v] = true
  local c
  if is_array(v) then
    c = json.array()
    for i = 1, #v do
      c[i] = copy_value(v[i], keys, seen)
    end
  else
    c = copy_object(v, keys, seen)
  end
  seen[v] = nil
  return c
end

function json.encode(v, opts)
  local keys = {}
  local copy = copy_value(v, keys, {})
  local order = {}
  for k in pairs(keys) do
    order[#order + 1] = k
  end
  table.sort(order)
  return dkjson.encode(copy, {keyorder = order, indent = opts and opts.indent and true or nil})
end

return json
