"""v2g-bench: hardware-in-the-loop test bench and conformance suite for bidirectional EV chargers."""
__version__ = "0.1.0"
