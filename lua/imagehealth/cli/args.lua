-- imagehealth.cli.args: the command line's grammar, on lua-argparse (Debian
-- package lua-argparse).  One parser with a subcommand per command; each
-- subcommand lists exactly the options it takes, so `imagehealth CMD --help`
-- shows them and an option of another command is refused.
--
--   args.parse(argv, version) -> o        o.command, o.image, options
--                             -> nil, msg, command   on a usage error
--
-- `version` is called for --version (it prints and exits, as --help does).
-- Values are checked and shaped here (integers, --path-map pairs, the http
-- table), so that the commands get what restore_health and open take.

local argparse = require "argparse"

local args = {}

------------------------------------------------------------------ values

local function positive_integer(name)
  return function(s)
    local n = s:match("^%s*%d+%s*$") and math.tointeger(tonumber(s))
    if not n or n < 1 then
      return nil, string.format("%s needs a positive integer, not '%s'", name, s)
    end
    return n
  end
end

local function non_negative(name, integer)
  return function(s)
    local n = tonumber(s)
    if not n or n < 0 or n ~= n or (integer and not math.tointeger(n)) then
      return nil, string.format("%s needs a %s, not '%s'", name,
        integer and "non-negative integer" or "non-negative number of seconds", s)
    end
    return math.tointeger(n) or n
  end
end

local function non_empty(name)
  return function(s)
    if s == "" then
      return nil, name .. " needs a value"
    end
    return s
  end
end

local function path_map_pair(s)
  local win, dir = s:match("^([^=]+)=(.+)$")
  if not win then
    return nil, string.format("--path-map needs WINPREFIX=LOCALDIR, not '%s'", s)
  end
  return {win, dir}
end

local function http_header(s)
  if not s:match("^[%w-]+:") then
    return nil, "--http-header needs 'Name: value'"
  end
  return s
end

------------------------------------------------------------------ options

-- Options every command takes.
local function common(cmd)
  cmd:option("--index", "Only image N (1-based; default: all images).")
    :argname("N"):convert(positive_integer("--index"))
  cmd:option("--threads", "Worker threads (default: one per CPU).")
    :argname("N"):convert(positive_integer("--threads"))
  cmd:option("--state-dir", "Where scan results are recorded (default: "
    .. "$XDG_STATE_HOME/imagehealth, else ~/.local/state/imagehealth); it must be yours "
    .. "and writable by nobody else, or no record is kept."):argname("DIR")
  cmd:option("--reference", "A tree's reference: wim:PATH[:INDEX] (or a .wim/.esd path), "
    .. "seal:FILE, or seal (the state store's seal of the tree; the default for a "
    .. "directory)."):argname("REF")
  cmd:flag("--case-insensitive", "A tree's names compare case-insensitively (automatic on "
    .. "an ntfs-3g/FUSE, FAT or exFAT mount).")
  cmd:flag("--json", "Print one JSON object on stdout instead of text.")
  cmd:flag("--progress", "Show a progress bar on stderr even when it is not a terminal.")
  cmd:flag("--no-progress", "Never show a progress bar.")
end

local function check_options(cmd)
  cmd:flag("--scan", "Full scan: read and verify every blob (ScanHealth); without it, "
    .. "report structural problems and damage recorded by an earlier scan (CheckHealth). "
    .. "Bytes proven unchanged since the last full scan (by its fingerprints, or by the "
    .. "image's integrity table) are hashed, not decompressed; the verdict is the one a "
    .. "deep scan gives.")
  cmd:flag("--deep", "A full scan that decompresses and verifies every blob, whatever the "
    .. "fingerprints say.")
end

