"""Upstream side: targets, balancing, passive health, pooled keep-alive connections."""
