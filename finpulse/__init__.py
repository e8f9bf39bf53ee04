"""finpulse command-line entry point; the real code lives in models, training and stream_app."""

__version__ = "0.1.0"
