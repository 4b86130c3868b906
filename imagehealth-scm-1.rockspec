rockspec_format = "3.0"
package = "imagehealth"
version = "scm-1"

source = {
  url = "git+https://example.invalid/imagehealth.git",
  branch = "main",
}

description = {
  summary = "Check and repair the health of Windows images (WIM, ESD, split WIM)",
  detailed = [[
imagehealth does on Linux what DISM's CheckImageHealth / ScanHealth do on
Windows: it opens a WIM, ESD or split WIM as a session, checks it (quickly,
or by reading and verifying every blob on worker threads), names every
damaged blob and the files it belongs to, and, like RestoreHealth, repairs
exactly the damaged blobs in place, crash-safe, from other WIM/ESD files,
extracted image trees or the image's own LocalSourcePath policy, verifying
every byte by SHA-1.  A C core with a Lua 5.4 binding:
jobs can be polled (cqueues, luv) and progress callbacks may yield.  Includes
the `imagehealth` command line tool.
]],
  license = "MIT",
  labels = {"wim", "esd", "dism", "windows", "imaging"},
}

-- The CLI's argument parsing and JSON (the module itself needs neither).
-- Where they come from Debian packages (lua-argparse, lua-dkjson) they are
-- in no LuaRocks manifest: build with --deps-mode=none, or name them in
-- LuaRocks' rocks_provided (see the README's "The rock").
dependencies = {
  "lua >= 5.4, < 5.5",
  "argparse >= 0.7",
  "dkjson >= 2.5",
}

-- The specs check the CLI's JSON with an independent decoder.
test_dependencies = {
  "lua-cjson >= 2.1",
}

external_dependencies = {
  WIM = {header = "wimlib.h", library = "wim"},
  HIVEX = {header = "hivex.h", library = "hivex"},
  CRYPTO = {header = "openssl/sha.h", library = "crypto"},
}

-- The C module is built by the project's Makefile (its wildcards pick up every
-- src/core/*.c and src/lua/*.c, linked with -lwim -lcrypto -lhivex
-- -lpthread), so that the list of sources lives in one place.  OPT comes
-- last on the compiler's command line: it adds LuaRocks' flags and Lua
-- include directory, and turns -Werror off for users' compilers.
build = {
  type = "make",
  build_target = "build/lua/imagehealth/core.so",
  build_variables = {
    CC = "$(CC)",
    OPT = "$(CFLAGS) -g -Wno-error -I$(LUA_INCDIR) -I$(WIM_INCDIR) -I$(HIVEX_INCDIR) -I$(CRYPTO_INCDIR)",
  },
  install_pass = false,
  install = {
    lua = {
      ["imagehealth"] = "lua/imagehealth/init.lua",
      ["imagehealth.job"] = "lua/imagehealth/job.lua",
      ["imagehealth.report"] = "lua/imagehealth/report.lua",
      ["imagehealth.json"] = "lua/imagehealth/json.lua",
      ["imagehealth.tree_report"] = "lua/imagehealth/tree_report.lua",
      ["imagehealth.help"] = "lua/imagehealth/help.lua",
      ["imagehealth.luv"] = "lua/imagehealth/luv.lua",
      ["imagehealth.cli"] = "lua/imagehealth/cli/init.lua",
      ["imagehealth.cli.args"] = "lua/imagehealth/cli/args.lua",
      ["imagehealth.cli.commands"] = "lua/imagehealth/cli/commands.lua",
      ["imagehealth.cli.render"] = "lua/imagehealth/cli/render.lua",
      ["imagehealth.cli.advice"] = "lua/imagehealth/cli/advice.lua",
      ["imagehealth.cli.report_json"] = "lua/imagehealth/cli/report_json.lua",
      ["imagehealth.cli.progress"] = "lua/imagehealth/cli/progress.lua",
      ["imagehealth.cli.exit"] = "lua/imagehealth/cli/exit.lua",
      ["imagehealth.poll"] = "lua/imagehealth/poll.lua",
    },
    lib = {
      ["imagehealth.core"] = "build/lua/imagehealth/core.so",
    },
    bin = {
      imagehealth = "bin/imagehealth",
    },
  },
}

test = {
  type = "busted",
}
