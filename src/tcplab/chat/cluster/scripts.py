"""The Lua scripts that make each lease and presence change atomic inside Redis.

A nickname lease is ``nick:<key> = "<node>:<conn>"`` with a TTL; each node's presence
hash ``presence:<node>`` maps ``<key>`` to ``"<node>:<conn>:<login ms>:<nick>"`` (one hash
per node, so removing a dead node's users touches only them). Every change that touches both, and the
pub/sub notice announcing it, happens in one script so no node ever sees a lease without
its presence entry or misses the notice. Only commands Valkey also has are used (GET, SET
NX PX, DEL, HGET/HSET/HDEL/HGETALL, SMEMBERS/SREM, EXISTS, PUBLISH).
The scripts compute a few key names from a prefix, which is fine on a single Redis (or a
primary with replicas) and is exactly why the cluster does not run on Redis Cluster.
"""

from __future__ import annotations

import hashlib

#: KEYS: nick key, this node's presence hash. ARGV: token, ttl ms, field, presence value,
#: channel, notice.
CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  redis.call('PUBLISH', ARGV[5], ARGV[6])
  return 1
end
return 0
"""

#: Only the token's owner may release. KEYS: nick key, this node's presence hash.
#: ARGV: token, field, channel, notice.
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
#: token goes to the earlier login: then the holder's presence entry is removed and its
#: node is told with a K notice. KEYS: this node's presence hash, nick keys...
#: ARGV: ttl ms, all channel, node channel prefix, key prefix, then per user: token, field,
#: presence value, join notice. Returns 1 (kept) / 0 (lost) per user.
HOLD = """
local out = {}
for i = 2, #KEYS do
  local b = 4 + (i - 2) * 4
  local token, field, pv, join = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local cur = redis.call('GET', KEYS[i])
  local mine = (not cur) or cur == token
  if not mine then
    local on, oc = string.match(cur, '^([^:]*):([^:]*)$')
    local other = on and redis.call('HGET', ARGV[4] .. 'presence:' .. on, field)
    if other then
      local _, _, os = string.match(other, '^([^:]*):([^:]*):([^:]*):')
      local _, _, ms = string.match(pv, '^([^:]*):([^:]*):([^:]*):')
      if os and ms and string.sub(other, 1, string.len(cur) + 1) == cur .. ':' then
        local a, o = tonumber(ms), tonumber(os)
        if a < o or (a == o and token < cur) then
          mine = true
          redis.call('HDEL', ARGV[4] .. 'presence:' .. on, field)
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
#: KEYS: node set. ARGV: key prefix, all channel, node to purge or ''.
SWEEP = """
local dead = {}
if ARGV[3] ~= '' then dead[#dead + 1] = ARGV[3] end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[3] and redis.call('EXISTS', ARGV[1] .. 'node:' .. id) == 0 then
    dead[#dead + 1] = id
  end
end
local n = 0
for _, id in ipairs(dead) do
  redis.call('SREM', KEYS[1], id)
  local hash = ARGV[1] .. 'presence:' .. id
  local flat = redis.call('HGETALL', hash)
  for i = 1, #flat, 2 do
    local field, v = flat[i], flat[i + 1]
    local node, conn = string.match(v, '^([^:]*):([^:]*):')
    if node then
      local nk = ARGV[1] .. 'nick:' .. field
      if redis.call('GET', nk) == node .. ':' .. conn then redis.call('DEL', nk) end
      redis.call('PUBLISH', ARGV[2], 'L\\n' .. node .. '\\n' .. conn .. '\\n' .. field)
      n = n + 1
    end
  end
  redis.call('DEL', hash)
end
return n
"""

SCRIPTS = {"claim": CLAIM, "release": RELEASE, "hold": HOLD, "sweep": SWEEP}
SHA = {name: hashlib.sha1(body.encode()).hexdigest() for name, body in SCRIPTS.items()}
