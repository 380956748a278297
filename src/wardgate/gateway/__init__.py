"""The data plane: a strict HTTP/1.1 reverse proxy on uvloop + httptools."""
