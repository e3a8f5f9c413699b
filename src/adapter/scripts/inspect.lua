-- Read who holds the key and for how long, in one atomic step.
-- KEYS[1]: the voter's key.
-- Returns {token or nil, pttl} (pttl -2: no key, -1: no expiry).
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
