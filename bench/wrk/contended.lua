-- Contended acquire: 64 clients compete for 16 jobs. Each request is an acquire by a random
-- client for a random job; whoever is granted a job releases it with the thread's next
-- request, as a client that locks, works briefly and unlocks would.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")

local CLIENTS, JOBS = 64, 16
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function init(args)
  math.randomseed(seed)
  releases = {}
end

function request()
  local r = table.remove(releases)
  if r then
    return wrk.format("DELETE", "/lock?job=" .. r[1] .. "&client=" .. r[2])
  end
  local path = string.format("/lock?job=j%d&client=c%d&ttl=30s",
    math.random(0, JOBS - 1), math.random(0, CLIENTS - 1))
  return wrk.format("POST", path)
end

function response(status, headers, body)
  if status == 200 then
    -- Grants name the job and then its holder; release replies have no holder.
    local job, holder = body:match('"job":"([^"]+)","holder":"([^"]+)"')
    if job then
      table.insert(releases, { job, holder })
    end
  end
end
