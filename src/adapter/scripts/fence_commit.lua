-- Record a fencing token: counter = max(counter, token) with a retention TTL, only while our
-- lock key holds our lock token, so that an acknowledgement proves the write landed before the
-- key went away.
-- KEYS[1]: the voter's lock key. KEYS[2]: its fencing counter (same hash slot).
-- ARGV[1]: the lock token. ARGV[2]: the fencing token (decimal, no leading zeros).
-- ARGV[3]: the counter's retention in milliseconds (see fencing.rs for why it may expire).
-- Returns 1 when the counter now holds at least the fencing token, 0 when the lock key is gone
-- or holds another token, and a string describing the counter when it is not a canonical
-- decimal string (a foreign write): nothing is changed then.
-- Canonical decimal strings are compared by length, then bytewise, so that no value goes
-- through a Lua double (exact only up to 2^53).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind ~= 'none' and kind ~= 'string' then
  return 'a ' .. kind
end
local current = redis.call('GET', KEYS[2])
if current and current ~= '0' and not string.find(current, '^[1-9]%d*$') then
  return 'the string ' .. string.format('%q', current)
end
if (not current) or #current < #ARGV[2] or (#current == #ARGV[2] and current < ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
else
  -- A later holder's commit wrote more: its value stays, retained from now on.
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
