"""Delayed feedback: the event-time label join's rules, the fake-negative correction, settled-label evaluation
and the delayed stream of the built-in generator (docs/FEEDBACK.md)."""
