-- imagehealth.json: a small JSON encoder for the CLI's --json output.
--
--   json.encode(value [, {indent = "  "}]) -> string
--   json.array(t)   marks t as an array (so that an empty table encodes as [])
--   json.null       a value that encodes as null
--
-- Object keys are sorted, so output is stable.  Strings are escaped per
-- RFC 8259: '"', '\' and all control characters; valid UTF-8 passes through
-- unchanged, and bytes that are not valid UTF-8 become U+FFFD (JSON text
-- must be UTF-8).  NaN and infinities, which JSON cannot carry, become null.

local json = {}

local array_mt = {__name = "imagehealth.json.array"}
json.null = setmetatable({}, {__name = "imagehealth.json.null",
                              __tostring = function() return "null" end})

function json.array(t)
  return setmetatable(t or {}, array_mt)
end

local escapes = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}
for i = 0, 0x1f do
  local c = string.char(i)
  escapes[c] = escapes[c] or string.format("\\u%04x", i)
end
escapes["\127"] = "\\u007f"

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

local function encode_string(s)
  s = valid_utf8(s)
  return '"' .. s:gsub('[%c"\\]', escapes) .. '"'
end

local function encode_number(x)
  if math.type(x) == "integer" then
    return string.format("%d", x)
  end
  if x ~= x or x == math.huge or x == -math.huge then
    return "null"
  end
  if x == math.floor(x) and math.abs(x) < 2^53 then
    return string.format("%.1f", x)
  end
  local s = string.format("%.15g", x)
  if tonumber(s) ~= x then
    s = string.format("%.17g", x)
  end
  return s
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

local encode_value

local function encode_table(t, out, indent, depth, seen)
  if seen[t] then
    error("json.encode: cycle in the value", 0)
  end
  seen[t] = true
  local nl, pad, padin, colon = "", "", "", ":"
  if indent then
    nl = "\n"
    pad = string.rep(indent, depth)
    padin = pad .. indent
    colon = ": "
  end
  if is_array(t) then
    if #t == 0 then
      out[#out + 1] = "[]"
    else
      out[#out + 1] = "[" .. nl
      for i = 1, #t do
        out[#out + 1] = padin
        encode_value(t[i], out, indent, depth + 1, seen)
        out[#out + 1] = (i < #t and "," or "") .. nl
      end
      out[#out + 1] = pad .. "]"
    end
  else
    local keys = {}
    for k, v in pairs(t) do
      local tk = type(k)
      if tk ~= "string" and tk ~= "number" then
        error("json.encode: object key of type " .. tk, 0)
      end
      if type(v) ~= "function" then
        keys[#keys + 1] = tostring(k)
      end
    end
    table.sort(keys)
    if #keys == 0 then
      out[#out + 1] = "{}"
    else
      out[#out + 1] = "{" .. nl
      for i, k in ipairs(keys) do
        local v = t[k]
        if v == nil then
          v = t[tonumber(k)]
        end
        out[#out + 1] = padin .. encode_string(k) .. colon
        encode_value(v, out, indent, depth + 1, seen)
        out[#out + 1] = (i < #keys and "," or "") .. nl
      end
      out[#out + 1] = pad .. "}"
    end
  end
  seen[t] = nil
end

function encode_value(v, out, indent, depth, seen)
  local tv = type(v)
  if v == nil or v == json.null then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "number" then
    out[#out + 1] = encode_number(v)
  elseif tv == "string" then
    out[#out + 1] = encode_string(v)
  elseif tv == "table" then
    encode_table(v, out, indent, depth, seen)
  else
    error("json.encode: cannot encode a " .. tv, 0)
  end
end

function json.encode(v, opts)
  local out = {}
  encode_value(v, out, opts and opts.indent, 0, {})
  return table.concat(out)
end

return json
