"""Several chat server processes behaving as one chat, on Redis (``tcplab server --cluster``).

:mod:`engine` is the interface a node calls (and the in-memory engine), :mod:`redis_engine`
the Redis implementation, :mod:`resp` the wire codec, :mod:`scripts` the Lua that keeps
lease and presence changes atomic. Nothing here is imported unless ``--cluster`` is given.
"""
