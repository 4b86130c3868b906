-- spec/cli_edges_spec.lua - what the reports and the CLI say at the edges:
-- no bytes "written" by a restore that committed nothing, SIGINT after the
-- commit point reported as the completed restore it is, and strings with
-- an embedded NUL refused wherever the binding takes a path or a spec.

local ih = require "imagehealth"
local F = require "support.fixtures"
local H = require "support.restore_helpers"
local q = F.q

local tree, good

lazy_setup(function()
  tree = F.tree()
  good = F.image("LZX")
end)

local function damaged(files)
  local img = F.copy(good, F.tmpdir("img") .. "/img.wim")
  for _, f in ipairs(files) do
    F.damage_file_data(img, f)
  end
  return img
end

-- A directory source whose copy of tree.text has the wrong bytes.
local function liar()
  local d = F.tmpdir("liar")
  F.sh("mkdir -p " .. q(d .. "/data"))
  F.write_file(d .. tree.text, F.text_bytes(tree.files[tree.text].size, "liar"))
  return d
end

describe("a restore that committed nothing", function()
  it("does not say it wrote anything (API report, CLI text and --json)", function()
    local img = damaged{tree.text}
    local orig = F.copy(img, F.tmpdir("orig") .. "/orig.wim")
    local src = liar()
    local s = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
    local state, r = s:restore_health{sources = {src}, no_policy = true}
    s:close() -- the CLI below opens the image too
    assert.equal("repairable", state, tostring(r))
    assert.equal(0, #r.repaired)
    assert.equal(1, r.sources[1].blobs_rejected)
    assert.is_true(H.same_file(img, orig), "the image changed")
    local summary = r:summary()
    assert.matches("nothing was written", summary, 1, true)
    assert.not_matches("wrote", summary, 1, true)
    assert.matches("Restore:  0 of 1 damaged blob repaired; nothing written", tostring(r), 1, true)

    local code, out, err = H.run_cli("restore --no-policy --source " .. q(src) .. " " .. q(img))
    assert.equal(1, code, out .. err)
    assert.matches("nothing was written", out, 1, true)
    assert.not_matches("wrote", out, 1, true)
    code, out = H.run_cli("restore --json --no-policy --source " .. q(src) .. " " .. q(img))
    assert.equal(1, code, out)
    assert.equal(0, H.json_decode(out).bytes_written)
    assert.is_true(H.same_file(img, orig), "the image changed")
  end)
end)

describe("SIGINT to the CLI", function()
  -- stderr is a FIFO whose buffer is full: the CLI's first progress write
  -- blocks while the worker thread finishes the restore; then SIGINT, and
  -- the FIFO is drained (by a cat holding the FIFO open itself, so killed
  -- once the CLI is gone) so that the CLI can write on.
  local function interrupt_after_commit(img)
    local d = F.tmpdir("sigint")
    local script = string.format([[
      set -u
      mkfifo %s/err
      exec 3<>%s/err
      head -c 65536 /dev/zero >&3
      XDG_STATE_HOME=%s/xdg %s restore --progress --no-policy --source %s %s >%s/out 2>%s/err &
      pid=$!
      ok=
      for i in $(seq 600); do
        if wimlib-imagex verify %s >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.05
      done
      sleep 0.5
      kill -INT $pid
      cat <&3 >%s/errlog &
      cat=$!
      exec 3>&-
      wait $pid
      rc=$?
      sleep 0.2
      kill $cat
      echo "rc=$rc verified=$ok"
    ]], d, d, d, q(H.CLI), q(good), q(img), d, d, q(img), d)
    F.write_file(d .. "/run.sh", script)
    local out = F.sh("bash " .. q(d .. "/run.sh"))
    local clean = F.read_file(d .. "/errlog"):gsub("%z", "")
    return out, F.read_file(d .. "/out"), clean
  end

  it("after the commit point reports the completed restore (exit 0, not 130)", function()
    local img = damaged{tree.text}
    local res, out, err = interrupt_after_commit(img)
    assert.matches("verified=1", res, 1, true)
    assert.matches("rc=0 ", res, 1, true)
    assert.matches("^healthy %(was repairable%): repaired 1 damaged blob", out)
    assert.matches("interrupted after the repair was committed", err, 1, true)
    assert.is_true((F.verify(img)))
  end)
end)
