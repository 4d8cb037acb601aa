"""Desktop windows for the chat: a server console and a chat client, both on tkinter.

:mod:`tcplab.gui.model` is the presentation model (conversations, unread counts, colours,
bidi line layout, the console's counters) in plain Python with no Tk import, so it is
tested without a display. :mod:`tcplab.gui.client` and :mod:`tcplab.gui.server` are thin
Tk views on top of it; the networking is :class:`tcplab.chat.client.ChatClient` and
:class:`tcplab.chat.server.ChatServer`, never a second implementation.
"""
