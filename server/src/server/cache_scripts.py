"""The item cache's Redis side: the Lua scripts server.cache.ItemCache runs, each an atomic
step (Redis runs a script with nothing else in between)."""

# A hit returns the value. A miss returns 1 when this caller takes the fill lock (and is
# counted as the one miss), or 0 when another caller is already loading the item.
LOOKUP = """
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
  return value
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
  return 1
end
return 0
"""
# Store the loaded value unless a writer has fenced it off; release the lock if still ours.
# ARGV[5] names the misses field when this load was not counted yet (a caller that gave up
# waiting for someone else's lock).
FILL = """
if ARGV[5] ~= '' then
  redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
end
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
local stored = 0
if ARGV[2] ~= '' and tonumber(ARGV[1]) >= fence then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  stored = 1
end
if redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('DEL', KEYS[3])
end
return stored
"""
# After a commit: raise the fence to the committed version, drop the cached value, and move
# the pages on to a new generation; and the unfiltered total on to a new one of its own when
# the write added or removed an item (ARGV[3] == '1').
INVALIDATE = """
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) > fence then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[3])
if ARGV[3] == '1' then
  redis.call('INCR', KEYS[4])
end
return 1
"""
# The current generation, the page stored under it (ARGV[1] .. generation), and the total of
# the page's filter (ARGV[4] .. its generation); '' for what is not stored. Without a filter
# (ARGV[5] == '1') the total only changes when an item is added or removed: it has the
# generation of those (KEYS[3]), which an update leaves alone.
PAGE = """
local generation = redis.call('GET', KEYS[1]) or '0'
local page = redis.call('GET', ARGV[1] .. generation)
redis.call('HINCRBY', KEYS[2], page and ARGV[2] or ARGV[3], 1)
if page then
  return {generation, page, '', ''}
end
local counted = generation
if ARGV[5] == '1' then
  counted = 'rows' .. (redis.call('GET', KEYS[3]) or '0')
end
return {generation, '', redis.call('GET', ARGV[4] .. counted) or '', counted}
"""
