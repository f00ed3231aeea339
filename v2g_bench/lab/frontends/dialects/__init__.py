"""Vendor SCPI dialects of the lab's simulated instruments (one module per instrument model)."""
