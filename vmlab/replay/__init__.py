"""Trace replay, policy-only: reading traces and counting faults by the
classic definitions. Stands apart from the VM core (no Machine needed)."""
