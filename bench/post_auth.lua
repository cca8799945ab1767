-- wrk script: POST pre-built JSON bodies, rotating among them, with an IAM token.
-- Adapted from ../shared/bench-peers/post.lua (same rotation; adds the X-Auth-Token header,
-- because wrk.format's headers replace wrk.headers rather than merging with them).
-- usage: wrk ... -s post_auth.lua URL -- <dir> <prefix> <count> [token]
local reqs = {}
local idx = 0
init = function(args)
  local dir, prefix, count, token = args[1], args[2], tonumber(args[3]), args[4]
  local headers = { ["Content-Type"] = "application/json" }
  if token and token ~= "" then headers["X-Auth-Token"] = token end
  for i = 0, count - 1 do
    local f = assert(io.open(dir .. "/" .. prefix .. i .. ".json", "rb"))
    local body = f:read("*a")
    f:close()
    reqs[#reqs + 1] = wrk.format("POST", wrk.path, headers, body)
  end
end
request = function()
  idx = idx % #reqs + 1
  return reqs[idx]
end
