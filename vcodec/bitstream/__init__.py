"""Bitstreams: bit-level writer and reader, frame headers, and the .vcc sequence container."""
