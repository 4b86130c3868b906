-- spec/tree_http_spec.lua - an applied tree whose reference is an image on
-- a web server (reference = "http://host/x.wim:INDEX"): its header, blob
-- table and that image's metadata resource are read by ranges, and a
-- restore takes file contents from the same URL.  A real nginx serves the
-- image (its access log: only 206 answers, never the whole file); the
-- fault server (tests/tools/faultsrv, mode replacedx: data requests served
-- from another file) plays a server whose metadata resource lies or is cut
-- short: the open fails with a clear error and nothing in the tree changes.

local ih = require "imagehealth"
local F = require "support.fixtures"
local N = require "support.nginx"
local q = F.q

local T, www, srv, fsrv_pid, fsrv_port

-- Many files sharing few contents: a metadata resource above the fault
-- server's 4 KiB "data request" size, a blob table and XML below it.
local function build_source(dir)
  F.sh("mkdir -p " .. q(dir .. "/docs") .. " " .. q(dir .. "/bin"))
  for i = 1, 60 do
    F.write_file(string.format("%s/docs/a-rather-long-file-name-number-%02d.txt", dir, i), "same text\n")
  end
  F.write_file(dir .. "/bin/tool", F.random_bytes(200000, 7))
  F.write_file(dir .. "/hello.txt", "hello, reference\n")
end

local function apply(dir)
  F.sh(string.format("rm -rf %s && wimlib-imagex apply %s 1 %s >/dev/null", q(dir),
    q(www .. "/ref.wim"), q(dir)))
  return dir
end

-- Every path below dir with its type, size and content hash: what "nothing
-- changed" is compared by.
local function listing(dir)
  return F.sh("cd " .. q(dir) .. " && find . -printf '%y %s %p\\n' | sort && "
    .. "find . -type f -print0 | sort -z | xargs -0 sha1sum")
end

local function faultsrv_path()
  local build = os.getenv("IMAGEHEALTH_BUILD")
  for _, p in ipairs{build and (build .. "/faultsrv"), F.root() .. "/build/faultsrv"} do
    if p and F.exists(p) then return p end
  end
  error("faultsrv not built (run make)")
end

lazy_setup(function()
  T = F.tmpdir("ihtreehttp")
  www = T .. "/www"
  build_source(T .. "/src")
  F.sh("mkdir -p " .. q(www))
  F.capture(T .. "/src", www .. "/ref.wim", {compress = "none"})
  srv = N.start(www, {https = true})
  -- the fault server: its own lifetime bounds it even if the spec dies
  local pf = T .. "/port"
  fsrv_pid = tonumber(F.sh(string.format("%s --root %s --port-file %s --lifetime 120 "
    .. ">/dev/null 2>&1 & echo $!", q(faultsrv_path()), q(www), q(pf))))
  for _ = 1, 200 do
    if F.exists(pf) and F.read_file(pf):match("%d+") then break end
    F.sh("sleep 0.05")
  end
  fsrv_port = tonumber(F.read_file(pf):match("%d+"))
end)

lazy_teardown(function()
  if srv then N.stop(srv) end
  if fsrv_pid then F.run("kill " .. fsrv_pid) end
end)