local function restore_options(cmd)
  local sources = cmd:option("--source", "Where good copies of the damaged files are; repeat "
    .. "it, they are tried in order (then the sources of the image's own servicing policy). "
    .. "S is wim:PATH[:INDEX], esd:PATH[:INDEX], a .wim/.esd/.swm path (a split set by its "
    .. "first part), a directory holding the extracted or mounted image, or an http:// or "
    .. "https:// URL of a WIM, ESD or first .swm (only the damaged bytes are downloaded). "
    .. "Every byte is verified by SHA-1 before it is written.")
    :argname("S"):count("*"):target("sources"):convert(non_empty("--source"))
  local limit = cmd:flag("--limit-access", "Never ask the default repair server (the URLs in "
    .. "$IMAGEHEALTH_REPAIR_SOURCES, else ~/.config/imagehealth/repair-sources, else "
    .. "/etc/imagehealth/repair-sources).")
  local no_policy = cmd:flag("--no-policy", "Ignore the LocalSourcePath policy stored in the "
    .. "image (Windows/System32/config/SOFTWARE).")
  local path_map = cmd:option("--path-map", "Map the Windows path prefix WIN of the policy's "
    .. "sources to the local directory DIR, e.g. --path-map 'C:\\Sources=/mnt/sources'; "
    .. "repeatable.")
    :argname("WIN=DIR"):count("*"):convert(path_map_pair)
  local rebuild = cmd:flag("--rebuild", "Write a compacted copy and rename it over the "
    .. "image, instead of appending in place.")
  local dry_run = cmd:flag("--dry-run", "Look the damaged blobs up in the sources and verify "
    .. "them, write nothing (the image is never opened for writing): say which blob would "
    .. "come from which source and what no source has.")
  local use_record = cmd:flag("--use-record", "Trust the damage the last full scan of this "
    .. "very file recorded instead of scanning again (for a script that has just run check "
    .. "--scan); bit rot since that scan goes unrepaired.")
  local no_ref = cmd:flag("--no-reference-source", "Restore a tree: do not take files from "
    .. "the reference image, only from the --source list.")
  cmd:mutex(dry_run, rebuild)
  cmd:group("Repair", sources, limit, no_policy, path_map, rebuild, dry_run, use_record, no_ref)
end

-- The remote sources' options, in a group of their own.
local function http_options(cmd)
  local o = {
    cmd:option("--http-ca-file", "Verify https servers with this CA bundle (verification "
      .. "is always on)."):argname("F"),
    cmd:option("--http-client-cert", "A TLS client certificate (PEM)."):argname("F"),
    cmd:option("--http-client-key", "The client certificate's key (PEM)."):argname("F"),
    cmd:option("--http-proxy", "Use this proxy (default: libcurl's http_proxy, https_proxy "
      .. "and no_proxy variables)."):argname("URL"),
    cmd:flag("--http-netrc", "Credentials from ~/.netrc."),
    cmd:option("--http-netrc-file", "Credentials from this netrc file."):argname("F"),
    cmd:option("--http-header", "An extra request header, e.g. 'Authorization: Bearer "
      .. "TOKEN'; repeatable; never shown in reports.")
      :argname("H"):count("*"):target("http_headers"):convert(http_header),
    cmd:option("--http-connect-timeout", "Seconds to connect (10).")
      :argname("S"):convert(non_negative("--http-connect-timeout")),
    cmd:option("--http-stall-timeout", "Seconds without a byte before a transfer is "
      .. "abandoned (30)."):argname("S"):convert(non_negative("--http-stall-timeout")),
    cmd:option("--http-retries", "Retries of transient failures (4).")
      :argname("N"):convert(non_negative("--http-retries", true)),
    cmd:option("--http-whole-file-max", "Use a server that ignores Range requests only when "
      .. "the whole file is at most BYTES (0).")
      :argname("BYTES"):convert(non_negative("--http-whole-file-max", true)),
  }
  cmd:group("Remote sources and references (http:// and https://)", table.unpack(o))
end

------------------------------------------------------------------ commands

local EXIT_TEXT = "Exit status: 0 healthy (after restore: everything repaired), 1 repairable "
  .. "(after restore: some damage left, no source had it), 2 nonrepairable, 3 error "
  .. "(restore: the image is left as it was)."

