"""What a lost Redis connection raises, named once for every client of Redis."""

from redis.exceptions import RedisError

# redis-py's errors, the socket's, and the RuntimeError uvloop raises for a write on a
# transport Redis has just closed, which redis-py does not translate: seen killing the
# revocation follower for good, and as a 500 on an item read, while Redis restarted.
REDIS_LOST = (RedisError, OSError, TimeoutError, RuntimeError)
