-- Take the lock if nobody holds it.
-- KEYS[1]: the voter's key. ARGV[1]: this acquisition's token. ARGV[2]: TTL in milliseconds.
-- Returns {1, 0} when the key was set, {0, pttl} when somebody holds it (pttl as PTTL gives
-- it: -1 for a key without expiry), so that a retry can wait just long enough.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, 0}
end
return {0, redis.call('PTTL', KEYS[1])}