describe("a tree with an HTTP reference", function()
  it("is checked and restored from nginx, by ranges only", function()
    local t = apply(T .. "/t1")
    F.sh("cd " .. q(t) .. " && echo changed >> hello.txt && rm docs/a-rather-long-file-name-number-07.txt"
      .. " && truncate -s 100 bin/tool && echo extra > extra.txt")
    N.log(srv)
    local url = srv.url .. "/ref.wim:1"
    local s <close> = assert(ih.open(t, {reference = url, state_dir = T .. "/state"}))
    local state, r = s:check_health{scan = true}
    assert.equal("repairable", state, tostring(r))
    local got = {}
    for _, d in ipairs(r.damaged) do got[d.path] = d.reason end
    assert.same({["/hello.txt"] = "modified", ["/bin/tool"] = "modified",
      ["/docs/a-rather-long-file-name-number-07.txt"] = "missing"}, got)
    assert.same({"/extra.txt"}, r.extra)
    assert.equal(url, r.reference)
    state, r = s:restore_health{default_sources_file = "/nonexistent"}
    assert.equal("healthy", state, tostring(r))
    assert.equal(3, #r.repaired)
    assert.equal("http", r.sources[1].kind)
    assert.equal(url, r.sources[1].spec)
    local fresh = apply(T .. "/fresh1")
    assert.is_true(F.run(string.format("diff -r -x extra.txt %s %s", q(fresh), q(t))))
    -- only ranges were asked: the image is never downloaded whole
    local size = F.file_size(www .. "/ref.wim")
    local log = N.log(srv)
    assert.is_true(#log > 0)
    for _, e in ipairs(log) do
      assert.equal(206, e.status, "a non-range answer: " .. tostring(e.range))
      assert.is_true(e.bytes < size)
    end
  end)

  it("names its server in the report without credentials", function()
    local t = apply(T .. "/t2")
    local url = "http://user:secret@127.0.0.1:" .. srv.port .. "/ref.wim:1"
    local s <close> = assert(ih.open(t, {reference = url, state_dir = T .. "/state"}))
    local state, r = s:check_health{scan = true}
    assert.equal("healthy", state, tostring(r))
    assert.is_nil(r.reference:find("secret", 1, true))
  end)

  -- A hostile server: the open fails with a clear error, the tree is as it was.
  local function hostile(label, url, want)
    it(label, function()
      local t = apply(T .. "/t-" .. label:gsub("%W", ""))
      F.sh("cd " .. q(t) .. " && echo changed >> hello.txt")
      local before = listing(t)
      local s, err = ih.open(t, {reference = url(), state_dir = T .. "/state"})
      assert.is_nil(s)
      for _, w in ipairs(want) do
        assert.matches(w, tostring(err))
      end
      assert.equal(before, listing(t))
    end)
  end

  hostile("a metadata resource that lies (its SHA-1 differs) is refused, nothing written", function()
    local lying = www .. "/lying.wim"
    F.sh(string.format("cp %s %s", q(www .. "/ref.wim"), q(lying)))
    F.damage_metadata(lying, 1)
    return srv.url .. "/lying.wim:1"
  end, {"metadata of image 1", "does not match its SHA%-1", "download_failed"})

  hostile("a metadata resource served from another file is refused, nothing written", function()
    F.sh(string.format("cp %s %s", q(www .. "/ref.wim"), q(www .. "/ref.wim.v2")))
    F.damage_metadata(www .. "/ref.wim.v2", 1)
    return string.format("http://127.0.0.1:%d/replacedx/ref.wim:1", fsrv_port)
  end, {"changed during", "nothing more is taken from it"})

  hostile("a server that cuts every answer short is refused, nothing written", function()
    return string.format("http://127.0.0.1:%d/truncate/ref.wim:1", fsrv_port)
  end, {"download_failed"})

  hostile("an image index the reference lacks is refused", function()
    return srv.url .. "/ref.wim:2"
  end, {"no image 2"})
end)

describe("a tree with an https reference", function()
  local cli = F.root() .. "/bin/imagehealth"

  it("is verified with the CA given in `http` (open, open_job, restore and the CLI)", function()
    local t = apply(T .. "/t3")
    F.sh("cd " .. q(t) .. " && echo changed >> hello.txt")
    local before = listing(t)
    local url = srv.https_url .. "/ref.wim:1"
    -- the test CA is not in the system's store: refused, nothing read or written
    local s0, err = ih.open(t, {reference = url, state_dir = T .. "/state"})
    assert.is_nil(s0)
    assert.equal("download_failed", err.code, tostring(err))
    assert.equal(before, listing(t))
    -- with it: checked, then restored
    local http = {ca_file = srv.ca}
    local s <close> = assert(ih.open(t, {reference = url, state_dir = T .. "/state", http = http}))
    local state, r = s:check_health{scan = true}
    assert.equal("repairable", state, tostring(r))
    assert.equal(1, #r.damaged)
    assert.equal("/hello.txt", r.damaged[1].path)
    -- the CLI takes the same option for check (exit 1: repairable)
    local ok, how, code = os.execute(string.format("%s check %s --reference %s --http-ca-file %s "
      .. "--scan --state-dir %s >/dev/null 2>&1", q(cli), q(t), q(url), q(srv.ca), q(T .. "/state")))
    assert.is_falsy(ok)
    assert.same({"exit", 1}, {how, code})
    -- open_job copies the options (the table may be gone when it runs)
    local j = assert(ih.open_job(t, {reference = url, state_dir = T .. "/state",
      http = {ca_file = srv.ca .. ""}}))
    collectgarbage()
    local s2 <close> = assert(j:wait())
    assert.equal("repairable", (s2:check_health{scan = true}))
    s2:close()
    -- values an __index makes afresh (nothing else holds them) stay alive
    -- while C uses them, past the collections a job start runs
    local made = setmetatable({}, {__index = function(_, k)
      collectgarbage()
      if k == "ca_file" then return (srv.ca .. "/"):sub(1, -2) end
      if k == "headers" then return {["X-Imagehealth-Test"] = "made", "X-Other: " .. ("x"):rep(3)} end
    end})
    local s3 <close> = assert(ih.open(t, {reference = url, state_dir = T .. "/state", http = made}))
    assert.equal("repairable", (s3:check_health{scan = true}))
    s3:close()
    state, r = s:restore_health{http = http, default_sources_file = "/nonexistent"}
    assert.equal("healthy", state, tostring(r))
    assert.equal(1, #r.repaired)
    local fresh = apply(T .. "/fresh3")
    assert.is_true(F.run(string.format("diff -r %s %s", q(fresh), q(t))))
  end)
end)
