"""The Lua scripts that make each lease and presence change atomic inside Redis.

A nickname lease is ``nick:<key> = "<node>:<conn>"`` with a TTL; the presence hash maps
``<key>`` to ``"<node>:<conn>:<login ms>:<nick>"``. Every change that touches both, and the
pub/sub notice announcing it, happens in one script so no node ever sees a lease without
its presence entry or misses the notice. Only commands Valkey also has are used (GET, SET
NX PX, PEXPIRE, DEL, HGET/HSET/HDEL/HGETALL, SMEMBERS/SREM, EXISTS, PUBLISH).
The scripts compute a few key names from a prefix, which is fine on a single Redis (or a
primary with replicas) and is exactly why the cluster does not run on Redis Cluster.
"""

from __future__ import annotations

import hashlib

#: KEYS: nick key, presence hash. ARGV: token, ttl ms, field, presence value, channel, notice.
CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  redis.call('PUBLISH', ARGV[5], ARGV[6])
  return 1
end
return 0
"""

#: Only the token's owner may release. KEYS: nick key, presence. ARGV: token, field, channel, notice.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local v = redis.call('HGET', KEYS[2], ARGV[2])
if v and string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ':' then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
return 0
"""

#: Renew, or re-claim after an outage, a batch of a node's leases. A lease held by another
#: token goes to the earlier login (then the loser's node is told with a K notice).
#: KEYS: presence, nick keys... ARGV: ttl ms, all channel, node channel prefix, then per
#: user: token, field, presence value, join notice. Returns 1 (kept) / 0 (lost) per user.
HOLD = """
local out = {}
for i = 2, #KEYS do
  local b = 3 + (i - 2) * 4
  local token, field, pv, join = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local cur = redis.call('GET', KEYS[i])
  local mine = (not cur) or cur == token
  if not mine then
    local other = redis.call('HGET', KEYS[1], field)
    if other then
      local on, oc, os = string.match(other, '^([^:]*):([^:]*):([^:]*):')
      local _, _, ms = string.match(pv, '^([^:]*):([^:]*):([^:]*):')
      if on and ms and on .. ':' .. oc == cur then
        local a, o = tonumber(ms), tonumber(os)
        if a < o or (a == o and token < cur) then
          mine = true
          redis.call('PUBLISH', ARGV[3] .. on, 'K\\n' .. oc .. '\\n' .. field)
        end
      end
    end
  end
  if mine then
    redis.call('SET', KEYS[i], token, 'PX', ARGV[1])
    if redis.call('HGET', KEYS[1], field) ~= pv then
      redis.call('HSET', KEYS[1], field, pv)
      redis.call('PUBLISH', ARGV[2], join)
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

#: Remove the users of every node whose heartbeat key has expired (and of ARGV[3], a
#: previous incarnation of the calling node, when not empty), with a leave notice each.
#: KEYS: node set, presence. ARGV: key prefix, all channel, node to purge or ''.
SWEEP = """
local dead = {}
local any = false
if ARGV[3] ~= '' then
  dead[ARGV[3]] = true
  any = true
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'node:' .. id) == 0 then
    dead[id] = true
    any = true
    redis.call('SREM', KEYS[1], id)
  end
end
if not any then return 0 end
local flat = redis.call('HGETALL', KEYS[2])
local n = 0
for i = 1, #flat, 2 do
  local field, v = flat[i], flat[i + 1]
  local node, conn = string.match(v, '^([^:]*):([^:]*):')
  if node and dead[node] then
    local tok = node .. ':' .. conn
    local nk = ARGV[1] .. 'nick:' .. field
    if redis.call('GET', nk) == tok then redis.call('DEL', nk) end
    redis.call('HDEL', KEYS[2], field)
    redis.call('PUBLISH', ARGV[2], 'L\\n' .. node .. '\\n' .. conn .. '\\n' .. field)
    n = n + 1
  end
end
return n
"""

SCRIPTS = {"claim": CLAIM, "release": RELEASE, "hold": HOLD, "sweep": SWEEP}
SHA = {name: hashlib.sha1(body.encode()).hexdigest() for name, body in SCRIPTS.items()}
