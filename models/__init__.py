"""Model code shared by training and serving: architecture, checkpoint I/O, batched predictor.

Imports nothing from ``training`` or ``stream_app``; heavy modules (torch) load lazily.
"""
