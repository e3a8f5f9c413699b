-- Take the lock if nobody holds it, and read the resource's fencing counter (see fencing.rs).
-- KEYS[1]: the voter's lock key. KEYS[2]: its fencing counter (same hash slot, no TTL).
-- ARGV[1]: this acquisition's token. ARGV[2]: TTL in milliseconds.
-- Returns {1, counter} when the key was set (the counter as a decimal string, "0" when it was
-- never written), {0, pttl} when somebody holds it (pttl as PTTL gives it).
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('GET', KEYS[2]) or '0'}
end
return {0, redis.call('PTTL', KEYS[1])}
