"""Reference servers the chat benchmark measures tcplab against.

Nothing here is part of tcplab: these are deliberately simple peers that give the
benchmark's ratios a meaning. They must never be imported by ``src/tcplab``.
"""
