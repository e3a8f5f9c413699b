-- Record a fencing token: counter = max(counter, token), only while our lock key holds our
-- lock token, so that an acknowledgement proves the write landed before the key went away.
-- KEYS[1]: the voter's lock key. KEYS[2]: its fencing counter (same hash slot, no TTL).
-- ARGV[1]: the lock token. ARGV[2]: the fencing token (decimal, no leading zeros).
-- Returns 1 when the counter now holds at least the fencing token, 0 when the lock key is gone
-- or holds another token. Decimal strings are compared by length, then bytewise, so that no
-- value goes through a Lua double (exact only up to 2^53).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local current = redis.call('GET', KEYS[2])
if (not current) or #current < #ARGV[2] or (#current == #ARGV[2] and current < ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
return 1
