-- Read a fencing counter and the server's clock, for LockInfo::fencing_token.
-- KEYS[1]: the fencing counter.
-- Returns {counter, seconds, microseconds} (counter as stored, false when there is none), or
-- {false, false, false, type} when the key holds a value of another type.
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'string' then
  return {false, false, false, kind}
end
local now = redis.call('TIME')
return {redis.call('GET', KEYS[1]), now[1], now[2]}
