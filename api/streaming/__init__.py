"""The streaming machinery: the shared reader (hub), the SSE writer, the connection
gate, presence and cursors. Everything between a Redis Stream and a viewer's socket."""
