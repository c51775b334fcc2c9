"""mood-monitor: a self-hosted streaming social-media mood monitor."""

__version__ = "0.1.0"
