package cluster

import "github.com/redis/go-redis/v9"

// factScript writes a fact only if it is later than the one stored (by the
// field ARGV[6] of the JSON value: "u" for deadlines, "at" for poll times),
// with its expiry, notes it in the index, drops the keys that the fact
// supersedes unless they are later still (a budget poll supersedes the
// spend it counts; a key back from rest, the rest it ended, but not a newer
// one; an account back, its rest and its free-model block), and pushes it.
// It answers 1 when it wrote.
//
//	KEYS[1] fact, KEYS[2] index, KEYS[3…] superseded keys (optional)
//	ARGV[1] order, ARGV[2] value, ARGV[3] PXAT or PX, ARGV[4] ms,
//	ARGV[5] channel, ARGV[6] order field
var factScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and type(old) == 'table' then
    local o = tonumber(old[ARGV[6]])
    if o and o >= tonumber(ARGV[1]) then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[2], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[2], KEYS[1])
for i = 3, #KEYS do
  local sup = redis.call('GET', KEYS[i])
  if sup then
    local ok, old = pcall(cjson.decode, sup)
    local o = ok and type(old) == 'table' and tonumber(old[ARGV[6]])
    if not o or o <= tonumber(ARGV[1]) then redis.call('DEL', KEYS[i]) end
  end
end
redis.call('PUBLISH', ARGV[5], ARGV[2])
return 1
`)

// manualScript records a disable or enable in the manual hash if it is
// later (field "at") than the one there, and pushes it. No expiry: a key
// disabled by hand stays so until enabled by hand.
//
//	KEYS[1] hash; ARGV[1] field, ARGV[2] value, ARGV[3] at, ARGV[4] channel
var manualScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and type(old) == 'table' then
    local o = tonumber(old['at'])
    if o and o >= tonumber(ARGV[3]) then return 0 end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 1
`)

// spendScript adds spend to a key's total since its last budget poll,
// renews its expiry, notes it in the index and pushes the delta.
//
//	KEYS[1] spend, KEYS[2] index; ARGV[1] delta, ARGV[2] ms, ARGV[3]
//	channel, ARGV[4] message
var spendScript = redis.NewScript(`
local t = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return t
`)

// pushScript pushes an event that is not stored (a FreeUse).
//
//	ARGV[1] channel, ARGV[2] message
var pushScript = redis.NewScript(`
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
`)

// healScript reads every live fact in one round trip: the index's keys
// with their values (forgetting those that expired) and the manual hash.
// It answers {key1, value1, key2, value2, …} and the hash's field/value
// list. It reads keys found in the index, so it needs a single Redis (not
// Redis Cluster), which is what REDIS_URL names.
//
// It also answers the store's epoch, a value set once with no expiry:
// when it is gone (Redis restarted without its data, or was flushed), the
// first replica to read sets a new one, and every replica seeing the
// change writes its facts again.
//
//	KEYS[1] index, KEYS[2] manual hash, KEYS[3] epoch; ARGV[1] a new epoch
var healScript = redis.NewScript(`
local facts = {}
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('GET', k)
  if v then
    facts[#facts + 1] = k
    facts[#facts + 1] = v
  else
    redis.call('SREM', KEYS[1], k)
  end
end
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[3], epoch, 'NX')
  epoch = redis.call('GET', KEYS[3]) or epoch
end
return {facts, redis.call('HGETALL', KEYS[2]), epoch}
`)