-- Each command: its name, its positional argument, summary, description and
-- the option sets beyond the common ones.
local COMMANDS = {
  {"info", "IMAGE", "Describe the image: format, images, file counts.", nil, {}},
  {"check", "IMAGE|DIR", "Check its health (quick unless --scan).",
   "Check the health of an image, like DISM's /CheckHealth (quick) and /ScanHealth "
   .. "(--scan). With --reference, IMAGE|DIR is an applied image tree (wimlib-imagex apply, "
   .. "an ntfs-3g mount, a deployment share), checked file by file against the image it came "
   .. "from: modified, missing and wrong-type paths are findings, extra ones are listed.",
   {check_options, http_options}},
  {"restore", "IMAGE|DIR", "Scan, then repair the damaged blobs from sources, in place and "
   .. "crash-safe.",
   "Scan, then repair the damaged blobs from sources, in place and crash-safe, like DISM's "
   .. "/RestoreHealth. An applied tree (--reference) gets each file back from the sources "
   .. "(the reference first), verified by SHA-1, through a temporary file renamed over it; "
   .. "extra files are never touched.",
   {restore_options, http_options}},
  {"seal", "DIR", "Record a tree's reference manifest, so that later checks need no image.",
   "Record the reference's manifest (in the state store, or --output FILE) so that later "
   .. "checks need no image: then --reference seal (or none) or seal:FILE.",
   {function(cmd)
     cmd:option("--output", "Write the seal to FILE instead of the state store.")
       :argname("FILE")
   end, http_options}},
}

local function add_command(parser, spec)
  local name, argname, summary, description, extra = table.unpack(spec)
  local cmd = parser:command(name)
    :summary(summary)
    :usage(string.format("Usage: imagehealth %s %s [OPTIONS]", name, argname))
    :description(description or summary)
    :epilog(EXIT_TEXT)
  cmd:argument(argname, argname == "DIR" and "An applied image tree."
      or "A WIM, ESD or the first part of a split WIM"
        .. (argname == "IMAGE" and "." or "; or an applied image tree (with --reference)."))
    :target("image")
  for _, add in ipairs(extra) do
    add(cmd)
  end
  common(cmd)
end

local ROOT_USAGE = [[
Usage: imagehealth info IMAGE [OPTIONS]
       imagehealth check IMAGE|DIR [--scan] [OPTIONS]
       imagehealth restore IMAGE|DIR [--source S]... [OPTIONS]
       imagehealth seal DIR --reference wim:PATH[:INDEX] [--output FILE]
       imagehealth COMMAND --help]]

local function build(version)
  local parser = argparse("imagehealth")
    :usage(ROOT_USAGE)
    :description("Check and repair the health of a Windows image (WIM, ESD or split WIM), "
      .. "like DISM's /CheckHealth, /ScanHealth and /RestoreHealth, or of an image tree "
      .. "applied from one.")
    :epilog(EXIT_TEXT .. "\n\n`imagehealth COMMAND --help` lists the options of a command.")
    :command_target("command")
    :help_max_width(80)
  parser:flag("-V --version", "Show the version and exit."):action(function()
    version()
    os.exit(0)
  end)
  for _, spec in ipairs(COMMANDS) do
    add_command(parser, spec)
  end
  return parser
end

------------------------------------------------------------------ parse

-- The command named in argv, for the hint after an error.
local function command_of(argv)
  for _, a in ipairs(argv) do
    for _, spec in ipairs(COMMANDS) do
      if a == spec[1] then
        return a
      end
    end
  end
end

-- The command that takes an option `cmd` does not know, if one does: parse
-- it with each other command and see whether that one knows it.
local function owner_of(parser, name, cmd)
  for _, spec in ipairs(COMMANDS) do
    local other = spec[1]
    if other ~= cmd then
      local ok, err = parser:pparse{other, "IMAGE", name}
      if ok or not err:match("^unknown option") then
        return other
      end
    end
  end
end

-- restore_health's http table, or nil when no --http-* option was given.
local function http_table(o)
  local http = {}
  for _, k in ipairs{"ca_file", "client_cert", "client_key", "proxy", "connect_timeout",
                     "stall_timeout", "retries", "whole_file_max"} do
    http[k] = o["http_" .. k]
  end
  http.netrc = o.http_netrc_file or o.http_netrc or nil
  if o.http_headers and #o.http_headers > 0 then
    http.headers = o.http_headers
  end
  return next(http) and http or nil
end

function args.parse(argv, version)
  local parser = build(version)
  local ok, o = parser:pparse(argv)
  if not ok then
    local cmd = command_of(argv)
    local name = o:match("^unknown option '([^']*)'")
    local owner = name and cmd and owner_of(parser, name, cmd)
    if owner then
      o = string.format("option '%s' is for '%s' only", name, owner)
    end
    return nil, o, cmd
  end
  for _, k in ipairs{"sources", "path_map", "http_headers"} do
    if o[k] and #o[k] == 0 then
      o[k] = nil
    end
  end
  o.http = http_table(o)
  return o
end

return args
