-- Delete the key, only if it still holds our token.
-- KEYS[1]: the voter's key. ARGV[1]: token.
-- Returns 1 when deleted, 0 when the key is gone or holds another token.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.pcall('SPUBLISH', KEYS[1] .. ':released', ARGV[1]) -- a hint for waiters: src/features/notify.rs
  return redis.call('DEL', KEYS[1])
end
return 0
