"""Synchronous data-parallel training: every worker steps on the sum of all workers' gradients.

:mod:`flinkdl.parallel.rendezvous` gathers one contribution per rank and round (in a PS server, or in
process for tests), :mod:`flinkdl.parallel.sync_step` drives a model's micro-steps through it. See
docs/EXACTLY_ONCE.md ("Synchronous steps").
"""
