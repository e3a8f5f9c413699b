-- Take the lock if nobody holds it, and read the resource's fencing counter and the server's
-- clock (see fencing.rs).
-- KEYS[1]: the voter's lock key. KEYS[2]: its fencing counter (same hash slot).
-- ARGV[1]: this acquisition's token. ARGV[2]: TTL in milliseconds.
-- Returns
--   {1, counter, seconds, microseconds} when the key was set: the counter exactly as stored
--     (false when there is none; the client parses and checks it) and the server's TIME;
--   {0, pttl} when somebody holds it (pttl as PTTL gives it);
--   {2, type} when the counter key holds a value of another type: nothing is set.
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind ~= 'none' and kind ~= 'string' then
  return {2, kind}
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local now = redis.call('TIME')
  return {1, redis.call('GET', KEYS[2]), now[1], now[2]}
end
return {0, redis.call('PTTL', KEYS[1])}
