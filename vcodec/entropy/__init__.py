"""Entropy coding: fixed-point ARM, probability tables, latent and parameter coders."""
